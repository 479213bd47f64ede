// Package sample generates batches of simulated scanned civil-status acts:
// a directory holding manifest.json (INTERFACE.md, "Batch manifest"), the
// PDFs it lists, and expected.json, the state each entry should reach.
// Output is deterministic in Options.
package sample

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
)

// Size classes.
const (
	// SizeSmall makes bitonal 200 dpi scans of about 60 KB a page, for the
	// committed sample (24 acts well under 5 MB).
	SizeSmall = "small"
	// SizeRealistic makes files of 100 KB to 1 MB, as real scans are, for
	// benchmarks.
	SizeRealistic = "realistic"
)

// CommittedSeed is the seed of the sample committed in testdata/sample:
// Generate(Options{Dir: "testdata/sample", Seed: CommittedSeed, Bad: true}).
const CommittedSeed = 2021

// Options says what batch to generate.
type Options struct {
	// Dir receives manifest.json, expected.json and the PDFs. It is created
	// if needed; files of the same names are overwritten.
	Dir string
	// Hub is the manifest's hub, "smica" if empty.
	Hub string
	// Communes are the INSEE codes acts are spread over; Rodez, Millau and
	// Villefranche-de-Rouergue if empty.
	Communes []string
	// Count is the number of good acts, 24 if zero.
	Count int
	// Seed makes the batch deterministic.
	Seed int64
	// Bad appends entries that must be rejected, one per reason, after the
	// good ones (none is bad because of its commune).
	Bad bool
	// SizeClass is SizeSmall (the default) or SizeRealistic.
	SizeClass string
	// GoodState is the state expected.json gives good entries, "archived"
	// if empty.
	GoodState model.State
	// Today bounds act dates: every act is drawn up before it. Recent
	// ("courant") acts fall in the year before. 2025-01-15 if zero, so that
	// the committed sample does not change with the clock.
	Today time.Time
	// Prefix, if set, is put before every file name, to make several
	// batches with distinct files.
	Prefix string
}

// Person is one person of a manifest entry.
type Person struct {
	Role       model.Role `json:"role"`
	Surname    string     `json:"surname"`
	GivenNames []string   `json:"given_names"`
	Sex        string     `json:"sex"`
	BirthDate  string     `json:"birth_date,omitempty"`
	BirthPlace string     `json:"birth_place,omitempty"`
}

// Entry is one act of a manifest.
type Entry struct {
	File      string     `json:"file"`
	Size      int64      `json:"size"`
	SHA256    string     `json:"sha256"`
	Commune   string     `json:"commune"`
	Kind      model.Kind `json:"kind"`
	SansVie   bool       `json:"sans_vie,omitempty"`
	Year      int        `json:"year"`
	Number    int        `json:"number"`
	ActDate   string     `json:"act_date"`
	EventDate string     `json:"event_date,omitempty"`
	Flow      model.Flow `json:"flow"`
	Persons   []Person   `json:"persons"`
}

// Manifest is the manifest.json of a batch.
type Manifest struct {
	Hub  string  `json:"hub"`
	Acts []Entry `json:"acts"`
}

// Expected is one line of expected.json: the state an entry should reach
// and, if rejected, why.
type Expected struct {
	File   string        `json:"file"`
	State  model.State   `json:"state"`
	Reason *model.Reason `json:"reason"`
}

// scanPDF renders a scan; tests that need only the manifest replace it.
var scanPDF = pdfgen.ScanPDF

// act is an entry being built, with the PDF options and bytes.
type act struct {
	Entry
	scan    pdfgen.ScanOptions
	pdf     []byte
	write   bool // write the file to Dir
	badSHA  bool // corrupt the manifest sha256
	expect  Expected
	content func() []byte // raw file content for non-scan files
}

func (o *Options) defaults() error {
	if o.Dir == "" {
		return errors.New("sample: Dir is required")
	}
	if o.Hub == "" {
		o.Hub = "smica"
	}
	if len(o.Communes) == 0 {
		o.Communes = []string{"12202", "12145", "12300"}
	}
	if o.Count <= 0 {
		o.Count = 24
	}
	switch o.SizeClass {
	case "":
		o.SizeClass = SizeSmall
	case SizeSmall, SizeRealistic:
	default:
		return fmt.Errorf("sample: unknown size class %q (want %q or %q)", o.SizeClass, SizeSmall, SizeRealistic)
	}
	if o.GoodState == "" {
		o.GoodState = model.StateArchived
	}
	if o.Today.IsZero() {
		o.Today = time.Date(2025, 1, 15, 0, 0, 0, 0, time.UTC)
	}
	return nil
}

// Generate writes a batch into opt.Dir: the PDFs, manifest.json and
// expected.json. Good acts come first, in register order; bad ones follow.
func Generate(opt Options) error {
	if err := opt.defaults(); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(opt.Seed), 0xe7a7c1))
	acts := goodActs(&opt, rng)
	if opt.Bad {
		acts = append(acts, badActs(&opt, rng)...)
	}

	// Render the PDFs in parallel; each has its own seed, so the output
	// does not depend on scheduling.
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range acts {
		a := &acts[i]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if a.content != nil {
				a.pdf = a.content()
			} else {
				a.pdf = scanPDF(a.scan)
			}
		}()
	}
	wg.Wait()

	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return err
	}
	m := Manifest{Hub: opt.Hub}
	exp := make([]Expected, 0, len(acts))
	for i := range acts {
		a := &acts[i]
		sum := sha256.Sum256(a.pdf)
		a.Size, a.SHA256 = int64(len(a.pdf)), hex.EncodeToString(sum[:])
		if a.badSHA {
			// Same size, one hex digit off.
			b := []byte(a.SHA256)
			b[0] = "1032547698badcfe"[strings.IndexByte("0123456789abcdef", b[0])]
			a.SHA256 = string(b)
		}
		if a.write {
			if err := os.WriteFile(filepath.Join(opt.Dir, a.File), a.pdf, 0o644); err != nil {
				return err
			}
		}
		m.Acts = append(m.Acts, a.Entry)
		a.expect.File = a.File
		exp = append(exp, a.expect)
	}
	if err := writeJSON(filepath.Join(opt.Dir, "manifest.json"), m); err != nil {
		return err
	}
	return writeJSON(filepath.Join(opt.Dir, "expected.json"), exp)
}

func writeJSON(path string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

var kindLetter = map[model.Kind]string{
	model.KindNaissance: "N", model.KindMariage: "M", model.KindDeces: "D", model.KindReconnaissance: "R",
}

var kindTitle = map[model.Kind]string{
	model.KindNaissance: "naissance", model.KindMariage: "mariage", model.KindDeces: "décès", model.KindReconnaissance: "reconnaissance",
}

// goodActs builds opt.Count valid acts over all four kinds and both flows,
// numbered one after another within each (commune, year, kind) register.
func goodActs(opt *Options, rng *rand.Rand) []act {
	courantYear := opt.Today.Year() - 1
	// Two back-catalogue years per commune.
	reprise := map[string][2]int{}
	for _, c := range opt.Communes {
		y := 1950 + rng.IntN(60)
		reprise[c] = [2]int{y, y + 1 + rng.IntN(8)}
	}
	acts := make([]act, opt.Count)
	sansVie := false
	for i := range acts {
		a := &acts[i]
		a.Kind = model.Kinds[i%4]
		a.Commune = opt.Communes[(i/4)%len(opt.Communes)]
		if i%3 == 0 {
			a.Flow, a.Year = model.FlowCourant, courantYear
		} else {
			a.Flow, a.Year = model.FlowReprise, reprise[a.Commune][rng.IntN(2)]
		}
		if a.Kind == model.KindDeces && !sansVie {
			a.SansVie, sansVie = true, true
		}
	}
	// Register order, then numbers and dates in sequence.
	kindIdx := func(k model.Kind) int { return slices.Index(model.Kinds, k) }
	slices.SortStableFunc(acts, func(x, y act) int {
		if c := strings.Compare(x.Commune, y.Commune); c != 0 {
			return c
		}
		if x.Year != y.Year {
			return x.Year - y.Year
		}
		return kindIdx(x.Kind) - kindIdx(y.Kind)
	})
	for i := 0; i < len(acts); {
		j := i
		for j < len(acts) && acts[j].Commune == acts[i].Commune && acts[j].Year == acts[i].Year && acts[j].Kind == acts[i].Kind {
			j++
		}
		base := 1 + rng.IntN(250)
		dates := registerDates(rng, acts[i].Year, j-i, opt.Today)
		for k := i; k < j; k++ {
			acts[k].Number = base + (k - i)
			acts[k].ActDate = dates[k-i].Format(time.DateOnly)
		}
		i = j
	}
	for i := range acts {
		a := &acts[i]
		a.File = fmt.Sprintf("%s%s-%s-%d-%05d.pdf", opt.Prefix, kindLetter[a.Kind], a.Commune, a.Year, a.Number)
		a.write = true
		a.expect = Expected{State: opt.GoodState}
		fillPersons(a, rng)
		a.scan = scanOptions(opt, rng, &a.Entry, i)
	}
	return acts
}

// registerDates returns n increasing days of year, all before today.
func registerDates(rng *rand.Rand, year, n int, today time.Time) []time.Time {
	start := time.Date(year, 1, 2, 0, 0, 0, 0, time.UTC)
	end := time.Date(year, 12, 31, 0, 0, 0, 0, time.UTC)
	if lim := today.AddDate(0, 0, -1); end.After(lim) {
		end = lim
	}
	span := int(end.Sub(start).Hours()/24) + 1
	days := make([]int, n)
	for i := range days {
		days[i] = rng.IntN(span)
	}
	slices.Sort(days)
	out := make([]time.Time, n)
	for i, d := range days {
		out[i] = start.AddDate(0, 0, d)
	}
	return out
}

func day(t time.Time) string { return t.Format(time.DateOnly) }

// person makes someone of the given sex born around birth.
func person(rng *rand.Rand, role model.Role, sex string, birth time.Time, surname string) Person {
	if surname == "" {
		surname = surnames[rng.IntN(len(surnames))]
	}
	var pool []string
	switch old := birth.Year() < 1965; {
	case sex == "M" && old:
		pool = givenOldM
	case sex == "M":
		pool = givenNewM
	case old:
		pool = givenOldF
	default:
		pool = givenNewF
	}
	n := 1 + rng.IntN(3)
	given := make([]string, 0, n)
	for len(given) < n {
		g := pool[rng.IntN(len(pool))]
		if !slices.Contains(given, g) {
			given = append(given, g)
		}
	}
	return Person{Role: role, Surname: surname, GivenNames: given, Sex: sex,
		BirthDate: day(birth), BirthPlace: places[rng.IntN(len(places))]}
}

func sex(rng *rand.Rand) string {
	if rng.IntN(2) == 0 {
		return "M"
	}
	return "F"
}

// adult returns a birth date aged between lo and hi years at t.
func adult(rng *rand.Rand, t time.Time, lo, hi int) time.Time {
	return t.AddDate(-lo-rng.IntN(hi-lo+1), -rng.IntN(12), -rng.IntN(28))
}

// fillPersons sets the event date and the persons an act of its kind has.
func fillPersons(a *act, rng *rand.Rand) {
	actDate, _ := time.Parse(time.DateOnly, a.ActDate)
	place := communePlace(a.Commune)
	switch a.Kind {
	case model.KindNaissance:
		ev := actDate.AddDate(0, 0, -rng.IntN(4))
		a.EventDate = day(ev)
		// Parents: usually a father and a mother, sometimes two mothers,
		// one parent or none (roles are not tied to sex).
		var parents []Person
		family := surnames[rng.IntN(len(surnames))]
		switch r := rng.IntN(10); {
		case r < 6:
			parents = []Person{person(rng, model.RolePere, "M", adult(rng, ev, 20, 45), family), person(rng, model.RoleMere, "F", adult(rng, ev, 18, 42), "")}
		case r < 7:
			parents = []Person{person(rng, model.RoleMere, "F", adult(rng, ev, 22, 42), family), person(rng, model.RoleMere, "F", adult(rng, ev, 22, 42), "")}
		case r < 9:
			parents = []Person{person(rng, model.RoleMere, "F", adult(rng, ev, 17, 40), family)}
		}
		t := person(rng, model.RoleTitulaire, sex(rng), ev, family)
		t.BirthPlace = place
		a.Persons = append([]Person{t}, parents...)
		if rng.IntN(3) == 0 {
			a.Persons = append(a.Persons, person(rng, model.RoleDeclarant, sex(rng), adult(rng, ev, 20, 70), ""))
		}
	case model.KindMariage:
		a.EventDate = a.ActDate
		roles := [][2]model.Role{{model.RoleEpoux, model.RoleEpouse}, {model.RoleEpoux, model.RoleEpoux}, {model.RoleEpouse, model.RoleEpouse}, {model.RoleEpouse, model.RoleEpoux}}
		sexes := [][2]string{{"M", "F"}, {"M", "M"}, {"F", "F"}, {"F", "M"}}
		k := 0
		if actDate.Year() >= 2014 && rng.IntN(3) == 0 { // mariage pour tous, 2013
			k = 1 + rng.IntN(3)
		}
		for s := 0; s < 2; s++ {
			a.Persons = append(a.Persons, person(rng, roles[k][s], sexes[k][s], adult(rng, actDate, 20, 55), ""))
		}
		for w := 0; w < 2+rng.IntN(3); w++ {
			a.Persons = append(a.Persons, person(rng, model.RoleTemoin, sex(rng), adult(rng, actDate, 18, 75), ""))
		}
	case model.KindDeces:
		ev := actDate.AddDate(0, 0, -rng.IntN(3))
		a.EventDate = day(ev)
		if a.SansVie {
			// A stillborn child: born and dead the same day, here in the
			// commune; the first names may be left empty.
			d := person(rng, model.RoleDefunt, sex(rng), ev, "")
			d.BirthPlace = place
			if rng.IntN(2) == 0 {
				d.GivenNames = []string{}
			}
			a.Persons = []Person{d, person(rng, model.RoleDeclarant, "M", adult(rng, ev, 22, 45), d.Surname)}
			break
		}
		a.Persons = []Person{person(rng, model.RoleDefunt, sex(rng), adult(rng, ev, 35, 98), "")}
		if rng.IntN(2) == 0 {
			a.Persons = append(a.Persons, person(rng, model.RoleDeclarant, sex(rng), adult(rng, ev, 25, 70), ""))
		}
	case model.KindReconnaissance:
		a.EventDate = a.ActDate
		ev := actDate.AddDate(0, -rng.IntN(30), -rng.IntN(28))
		auteur := person(rng, model.RoleAuteur, sex(rng), adult(rng, ev, 20, 45), "")
		a.Persons = []Person{person(rng, model.RoleTitulaire, sex(rng), ev, auteur.Surname), auteur}
	}
}

// scanOptions chooses how the act's PDF looks and how big it is.
func scanOptions(opt *Options, rng *rand.Rand, e *Entry, i int) pdfgen.ScanOptions {
	name := communeName(e.Commune)
	title := "ACTE DE " + strings.ToUpper(kindTitle[e.Kind])
	if e.SansVie {
		title = "ACTE D'ENFANT SANS VIE"
	}
	actDate, _ := time.Parse(time.DateOnly, e.ActDate)
	scanned := actDate.AddDate(0, 0, 1+rng.IntN(20))
	if e.Flow == model.FlowReprise {
		scanned = opt.Today.AddDate(0, -1-rng.IntN(18), -rng.IntN(28))
	}
	s := pdfgen.ScanOptions{
		Seed:   opt.Seed*1_000_003 + int64(i)*7919 + int64(e.Number),
		Header: []string{"MAIRIE DE " + strings.ToUpper(name), fmt.Sprintf("%s N° %d", title, e.Number), fmt.Sprintf("ANNÉE %d", e.Year)},
		Margin: []string{fmt.Sprintf("N° %d", e.Number), e.Persons[0].Surname},
		Stamp:  "MAIRIE DE " + name,
		Title:  fmt.Sprintf("Acte de %s n° %d — %s %d", kindTitle[e.Kind], e.Number, name, e.Year),
		Date:   scanned.Add(9*time.Hour + time.Duration(rng.IntN(8*3600))*time.Second),
		PDFA:   e.Flow == model.FlowCourant || rng.IntN(3) == 0,
	}
	pages := []int{1, 1, 2, 2, 2, 3, 3, 4}
	if e.Kind == model.KindMariage {
		pages = []int{2, 3, 3, 4}
	}
	s.Pages = pages[rng.IntN(len(pages))]
	switch opt.SizeClass {
	case SizeSmall:
		s.DPI = 200
		// Keep the committed sample small: mostly 1 to 3 pages, one act of 4.
		s.Pages = []int{1, 1, 2, 2, 3}[rng.IntN(5)]
		if e.Kind == model.KindMariage {
			s.Pages = 2 + rng.IntN(2)
		}
		if i == 0 {
			s.Pages = 4
		}
		if i == 1 { // one greyscale scan, as some scanners make
			s.Grey, s.Pages, s.Quality = true, 1, 35
		}
	case SizeRealistic:
		target := 130_000 + rng.IntN(720_000)
		s.Pages = max(1, min(s.Pages, target/90_000))
		s.DPI = 200
		if target/s.Pages > 140_000 {
			s.DPI = 300
		}
		s.TargetSize = target
	}
	return s
}

// badActs builds one entry per rejection reason other than the commune.
// Each is otherwise valid, with a number no good act uses.
func badActs(opt *Options, rng *rand.Rand) []act {
	year := opt.Today.Year() - 1
	commune := opt.Communes[0]
	n := 9000
	mk := func(file string, reason model.Reason) act {
		n++
		a := act{write: true}
		a.File = opt.Prefix + file
		a.Commune, a.Kind, a.Year, a.Number, a.Flow = commune, model.KindNaissance, year, n, model.FlowCourant
		a.ActDate = day(time.Date(year, 3, 1+n%28, 0, 0, 0, 0, time.UTC))
		fillPersons(&a, rng)
		a.scan = pdfgen.ScanOptions{Seed: opt.Seed + int64(n), Pages: 1,
			Header: []string{"MAIRIE DE " + strings.ToUpper(communeName(commune)), fmt.Sprintf("ACTE DE NAISSANCE N° %d", n)}}
		r := reason
		a.expect = Expected{State: model.StateRejected, Reason: &r}
		return a
	}
	var out []act

	a := mk("BAD-empty-file.pdf", model.ReasonNotPDF)
	a.content = func() []byte { return []byte{} }
	out = append(out, a)

	a = mk("BAD-text-not-a-pdf.pdf", model.ReasonNotPDF)
	a.content = func() []byte {
		return []byte("Ceci n'est pas un PDF : liste des actes à numériser.\nN° 9002 naissance\n")
	}
	out = append(out, a)

	a = mk("BAD-javascript-openaction.pdf", model.ReasonPDFActiveContent)
	a.scan.CatalogExtra = `/OpenAction << /S /JavaScript /JS (app.alert\('Acte'\);) >>`
	out = append(out, a)

	a = mk("BAD-encrypted.pdf", model.ReasonPDFEncrypted)
	a.scan.Encrypt = true
	out = append(out, a)

	a = mk("BAD-truncated.pdf", model.ReasonPDFMalformed)
	sc := a.scan
	a.content = func() []byte { b := pdfgen.ScanPDF(sc); return b[:len(b)*3/5] }
	out = append(out, a)

	a = mk("BAD-checksum-mismatch.pdf", model.ReasonChecksumMismatch)
	a.badSHA = true
	out = append(out, a)

	a = mk("BAD-act-date-year-mismatch.pdf", model.ReasonDateInvalid)
	a.Year-- // act_date stays in the following year
	out = append(out, a)

	a = mk("BAD-file-not-sent.pdf", model.ReasonFileMissing)
	a.write = false
	out = append(out, a)

	a = mk("../etc/passwd", model.ReasonFileNameInvalid)
	a.File = "../etc/passwd"
	a.write = false
	a.content = func() []byte { return []byte("root:x:0:0:root:/root:/bin/bash\n") }
	out = append(out, a)
	return out
}
