// Command cogsnap turns the communes.json of the npm package
// @etalab/decoupage-administratif into etatcivil's COG snapshot
// (internal/cog/data/cog.csv.gz) and its SOURCE note.
//
//	go run ./tools/cogsnap -date 2026-01-01 \
//	    -history .local/cog/history/package/data/communes.json \
//	    .local/cog/package/data/communes.json
//
// Rows: commune-actuelle -> COM; arrondissement-municipal -> ARM (parent:
// "commune"); commune-deleguee -> COMD and commune-associee -> COMA (parent:
// "chefLieu"). Each code in a current commune's "anciensCodes" that is not
// otherwise in the file becomes an ANC row whose parent is that commune.
//
// -history names older communes.json files of the same package (0.3.x, COG
// 2019, lists absorbed communes and changed codes with their names). They
// only name ANC rows, and add the few former codes the current file no
// longer lists, linked to their successor. They never change a current row.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etatcivil/etatcivil/internal/cog"
	"github.com/etatcivil/etatcivil/internal/model"
)

type entry struct {
	Code              string   `json:"code"`
	Nom               string   `json:"nom"`
	Type              string   `json:"type"`
	ChefLieu          string   `json:"chefLieu"`
	Commune           string   `json:"commune"`
	AnciensCodes      []string `json:"anciensCodes"`
	CommuneAbsorbante string   `json:"communeAbsorbante"` // history files
	NouveauCode       string   `json:"nouveauCode"`       // history files
}

type pkgInfo struct{ Name, Version, License string }

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var history multiFlag
	date := flag.String("date", "", "COG date the package describes, YYYY-MM-DD (required)")
	out := flag.String("o", "internal/cog/data/cog.csv.gz", "snapshot to write")
	sourceOut := flag.String("source", "", "SOURCE note to write (default: SOURCE beside -o)")
	flag.Var(&history, "history", "older communes.json of the same package, to name former codes (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: cogsnap -date YYYY-MM-DD [-history OLD.json]... [-o FILE] communes.json\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *date == "" {
		flag.Usage()
		os.Exit(2)
	}
	if *sourceOut == "" {
		*sourceOut = filepath.Join(filepath.Dir(*out), "SOURCE")
	}
	if err := run(flag.Arg(0), history, *date, *out, *sourceOut); err != nil {
		fmt.Fprintln(os.Stderr, "cogsnap:", err)
		os.Exit(1)
	}
}

func run(input string, history []string, date, out, sourceOut string) error {
	if _, err := time.Parse(time.DateOnly, date); err != nil {
		return fmt.Errorf("-date %q is not YYYY-MM-DD", date)
	}
	entries, pkg, err := load(input)
	if err != nil {
		return err
	}
	rows, err := build(entries)
	if err != nil {
		return err
	}
	var hist []string
	for _, h := range history {
		he, hp, err := load(h)
		if err != nil {
			return err
		}
		rows = applyHistory(rows, he)
		hist = append(hist, hp.Name+"@"+hp.Version)
	}

	src := fmt.Sprintf("npm %s@%s data/communes.json (INSEE COG %s)", pkg.Name, pkg.Version, date)
	if len(hist) > 0 {
		src += "; names of former codes from " + strings.Join(hist, ", ")
	}
	lic := "INSEE COG data: Licence Ouverte / Open Licence (Etalab); package " + pkg.License
	snap := cog.NewSnapshot(date, rows)
	snap.Source, snap.Licence = src, lic

	var csvBuf bytes.Buffer
	if err := cog.Write(&csvBuf, snap); err != nil {
		return err
	}
	// Round trip: the snapshot must pass Read's checks.
	back, err := cog.Read(bytes.NewReader(csvBuf.Bytes()))
	if err != nil {
		return fmt.Errorf("generated snapshot does not read back: %w", err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // no name, zero mtime: deterministic
	zw.Write(csvBuf.Bytes())
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(out, gz.Bytes(), 0o644); err != nil {
		return err
	}

	counts := back.Counts()
	var note strings.Builder
	fmt.Fprintf(&note, "COG snapshot used by internal/cog (embedded as cog.csv.gz).\n\n")
	fmt.Fprintf(&note, "cog_date: %s\n", date)
	fmt.Fprintf(&note, "package: %s@%s (npm), file data/communes.json\n", pkg.Name, pkg.Version)
	for _, h := range hist {
		fmt.Fprintf(&note, "history: %s (npm), file data/communes.json: names of former codes only\n", h)
	}
	fmt.Fprintf(&note, "upstream: INSEE, Code officiel géographique\n")
	fmt.Fprintf(&note, "licence: %s\n", lic)
	fmt.Fprintf(&note, "generator: go run ./tools/cogsnap (make cog-snapshot)\n")
	fmt.Fprintf(&note, "rows: %d", back.Len())
	for _, t := range []model.CommuneType{model.CommuneActuelle, model.CommuneArrondissement, model.CommuneDeleguee, model.CommuneAssociee, model.CommuneAncienne} {
		fmt.Fprintf(&note, " %s=%d", t, counts[t])
	}
	fmt.Fprintf(&note, "\n")
	if err := os.WriteFile(sourceOut, []byte(note.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "cogsnap: wrote %s (%d bytes, %d rows) and %s\n", out, gz.Len(), back.Len(), sourceOut)
	return nil
}

// load reads a communes.json and the package.json two levels up
// (package/data/communes.json -> package/package.json), if present.
func load(path string) ([]entry, pkgInfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, pkgInfo{}, err
	}
	var es []entry
	if err := json.Unmarshal(b, &es); err != nil {
		return nil, pkgInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	pkg := pkgInfo{Name: "@etalab/decoupage-administratif", Version: "unknown", License: "MIT"}
	if pb, err := os.ReadFile(filepath.Join(filepath.Dir(path), "..", "package.json")); err == nil {
		var p pkgInfo
		if json.Unmarshal(pb, &p) == nil && p.Version != "" {
			pkg = p
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, pkgInfo{}, err
	}
	return es, pkg, nil
}

var types = map[string]model.CommuneType{
	"commune-actuelle":         model.CommuneActuelle,
	"arrondissement-municipal": model.CommuneArrondissement,
	"commune-deleguee":         model.CommuneDeleguee,
	"commune-associee":         model.CommuneAssociee,
}

type key struct {
	code string
	typ  model.CommuneType
}

func build(entries []entry) ([]model.Commune, error) {
	var rows []model.Commune
	seen := map[key]bool{}
	codes := map[string]bool{}
	add := func(c model.Commune) error {
		k := key{c.Code, c.Type}
		if seen[k] {
			return fmt.Errorf("code %s type %s appears twice", c.Code, c.Type)
		}
		seen[k], codes[c.Code] = true, true
		rows = append(rows, c)
		return nil
	}
	for _, e := range entries {
		t, ok := types[e.Type]
		if !ok {
			return nil, fmt.Errorf("code %s: unknown type %q", e.Code, e.Type)
		}
		c := model.Commune{Code: e.Code, Type: t, Name: e.Nom}
		switch t {
		case model.CommuneArrondissement:
			c.Parent = e.Commune
		case model.CommuneDeleguee, model.CommuneAssociee:
			c.Parent = e.ChefLieu
		}
		if err := add(c); err != nil {
			return nil, err
		}
	}
	for _, c := range rows {
		if c.Parent != "" && !seen[key{c.Parent, model.CommuneActuelle}] {
			return nil, fmt.Errorf("%s %s %s: parent %s is not a current commune", c.Type, c.Code, c.Name, c.Parent)
		}
	}
	// Former codes. Keep the input order of current communes for messages,
	// the snapshot sorts anyway.
	succ := map[string]string{}
	for _, e := range entries {
		if e.Type != "commune-actuelle" {
			continue
		}
		for _, a := range e.AnciensCodes {
			if prev, dup := succ[a]; dup && prev != e.Code {
				return nil, fmt.Errorf("former code %s listed under %s and %s", a, prev, e.Code)
			}
			succ[a] = e.Code
		}
	}
	olds := make([]string, 0, len(succ))
	for a := range succ {
		olds = append(olds, a)
	}
	slices.Sort(olds)
	for _, a := range olds {
		s := succ[a]
		if codes[a] {
			// Already a COMD/COMA row (or current): its own parent link
			// stands. Say so when the two disagree.
			for _, c := range rows {
				if c.Code == a && c.Parent != "" && c.Parent != s && c.Parent != a {
					fmt.Fprintf(os.Stderr, "cogsnap: note: %s %s %s has parent %s but is listed as a former code of %s; keeping %s\n", c.Type, c.Code, c.Name, c.Parent, s, c.Parent)
				}
			}
			continue
		}
		if err := add(model.Commune{Code: a, Type: model.CommuneAncienne, Parent: s}); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// applyHistory names unnamed ANC rows and adds former codes the history
// knows but rows lack, linked to a successor present in rows.
func applyHistory(rows []model.Commune, hist []entry) []model.Commune {
	names := map[string]string{}
	for _, e := range hist {
		if e.Nom != "" && names[e.Code] == "" {
			names[e.Code] = e.Nom
		}
	}
	codes := map[string]bool{}
	for _, c := range rows {
		codes[c.Code] = true
	}
	for i, c := range rows {
		if c.Type != model.CommuneAncienne || c.Name != "" {
			continue
		}
		n := names[c.Code]
		if n == "" && strings.HasPrefix(c.Code, "20") && len(c.Parent) == 5 && strings.HasPrefix(c.Parent, "2") {
			// Corsican code before 1976 (20xxx): the history files write
			// it with the département of its successor (2A/2B).
			n = names[c.Parent[:2]+c.Code[2:]]
		}
		rows[i].Name = n
	}
	for _, e := range hist {
		if codes[e.Code] {
			continue
		}
		s := e.CommuneAbsorbante
		if s == "" {
			s = e.NouveauCode
		}
		if s == "" {
			s = e.ChefLieu
		}
		if s == "" || !codes[s] {
			fmt.Fprintf(os.Stderr, "cogsnap: note: history %s %s (%s): no successor in the current COG, skipped\n", e.Code, e.Nom, e.Type)
			continue
		}
		if cog.Check(e.Code) != nil {
			continue
		}
		rows = append(rows, model.Commune{Code: e.Code, Type: model.CommuneAncienne, Name: e.Nom, Parent: s})
		codes[e.Code] = true
	}
	return rows
}
