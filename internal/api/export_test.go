package api_test

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/etatcivil/etatcivil/internal/auditlog"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// tarFile is one file of a bundle, in order.
type tarFile struct {
	name string
	data []byte
}

func untar(t *testing.T, b []byte) []tarFile {
	t.Helper()
	var out []tarFile
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarFile{h.Name, data})
	}
}

func retar(t *testing.T, files []tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestExportStandsAlone: an auditor's export of one commune and year
// verifies offline against the trust roots alone, carries the reads made
// before it and its own, nothing about another commune, and any byte
// changed in any of its files is named by that file.
func TestExportStandsAlone(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "h", "12202", "12145")
	hub := client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
	auditorToken := s.Token(t, auth.RoleAuditor, "")
	p1, p2, p3 := goodPDF(301), goodPDF(302), goodPDF(303)
	m := manifestBytes(t, "h", act("a.pdf", p1, 1), act("b.pdf", p2, 2), entryFor("c.pdf", p3, "12145", 3))
	b := waitBatch(t, hub, uploadBatch(t, hub, m, map[string][]byte{"a.pdf": p1, "b.pdf": p2, "c.pdf": p3}).ID)
	if b.Counts.Archived != 3 {
		t.Fatalf("lot : %+v", b.Counts)
	}
	actA, actB, actC := *entryByFile(t, b, "a.pdf").ID, *entryByFile(t, b, "b.pdf").ID, *entryByFile(t, b, "c.pdf").ID

	// Auditors search across communes (a town hall only in its own): by
	// surname (accents and case ignored), number, commune, year, kind.
	town := s.Token(t, auth.RoleTownhall, "", "12202")
	for _, c := range []struct {
		token, query string
		want         []string
	}{
		{auditorToken, "surname=Martín", []string{actA, actB, actC}},
		{auditorToken, "surname=martin&commune=12145", []string{actC}},
		{auditorToken, "number=2&year=2021&kind=naissance", []string{actB}},
		{auditorToken, "surname=martin&kind=deces", nil},
		{auditorToken, "surname=durand", nil},
		{town, "surname=MARTIN", []string{actA, actB}},
		{town, "number=3", nil},
	} {
		r := send(t, s.URL, c.token, apiReq{method: "GET", path: "/api/v1/acts?" + c.query})
		var page struct {
			Acts []struct {
				ID string `json:"id"`
			} `json:"acts"`
			Total int `json:"total"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &page) != nil {
			t.Fatalf("recherche %s : %d %s", c.query, r.status, r.body)
		}
		var got []string
		for _, a := range page.Acts {
			got = append(got, a.ID)
		}
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) || page.Total != len(want) {
			t.Errorf("recherche %s : %v (%d), attendu %v", c.query, got, page.Total, want)
		}
	}

	// A read before the export, which the export must carry.
	read := send(t, s.URL, auditorToken, apiReq{method: "GET", path: "/api/v1/acts/" + actA + "/pdf",
		header: http.Header{"Etatcivil-Purpose": {"controle"}, "Etatcivil-Reason": {"contrôle annuel"}}})
	if read.status != 200 || !bytes.Equal(read.body[:len(p1)], p1) {
		t.Fatalf("lecture du PDF : %d", read.status)
	}

	path := "/api/v1/audit/export?commune=12202&year=2021"
	wantProblem(t, "export sans finalité", send(t, s.URL, auditorToken, apiReq{method: "GET", path: path}), 400, "purpose_required")
	wantProblem(t, "export d'une commune inconnue", send(t, s.URL, auditorToken, apiReq{method: "GET",
		path: "/api/v1/audit/export?commune=99999&year=2021", header: http.Header{"Etatcivil-Purpose": {"controle"}}}), 400, "unknown_commune")
	resp := send(t, s.URL, auditorToken, apiReq{method: "GET", path: path,
		header: http.Header{"Etatcivil-Purpose": {"archivage"}, "Etatcivil-Reason": {"versement aux archives départementales"}}})
	if resp.status != 200 || resp.header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("export : %d %s", resp.status, resp.body)
	}
	bundle := resp.body

	rep, err := auditlog.Check(bytes.NewReader(bundle), s.API.Roots)
	if err != nil || !rep.OK {
		t.Fatalf("audit check : %+v %v", rep, err)
	}
	if rep.Commune != "12202" || rep.Year != 2021 || rep.Acts != 2 || rep.Checkpoints < 1 || rep.Events == 0 || rep.Unanchored != 0 {
		t.Fatalf("rapport : %+v", rep)
	}

	files := untar(t, bundle)
	var events []auditlog.ProvenEvent
	for _, f := range files {
		if f.name == "evenements.json" {
			if err := json.Unmarshal(f.data, &events); err != nil {
				t.Fatal(err)
			}
		}
		if strings.Contains(string(f.data), actC) {
			t.Errorf("%s nomme l'acte de l'autre commune", f.name)
		}
	}
	if len(events) != rep.Events {
		t.Fatalf("%d événements, rapport %d", len(events), rep.Events)
	}
	reads := map[string][]string{} // act → channel/purpose of each read
	for _, e := range events {
		if e.ActID == nil || (*e.ActID != actA && *e.ActID != actB) {
			t.Fatalf("événement d'un autre acte : %+v", e)
		}
		if e.Action == "act.read_pdf" {
			reads[*e.ActID] = append(reads[*e.ActID], e.Data["channel"].(string)+"/"+*e.Purpose)
		}
	}
	slices.Sort(reads[actA])
	if !slices.Equal(reads[actA], []string{"api/controle", "export/archivage"}) || !slices.Equal(reads[actB], []string{"export/archivage"}) {
		t.Fatalf("lectures exportées : %v", reads)
	}

	// One byte changed in one file: audit check names that file.
	names := []string{"manifest.json", "evenements.json"}
	for _, f := range files {
		if strings.HasPrefix(f.name, "actes/") || strings.HasPrefix(f.name, "points-d-ancrage/") || strings.HasPrefix(f.name, "rapports/") {
			names = append(names, f.name)
		}
	}
	if len(names) < 2+2+2+2 {
		t.Fatalf("fichiers de l'export : %v", names)
	}
	for _, name := range names {
		changed := slices.Clone(files)
		i := slices.IndexFunc(changed, func(f tarFile) bool { return f.name == name })
		data := slices.Clone(changed[i].data)
		data[len(data)/2] ^= 0x01
		changed[i].data = data
		r, err := auditlog.Check(bytes.NewReader(retar(t, changed)), s.API.Roots)
		if err != nil {
			t.Fatalf("%s : %v", name, err)
		}
		if r.OK || len(r.Problems) == 0 || r.Problems[0].File != name {
			t.Errorf("un octet changé dans %s : %+v", name, r.Problems)
		}
	}
	// A file removed, a file added.
	dropped := slices.DeleteFunc(slices.Clone(files), func(f tarFile) bool {
		return strings.HasPrefix(f.name, "actes/") && strings.HasSuffix(f.name, "-00002-v1.pdf")
	})
	if r, _ := auditlog.Check(bytes.NewReader(retar(t, dropped)), s.API.Roots); r.OK || !strings.Contains(r.Problems[0].Problem, "manquant") {
		t.Errorf("PDF retiré : %+v", r.Problems)
	}
	added := append(slices.Clone(files), tarFile{"actes/12202/2021/naissance-00009-v1.pdf", p3})
	if r, _ := auditlog.Check(bytes.NewReader(retar(t, added)), s.API.Roots); r.OK || r.Problems[0].File != "actes/12202/2021/naissance-00009-v1.pdf" {
		t.Errorf("PDF ajouté : %+v", r.Problems)
	}
	// Other trust roots: the seals do not verify.
	if r, _ := auditlog.Check(bytes.NewReader(bundle), x509.NewCertPool()); r.OK || r.Problems[0].File != "manifest.json" {
		t.Errorf("autres racines : %+v", r.Problems)
	}
	// Not a bundle at all.
	if _, err := auditlog.Check(strings.NewReader("%PDF-1.7"), s.API.Roots); err == nil {
		t.Error("un fichier qui n'est pas un export est accepté")
	}
}
