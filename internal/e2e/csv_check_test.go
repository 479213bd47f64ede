package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etatcivil/etatcivil/internal/sample"
)

// toCSV rewrites a sample manifest.json as manifest.csv (";" separated,
// with a BOM, one row per person), the form indexing teams export.
func toCSV(t *testing.T, dir string) {
	t.Helper()
	var m sample.Manifest
	readJSON(t, filepath.Join(dir, "manifest.json"), &m)
	var buf bytes.Buffer
	buf.WriteString("\ufeff")
	w := csv.NewWriter(&buf)
	w.Comma = ';'
	_ = w.Write([]string{"file", "size", "sha256", "commune", "kind", "year", "number", "act_date", "event_date", "flow",
		"role", "surname", "given_names", "sex", "birth_date", "birth_place", "replaces", "revision_reason", "sans_vie"})
	for _, e := range m.Acts {
		for _, p := range e.Persons {
			sv := ""
			if e.SansVie {
				sv = "true"
			}
			_ = w.Write([]string{e.File, fmt.Sprint(e.Size), e.SHA256, e.Commune, string(e.Kind), fmt.Sprint(e.Year), fmt.Sprint(e.Number),
				e.ActDate, e.EventDate, string(e.Flow), string(p.Role), p.Surname, strings.Join(p.GivenNames, "|"), p.Sex,
				p.BirthDate, p.BirthPlace, "", "", sv})
		}
	}
	w.Flush()
	if err := os.WriteFile(filepath.Join(dir, "manifest.csv"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "manifest.json")); err != nil {
		t.Fatal(err)
	}
}

// TestCSVManifestAndLocalCheck: upload --check judges a directory locally
// (exit 1 on the sample's bad entries, 0 on good ones) and writes nothing;
// a CSV manifest is ingested like the JSON one.
func TestCSVManifestAndLocalCheck(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	tok := hubToken(t, s)
	ctx := context.Background()

	// --check on the committed sample: the bad entries are named, nothing is sent.
	chk := s.client(ctx, tok, "upload", "--check", "--json", filepath.Join("..", "..", "testdata", "sample"))
	var out, errb bytes.Buffer
	chk.Stdout, chk.Stderr = &out, &errb
	if code := exitCode(chk.Run()); code != 1 {
		t.Fatalf("--check sur l'exemple: code %d\n%s", code, errb.String())
	}
	var rep struct {
		OK      bool `json:"ok"`
		Entries []struct {
			File   string  `json:"file"`
			OK     bool    `json:"ok"`
			Reason *string `json:"reason"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := map[string]string{"BAD-empty-file.pdf": "not_pdf", "BAD-javascript-openaction.pdf": "pdf_active_content",
		"BAD-encrypted.pdf": "pdf_encrypted", "BAD-checksum-mismatch.pdf": "checksum_mismatch", "BAD-file-not-sent.pdf": "file_missing",
		"../etc/passwd": "file_name_invalid", "BAD-act-date-year-mismatch.pdf": "date_invalid"}
	good := 0
	for _, e := range rep.Entries {
		if w, ok := want[e.File]; ok && (e.Reason == nil || *e.Reason != w) {
			t.Errorf("--check %s: %v, attendu %s", e.File, e.Reason, w)
		}
		if e.OK {
			good++
		}
	}
	if rep.OK || good != 24 {
		t.Fatalf("--check: ok=%v, %d bonnes entrées sur 24", rep.OK, good)
	}
	if n := s.metric(t, "etatcivil_batches_created_total"); n != 0 {
		t.Fatalf("--check a créé %d lot(s)", n)
	}

	// A CSV manifest of good acts.
	dir := t.TempDir()
	if err := sample.Generate(sample.Options{Dir: dir, Count: 8, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	chk = s.client(ctx, tok, "upload", "--check", dir)
	if code := exitCode(chk.Run()); code != 0 {
		t.Fatalf("--check sur un lot correct: code %d", code)
	}
	toCSV(t, dir)
	up := s.client(ctx, tok, "upload", "--wait", "--timeout", "2m", "--json", dir)
	out.Reset()
	errb.Reset()
	up.Stdout, up.Stderr = &out, &errb
	if err := up.Run(); err != nil {
		t.Fatalf("upload CSV: %v\n%s", err, errb.String())
	}
	b := decodeBatch(t, out.Bytes())
	if b.Counts.Archived != 8 || b.Counts.Total != 8 {
		t.Fatalf("lot CSV: %+v\n%s", b.Counts, out.String())
	}
}
