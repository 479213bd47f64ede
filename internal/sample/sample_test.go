package sample

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/pdfcpu/pdfcpu/pkg/api"
	pdfmodel "github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

func init() { pdfmodel.ConfigPath = "disable" }

func load(t *testing.T, dir string) (Manifest, []Expected) {
	t.Helper()
	var m Manifest
	var e []Expected
	for name, v := range map[string]any{"manifest.json": &m, "expected.json": &e} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if len(m.Acts) != len(e) {
		t.Fatalf("%d acts, %d expected", len(m.Acts), len(e))
	}
	for i := range e {
		if e[i].File != m.Acts[i].File {
			t.Fatalf("expected[%d] is %s, manifest has %s", i, e[i].File, m.Acts[i].File)
		}
	}
	return m, e
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		fi, _ := de.Info()
		n += fi.Size()
	}
	return n
}

func validPDF(t *testing.T, name string, b []byte) {
	t.Helper()
	ctx, err := api.ReadContext(bytes.NewReader(b), pdfmodel.NewDefaultConfiguration())
	if err != nil {
		t.Fatalf("%s: pdfcpu read: %v", name, err)
	}
	if err := api.ValidateContext(ctx); err != nil {
		t.Fatalf("%s: pdfcpu validate: %v", name, err)
	}
	if ctx.PageCount < 1 || ctx.PageCount > 4 {
		t.Fatalf("%s: %d pages", name, ctx.PageCount)
	}
}

func TestGenerateSmall(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	if err := Generate(Options{Dir: dir, Seed: 1, Bad: true}); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated in %v", time.Since(start))
	m, exp := load(t, dir)
	if m.Hub != "smica" {
		t.Fatalf("hub %q", m.Hub)
	}
	if size := dirSize(t, dir); size >= 5<<20 {
		t.Fatalf("directory is %d bytes, want < 5 MB", size)
	} else {
		t.Logf("directory: %d bytes", size)
	}

	kinds := map[model.Kind]int{}
	flows := map[model.Flow]int{}
	sansVie, good, bad := 0, 0, 0
	reasons := map[model.Reason]bool{}
	for i, a := range m.Acts {
		e := exp[i]
		b, err := os.ReadFile(filepath.Join(dir, a.File))
		present := err == nil
		if e.State == model.StateRejected {
			bad++
			reasons[*e.Reason] = true
			if !strings.HasPrefix(a.File, "BAD-") && a.File != "../etc/passwd" {
				t.Errorf("bad entry %s has no BAD- prefix", a.File)
			}
			switch *e.Reason {
			case model.ReasonFileMissing, model.ReasonFileNameInvalid:
				if present && *e.Reason == model.ReasonFileMissing {
					t.Errorf("%s: file present", a.File)
				}
				continue
			case model.ReasonChecksumMismatch:
				sum := sha256.Sum256(b)
				if hex.EncodeToString(sum[:]) == a.SHA256 || int64(len(b)) != a.Size {
					t.Errorf("%s: checksum matches or size differs", a.File)
				}
				continue
			case model.ReasonDateInvalid:
				if a.ActDate[:4] == itoa(a.Year) {
					t.Errorf("%s: act_date year equals year", a.File)
				}
			}
		} else {
			good++
			if e.State != model.StateArchived || e.Reason != nil {
				t.Errorf("%s: expected %v %v", a.File, e.State, e.Reason)
			}
			if !present {
				t.Fatalf("%s: %v", a.File, err)
			}
			validPDF(t, a.File, b)
			checkGood(t, a)
			kinds[a.Kind]++
			flows[a.Flow]++
			if a.SansVie {
				sansVie++
			}
		}
		if !present {
			t.Fatalf("%s missing", a.File)
		}
		sum := sha256.Sum256(b)
		if int64(len(b)) != a.Size || hex.EncodeToString(sum[:]) != a.SHA256 {
			t.Errorf("%s: size/sha256 do not match the file", a.File)
		}
	}
	if good != 24 || bad != 9 {
		t.Errorf("%d good, %d bad", good, bad)
	}
	if len(kinds) != 4 || len(flows) != 2 || sansVie != 1 {
		t.Errorf("kinds %v flows %v sans_vie %d", kinds, flows, sansVie)
	}
	for _, r := range []model.Reason{model.ReasonNotPDF, model.ReasonPDFActiveContent, model.ReasonPDFEncrypted, model.ReasonPDFMalformed,
		model.ReasonChecksumMismatch, model.ReasonDateInvalid, model.ReasonFileMissing, model.ReasonFileNameInvalid} {
		if !reasons[r] {
			t.Errorf("no bad entry for %s", r)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "BAD-encrypted.pdf")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "BAD-encrypted.pdf")); !bytes.Contains(b, []byte("/Encrypt ")) {
		t.Error("encrypted sample has no /Encrypt")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "BAD-truncated.pdf")); bytes.Contains(b, []byte("%%EOF")) {
		t.Error("truncated sample has an EOF marker")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// checkGood checks the index data of a good act against INTERFACE.md.
func checkGood(t *testing.T, a Entry) {
	t.Helper()
	act, err := time.Parse(time.DateOnly, a.ActDate)
	if err != nil || act.Year() != a.Year || !act.Before(time.Now()) {
		t.Errorf("%s: act_date %s, year %d", a.File, a.ActDate, a.Year)
	}
	if a.EventDate != "" {
		ev, err := time.Parse(time.DateOnly, a.EventDate)
		if err != nil || ev.After(act) {
			t.Errorf("%s: event_date %s after act_date %s", a.File, a.EventDate, a.ActDate)
		}
	}
	roles := map[model.Role]int{}
	for _, p := range a.Persons {
		roles[p.Role]++
		if p.BirthDate > a.ActDate {
			t.Errorf("%s: %s born after the act", a.File, p.Role)
		}
	}
	switch a.Kind {
	case model.KindNaissance:
		if roles[model.RoleTitulaire] != 1 || roles[model.RolePere]+roles[model.RoleMere] > 2 {
			t.Errorf("%s: roles %v", a.File, roles)
		}
	case model.KindMariage:
		if roles[model.RoleEpoux]+roles[model.RoleEpouse] != 2 {
			t.Errorf("%s: roles %v", a.File, roles)
		}
	case model.KindDeces:
		if roles[model.RoleDefunt] != 1 {
			t.Errorf("%s: roles %v", a.File, roles)
		}
	case model.KindReconnaissance:
		if roles[model.RoleTitulaire] != 1 || roles[model.RoleAuteur] != 1 {
			t.Errorf("%s: roles %v", a.File, roles)
		}
	}
	want := map[model.Kind]string{model.KindNaissance: "N", model.KindMariage: "M", model.KindDeces: "D", model.KindReconnaissance: "R"}[a.Kind]
	if !strings.HasPrefix(a.File, want+"-"+a.Commune+"-"+itoa(a.Year)+"-") {
		t.Errorf("file name %s", a.File)
	}
}

func TestNumbersSequential(t *testing.T) {
	defer func(f func(pdfgen.ScanOptions) []byte) { scanPDF = f }(scanPDF)
	scanPDF = func(pdfgen.ScanOptions) []byte { return []byte("%PDF-1.7\n") }
	dir := t.TempDir()
	if err := Generate(Options{Dir: dir, Seed: 7, Count: 40}); err != nil {
		t.Fatal(err)
	}
	m, _ := load(t, dir)
	type reg struct {
		c string
		y int
		k model.Kind
	}
	last := map[reg]Entry{}
	for _, a := range m.Acts {
		r := reg{a.Commune, a.Year, a.Kind}
		if p, ok := last[r]; ok {
			if a.Number != p.Number+1 || a.ActDate < p.ActDate {
				t.Errorf("%s follows %s", a.File, p.File)
			}
		}
		last[r] = a
	}
}

func TestDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if err := Generate(Options{Dir: d, Seed: 3, Count: 6, Bad: true, GoodState: model.StateArchived}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"manifest.json", "expected.json"} {
		x, _ := os.ReadFile(filepath.Join(a, f))
		y, _ := os.ReadFile(filepath.Join(b, f))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between runs", f)
		}
	}
	_, exp := load(t, a)
	if exp[0].State != model.StateArchived {
		t.Errorf("GoodState not used: %v", exp[0].State)
	}
}

func TestGenerateRealistic(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	const n = 16
	if err := Generate(Options{Dir: dir, Seed: 5, Count: n, SizeClass: SizeRealistic}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d realistic acts in %v", n, time.Since(start))
	m, _ := load(t, dir)
	for _, a := range m.Acts {
		if a.Size < 100_000 || a.Size > 1_000_000 {
			t.Errorf("%s: %d bytes, want 100 KB–1 MB", a.File, a.Size)
		}
		b, err := os.ReadFile(filepath.Join(dir, a.File))
		if err != nil {
			t.Fatal(err)
		}
		validPDF(t, a.File, b)
	}
}

func TestBadOptions(t *testing.T) {
	if Generate(Options{}) == nil {
		t.Error("no error without Dir")
	}
	if Generate(Options{Dir: t.TempDir(), SizeClass: "huge"}) == nil {
		t.Error("no error for unknown size class")
	}
}

// TestCommittedSample checks that testdata/sample is what Generate makes
// with CommittedSeed (expected.json aside: its good state may change).
func TestCommittedSample(t *testing.T) {
	committed := filepath.Join("..", "..", "testdata", "sample")
	if _, err := os.Stat(filepath.Join(committed, "manifest.json")); err != nil {
		t.Fatalf("committed sample missing: %v", err)
	}
	dir := t.TempDir()
	if err := Generate(Options{Dir: dir, Seed: CommittedSeed, Bad: true}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	for _, de := range ents {
		if de.Name() == "expected.json" {
			continue
		}
		want, _ := os.ReadFile(filepath.Join(dir, de.Name()))
		got, err := os.ReadFile(filepath.Join(committed, de.Name()))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("testdata/sample/%s is not what Generate makes (regenerate it): %v", de.Name(), err)
		}
	}
	if size := dirSize(t, committed); size >= 5<<20 {
		t.Errorf("testdata/sample is %d bytes, want < 5 MB", size)
	}
}

func BenchmarkGenerateRealistic(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if err := Generate(Options{Dir: b.TempDir(), Seed: int64(i), Count: 8, SizeClass: SizeRealistic}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*8), "ms/act")
}
