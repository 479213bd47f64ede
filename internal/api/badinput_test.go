package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// badCase is one manifest entry of the mixed batch: the entry, the bytes
// sent for it (nil: nothing is sent), the status expected for the PUT, and
// the outcome (reason "" means validated).
type badCase struct {
	entry     map[string]any
	body      []byte
	putStatus int
	reason    model.Reason
	// msgHas are substrings the message must contain (a JSON pointer).
	msgHas []string
	// nullID: the entry never named an act, so its id is null.
	nullID bool
}

func (c badCase) file() string { return c.entry["file"].(string) }

// mixedCases builds one entry for every row of INTERFACE.md's reason-code
// table that a single default stack can produce, between good entries.
// Numbers are the act numbers (commune 12202, naissance, 2021) and must
// not collide unless a case is about identity.
func mixedCases() []badCase {
	good1, good2, good3 := goodPDF(101), goodPDF(102), goodPDF(103)
	other := goodPDF(104)
	scan := goodPDF(105)
	small := buildPDF(docOpts{})
	startxref := append(bytes.Clone(scan[:bytes.LastIndex(scan, []byte("startxref"))]), "startxref\n123\n%%EOF\n"...)

	c := func(file string, data []byte, number int, reason model.Reason) badCase {
		return badCase{entry: act(file, data, number), body: data, putStatus: 201, reason: reason}
	}
	manifestOnly := func(e map[string]any, reason model.Reason, msgHas ...string) badCase {
		return badCase{entry: e, reason: reason, msgHas: msgHas}
	}
	mismatch := act("mismatch.pdf", good2, 30) // declares good2, receives another file
	cases := []badCase{
		c("good-1.pdf", good1, 1, ""),
		c("empty.pdf", []byte{}, 2, model.ReasonNotPDF),
		c("junk.pdf", append([]byte("JUNK\n"), small...), 3, model.ReasonNotPDF),
		c("xref-offsets.pdf", brokenXref(scan), 4, model.ReasonPDFMalformed),
		c("startxref.pdf", startxref, 5, model.ReasonPDFMalformed),
		c("truncated.pdf", scan[:len(scan)*2/3], 6, model.ReasonPDFMalformed),
		c("no-eof.pdf", bytes.TrimSuffix(scan, []byte("%%EOF\n")), 7, model.ReasonPDFMalformed),
		c("encrypted.pdf", pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 106, DPI: 100, Encrypt: true}), 8, model.ReasonPDFEncrypted),
		c("openaction-js.pdf", pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 107, DPI: 100,
			CatalogExtra: "/OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >>"}), 9, model.ReasonPDFActiveContent),
		c("uri-link.pdf", buildPDF(docOpts{page: "/Annots [<< /Type /Annot /Subtype /Link /Rect [0 0 9 9] /A << /S /URI /URI (https://example.org) >> >>]"}),
			10, model.ReasonPDFActiveContent),
		c("attachment.pdf", buildPDF(docOpts{catalog: "/Names << /EmbeddedFiles << /Names [(a.txt) << /Type /Filespec /F (a.txt) >>] >> >>"}),
			11, model.ReasonPDFEmbeddedFiles),
		c("pages-20.pdf", buildPDF(docOpts{pages: 20}), 12, ""),
		c("pages-21.pdf", buildPDF(docOpts{pages: 21}), 13, model.ReasonPDFTooManyPages),
		c("bomb.pdf", buildPDF(docOpts{content: gigaBomb(), contentDict: "/Filter /FlateDecode"}), 14, model.ReasonPDFDecompressionLimit),
		{entry: mismatch, body: good3, putStatus: 422, reason: model.ReasonChecksumMismatch},
		c("good-2.pdf", good2, 15, ""),
		// The same name again: the later entry is refused, the first keeps its outcome.
		manifestOnly(act("good-2.pdf", good2, 16), model.ReasonFileDuplicate, "/acts/16/file"),
		manifestOnly(with(act("bad-kind.pdf", other, 17), "kind", "bapteme"), model.ReasonManifestInvalid, "/acts/17/kind"),
		manifestOnly(with(act("no-date.pdf", other, 18), "act_date", nil), model.ReasonManifestInvalid, "/acts/18/act_date"),
		manifestOnly(with(act("retimestamp.pdf", other, 19), "replaces", sha(good1), "revision_reason", "retimestamp"),
			model.ReasonManifestInvalid, "/acts/19/revision_reason"),
		manifestOnly(act("../evil.pdf", other, 20), model.ReasonFileNameInvalid, "/acts/20/file"),
		manifestOnly(act("dossier/acte.pdf", other, 21), model.ReasonFileNameInvalid, "/acts/21/file"),
		manifestOnly(act("bad:name.pdf", other, 22), model.ReasonFileNameInvalid, "/acts/22/file"),
		{entry: act("missing.pdf", other, 23), reason: model.ReasonFileMissing},
		manifestOnly(entryFor("unknown-commune.pdf", other, "12999", 24), model.ReasonCommuneInvalid, "/acts/24/commune"),
		manifestOnly(entryFor("millau.pdf", other, "12145", 25), model.ReasonCommuneNotMember, "/acts/25/commune"),
		manifestOnly(with(act("feb-30.pdf", other, 26), "act_date", "2021-02-30", "event_date", nil), model.ReasonDateInvalid, "/acts/26/act_date"),
		manifestOnly(with(act("wrong-year.pdf", other, 27), "act_date", "2020-03-15", "event_date", "2020-03-14"), model.ReasonDateInvalid, "/acts/27/act_date"),
		manifestOnly(with(act("event-after.pdf", other, 28), "event_date", "2021-03-16"), model.ReasonDateInvalid, "/acts/28/event_date"),
		manifestOnly(with(act("future.pdf", other, 29), "year", 2099, "act_date", "2099-01-01", "event_date", nil), model.ReasonDateInvalid, "/acts/29/act_date"),
		// Identity, against good-1 (number 1) earlier in this manifest.
		manifestOnly(act("other-file-same-act.pdf", other, 1), model.ReasonDuplicateAct),
		manifestOnly(with(act("same-file-other-index.pdf", good1, 1), "persons",
			[]map[string]any{{"role": "titulaire", "surname": "DURAND", "given_names": []string{"Paul"}, "sex": "M"}}), model.ReasonIndexConflict),
		manifestOnly(with(act("wrong-replaces.pdf", other, 1), "replaces", sha([]byte("not the current version")), "revision_reason", "rescan"),
			model.ReasonRevisionConflict),
		manifestOnly(with(act("one-spouse.pdf", other, 31), "kind", "mariage", "persons",
			[]map[string]any{{"role": "epoux", "surname": "MARTIN", "given_names": []string{"Jean"}}}), model.ReasonPersonsInvalid, "/acts/33/persons"),
		c("page-tree.pdf", brokenPageTree(), 33, model.ReasonPDFMalformed),
		c("good-3.pdf", good3, 32, ""),
	}
	// The pointers above name positions: check them once here.
	for i, cs := range cases {
		for _, m := range cs.msgHas {
			if !strings.HasPrefix(m, fmt.Sprintf("/acts/%d/", i)) {
				panic(fmt.Sprintf("cas %d (%s): pointeur %s ne désigne pas sa position", i, cs.file(), m))
			}
		}
		switch cs.reason {
		case model.ReasonManifestInvalid, model.ReasonFileNameInvalid, model.ReasonCommuneInvalid:
			cases[i].nullID = true
		}
	}
	return cases
}

// checkOutcomes compares a processed batch with the cases.
func checkOutcomes(t *testing.T, b store.BatchView, cases []badCase) {
	t.Helper()
	if len(b.Acts) != len(cases) {
		t.Fatalf("lot: %d entrées, %d attendues", len(b.Acts), len(cases))
	}
	good, bad := 0, 0
	var firstGood1 *string
	for i, cs := range cases {
		e := b.Acts[i]
		if e.File != cs.file() {
			t.Errorf("entrée %d: file %q, attendu %q (ordre du manifeste, nom exact)", i, e.File, cs.file())
			continue
		}
		if cs.file() == "good-1.pdf" {
			firstGood1 = e.ID
		}
		if cs.reason == "" {
			good++
			if e.State != string(model.StateArchived) || e.Reason != nil || e.Message != nil || e.ID == nil || e.Version == nil || *e.Version != 1 {
				t.Errorf("entrée %d: %s, attendue archived v1 sans raison", i, describe(e))
			}
			continue
		}
		bad++
		if e.State != string(model.StateRejected) || e.Reason == nil || *e.Reason != string(cs.reason) {
			t.Errorf("entrée %d: %s, attendue rejected %s", i, describe(e), cs.reason)
			continue
		}
		if e.Message == nil || !strings.HasPrefix(*e.Message, cs.reason.Message()) {
			t.Errorf("entrée %d: message %v, attendu le texte français de %s", i, deref(e.Message), cs.reason)
			continue
		}
		for _, m := range cs.msgHas {
			if !strings.Contains(*e.Message, m) {
				t.Errorf("entrée %d (%s): le message %q ne contient pas %q", i, cs.reason, *e.Message, m)
			}
		}
		if cs.nullID && e.ID != nil {
			t.Errorf("entrée %d (%s): id %s, attendu null (aucun acte nommé)", i, cs.reason, *e.ID)
		}
		switch cs.reason {
		case model.ReasonDuplicateAct, model.ReasonIndexConflict, model.ReasonRevisionConflict:
			// Judged against good-1: the entry names that act.
			if e.ID == nil || firstGood1 == nil || *e.ID != *firstGood1 {
				t.Errorf("entrée %d (%s): id %v, attendu l'acte de good-1.pdf %v", i, cs.reason, deref(e.ID), deref(firstGood1))
			}
		}
	}
	c := b.Counts
	if c.Total != len(cases) || c.Pending != 0 || c.Archived != good || c.Rejected != bad || c.Validated != 0 || c.Stalled != 0 {
		t.Errorf("compteurs %+v, attendus total %d, archived %d, rejected %d", c, len(cases), good, bad)
	}
}

func TestBadInputMixedBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "smica", "12202")
	c := client.New(s.URL, s.Token(t, auth.RoleHub, "smica"))
	cases := mixedCases()

	var entries []map[string]any
	for _, cs := range cases {
		entries = append(entries, cs.entry)
	}
	m := manifestBytes(t, "smica", entries...)
	b, created, err := c.CreateBatch(ctx, m, false, key(m))
	if err != nil || !created {
		t.Fatalf("création: %v %v", created, err)
	}
	// missing_files: every entry still waiting for its bytes, in manifest
	// order, once per name.
	var wantMissing []string
	for _, cs := range cases {
		if (cs.body != nil || cs.reason == model.ReasonFileMissing) && !contains(wantMissing, cs.file()) {
			wantMissing = append(wantMissing, cs.file())
		}
	}
	if fmt.Sprint(b.MissingFiles) != fmt.Sprint(wantMissing) {
		t.Errorf("missing_files = %v\nattendu       %v", b.MissingFiles, wantMissing)
	}
	if b.State != "receiving" {
		t.Errorf("état du lot avant soumission: %s", b.State)
	}
	for _, cs := range cases {
		if cs.body == nil {
			continue
		}
		err := c.PutFile(ctx, b.ID, cs.file(), bytes.NewReader(cs.body), int64(len(cs.body)))
		status, typ := clientErr(t, err)
		if status == 0 {
			status = 201
		}
		if status != cs.putStatus {
			t.Errorf("PUT %s: statut %d (%s), attendu %d", cs.file(), status, typ, cs.putStatus)
		}
		if cs.putStatus == 422 && typ != string(model.ReasonChecksumMismatch) {
			t.Errorf("PUT %s: type %q, attendu checksum_mismatch", cs.file(), typ)
		}
	}
	// The mismatched file is not received: it is still missing.
	after, _, err := c.Batch(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after.MissingFiles) != "[mismatch.pdf missing.pdf]" {
		t.Errorf("missing_files après envoi = %v, attendu [mismatch.pdf missing.pdf]", after.MissingFiles)
	}
	if _, _, err := c.Submit(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	done := waitBatch(t, c, b.ID)
	checkOutcomes(t, done, cases)
	if done.State != "incomplete" {
		t.Errorf("état du lot %s, attendu incomplete (un fichier manquant)", done.State)
	}
	if len(done.MissingFiles) != 0 {
		t.Errorf("missing_files après soumission: %v", done.MissingFiles)
	}
	// After submit, a late file is refused and changes nothing.
	late := goodPDF(999)
	if st, _ := clientErr(t, c.PutFile(ctx, b.ID, "missing.pdf", bytes.NewReader(late), int64(len(late)))); st != 409 {
		t.Errorf("PUT après soumission: statut %d, attendu 409", st)
	}

	// The one-shot multipart form: the same rules, in a new batch with
	// its own act numbers.
	t.Run("multipart", func(t *testing.T) {
		good := goodPDF(201)
		bombPDF := buildPDF(docOpts{content: gigaBomb(), contentDict: "/Filter /FlateDecode"})
		js := pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 202, DPI: 100, CatalogExtra: "/OpenAction << /S /JavaScript /JS (x) >>"})
		junk := append([]byte("<html>"), buildPDF(docOpts{})...)
		declared, sent := goodPDF(203), goodPDF(204)
		mcases := []badCase{
			{entry: act("m-good.pdf", good, 101), body: good},
			{entry: act("m-empty.pdf", []byte{}, 102), body: []byte{}, reason: model.ReasonNotPDF},
			{entry: act("m-junk.pdf", junk, 103), body: junk, reason: model.ReasonNotPDF},
			{entry: act("m-js.pdf", js, 104), body: js, reason: model.ReasonPDFActiveContent},
			{entry: act("m-bomb.pdf", bombPDF, 105), body: bombPDF, reason: model.ReasonPDFDecompressionLimit},
			{entry: act("m-mismatch.pdf", declared, 106), body: sent, reason: model.ReasonChecksumMismatch},
			{entry: act("m-missing.pdf", goodPDF(205), 107), reason: model.ReasonFileMissing},
			{entry: with(act("m-bad-date.pdf", good, 108), "act_date", "2021-13-01"), reason: model.ReasonDateInvalid, msgHas: []string{"/acts/7/act_date"}},
			{entry: act("m-dup-act.pdf", goodPDF(206), 1), reason: model.ReasonDuplicateAct}, // act 1 is held by good-1.pdf
		}
		var ents []map[string]any
		for _, cs := range mcases {
			ents = append(ents, cs.entry)
		}
		mm := manifestBytes(t, "smica", ents...)
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		part, err := mw.CreateFormFile("manifest", "manifest.json")
		if err != nil {
			t.Fatal(err)
		}
		part.Write(mm)
		for _, cs := range mcases {
			if cs.body == nil {
				continue
			}
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, cs.file()))
			h.Set("Content-Type", "application/pdf")
			p, err := mw.CreatePart(h)
			if err != nil {
				t.Fatal(err)
			}
			p.Write(cs.body)
		}
		// A part the manifest does not name is ignored and reported.
		p, _ := mw.CreateFormFile("file", "stranger.pdf")
		p.Write(good)
		mw.Close()
		r := send(t, s.URL, c.Token, apiReq{method: "POST", path: "/api/v1/batches", body: body.Bytes(),
			header: http.Header{"Content-Type": {mw.FormDataContentType()}, "Idempotency-Key": {key(mm)}}})
		if r.status != 201 {
			t.Fatalf("POST multipart: statut %d: %s", r.status, r.body)
		}
		if !strings.Contains(string(r.body), "stranger.pdf") {
			t.Errorf("POST multipart: la partie inconnue n'est pas signalée: %s", r.body)
		}
		var mb store.BatchView
		if err := json.Unmarshal(r.body, &mb); err != nil {
			t.Fatal(err)
		}
		done := waitBatch(t, c, mb.ID)
		for i, cs := range mcases {
			e := done.Acts[i]
			if cs.reason == "" {
				if e.State != "archived" {
					t.Errorf("multipart %s: %s, attendue archived", cs.file(), describe(e))
				}
				continue
			}
			if e.State != "rejected" || e.Reason == nil || *e.Reason != string(cs.reason) ||
				e.Message == nil || !strings.HasPrefix(*e.Message, cs.reason.Message()) {
				t.Errorf("multipart %s: %s, attendue rejected %s", cs.file(), describe(e), cs.reason)
			}
			for _, m := range cs.msgHas {
				if e.Message != nil && !strings.Contains(*e.Message, m) {
					t.Errorf("multipart %s: message %q sans %q", cs.file(), *e.Message, m)
				}
			}
		}
		if done.State != "incomplete" {
			t.Errorf("multipart: état %s, attendu incomplete", done.State)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// batchCount counts the batches in the database.
func batchCount(t *testing.T, s *testenv.Stack) int {
	t.Helper()
	var n int
	if err := s.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM batches`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBatchRefusals covers the refusals of whole requests: manifests that
// cannot be parsed, unknown or foreign hubs, idempotency, unexpected files
// and a missing Content-Length.
func TestBatchRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testenv.NewStack(t, testenv.StackOptions{NoWorkers: true})
	s.Hub(t, "smica", "12202")
	s.Hub(t, "autre", "12145")
	hub := s.Token(t, auth.RoleHub, "smica")
	admin := s.Token(t, auth.RoleAdmin, "")
	pdf := goodPDF(301)
	good := manifestBytes(t, "smica", act("a.pdf", pdf, 1))

	post := func(token string, body []byte, idem string) apiResp {
		h := http.Header{"Content-Type": {"application/json"}}
		if idem != "" {
			h.Set("Idempotency-Key", idem)
		}
		return send(t, s.URL, token, apiReq{method: "POST", path: "/api/v1/batches", body: body, header: h})
	}
	refusals := []struct {
		name   string
		token  string
		body   []byte
		idem   string
		status int
		typ    string
	}{
		{"pas du JSON", hub, []byte(`{"hub": "smica", "acts": [`), "", 400, "manifest_unparseable"},
		{"manifeste vide", hub, []byte(``), "", 400, "manifest_unparseable"},
		{"acts n'est pas un tableau", hub, []byte(`{"hub": "smica", "acts": {}}`), "", 400, "manifest_unparseable"},
		{"null", hub, []byte(`null`), "", 400, "manifest_unparseable"},
		{"aucun acte", hub, []byte(`{"hub": "smica", "acts": []}`), "", 400, "manifest_unparseable"},
		{"champ inconnu", hub, []byte(`{"hub": "smica", "acts": [], "lot": 1}`), "", 400, "manifest_unparseable"},
		{"pas d'UTF-8", hub, []byte("{\"hub\": \"smica\", \"acts\": [{\"file\": \"\xff.pdf\"}]}"), "", 400, "manifest_unparseable"},
		{"opérateur inconnu (admin)", admin, manifestBytes(t, "inconnu", act("a.pdf", pdf, 1)), "", 400, "hub_unknown"},
		{"opérateur d'un autre jeton", hub, manifestBytes(t, "autre", entryFor("a.pdf", pdf, "12145", 1)), "", 403, ""},
		{"clé d'idempotence fausse", hub, good, key([]byte("autre chose")), 400, "idempotency_key_mismatch"},
	}
	for _, tc := range refusals {
		before := batchCount(t, s)
		r := post(tc.token, tc.body, tc.idem)
		wantProblem(t, tc.name, r, tc.status, tc.typ)
		if n := batchCount(t, s); n != before {
			t.Errorf("%s: %d lot(s) enregistré(s) malgré le refus", tc.name, n-before)
		}
	}
	// The one-shot form must start with the manifest.
	{
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		p, _ := mw.CreateFormFile("file", "a.pdf")
		p.Write(pdf)
		p, _ = mw.CreateFormFile("manifest", "manifest.json")
		p.Write(good)
		mw.Close()
		before := batchCount(t, s)
		r := send(t, s.URL, hub, apiReq{method: "POST", path: "/api/v1/batches", body: body.Bytes(),
			header: http.Header{"Content-Type": {mw.FormDataContentType()}}})
		wantProblem(t, "multipart sans manifeste en tête", r, 400, "")
		if n := batchCount(t, s); n != before {
			t.Errorf("multipart refusé: %d lot(s) enregistré(s)", n-before)
		}
	}
	var acts int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM acts`).Scan(&acts); err != nil || acts != 0 {
		t.Errorf("actes enregistrés malgré les refus: %d (%v)", acts, err)
	}

	// The same manifest twice: 201, then 200 with the same batch.
	r1 := post(hub, good, key(good))
	r2 := post(hub, good, key(good))
	r3 := post(hub, good, "") // no key: the digest of the body stands for it
	var b1, b2, b3 store.BatchView
	for _, x := range []struct {
		r    apiResp
		b    *store.BatchView
		want int
	}{{r1, &b1, 201}, {r2, &b2, 200}, {r3, &b3, 200}} {
		if x.r.status != x.want {
			t.Fatalf("même manifeste: statut %d, attendu %d: %s", x.r.status, x.want, x.r.body)
		}
		if err := json.Unmarshal(x.r.body, x.b); err != nil {
			t.Fatal(err)
		}
	}
	if b1.ID == "" || b2.ID != b1.ID || b3.ID != b1.ID {
		t.Fatalf("même manifeste: lots %s, %s, %s", b1.ID, b2.ID, b3.ID)
	}
	if n := batchCount(t, s); n != 1 {
		t.Fatalf("%d lots après trois envois du même manifeste", n)
	}
	if fmt.Sprint(b1.MissingFiles) != "[a.pdf]" || b1.State != "receiving" {
		t.Fatalf("nouveau lot: état %s, missing_files %v", b1.State, b1.MissingFiles)
	}
	// Upper-case hex is the same key.
	if r := post(hub, good, strings.ToUpper(key(good))); r.status != 200 {
		t.Errorf("clé en majuscules: statut %d: %s", r.status, r.body)
	}

	c := client.New(s.URL, hub)
	// A file the manifest does not name: 409.
	st, typ := clientErr(t, c.PutFile(ctx, b1.ID, "inconnu.pdf", bytes.NewReader(pdf), int64(len(pdf))))
	if st != 409 || typ != "file_not_in_manifest" {
		t.Errorf("PUT d'un fichier hors manifeste: %d %s, attendu 409 file_not_in_manifest", st, typ)
	}
	// No Content-Length (chunked body): 411.
	req, err := http.NewRequest("PUT", s.URL+"/api/v1/batches/"+b1.ID+"/files/a.pdf", io.MultiReader(bytes.NewReader(pdf)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+hub)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantProblem(t, "PUT sans Content-Length", apiResp{status: resp.StatusCode, header: resp.Header, body: data}, 411, "length_required")
	// Neither left anything: the entry still waits for its file.
	b, _, err := c.Batch(ctx, b1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(b.MissingFiles) != "[a.pdf]" {
		t.Errorf("missing_files après les refus: %v", b.MissingFiles)
	}
	assertNotStaged(t, s, b1.ID, 0)
	// A body shorter than its Content-Length is not kept either.
	if err := c.PutFile(ctx, b1.ID, "a.pdf", bytes.NewReader(pdf[:100]), int64(len(pdf))); err == nil {
		t.Errorf("PUT tronqué accepté")
	}
	assertNotStaged(t, s, b1.ID, 0)
	// The real file then arrives: 201.
	if err := c.PutFile(ctx, b1.ID, "a.pdf", bytes.NewReader(pdf), int64(len(pdf))); err != nil {
		t.Fatalf("PUT: %v", err)
	}
	// A 422 replaced by the right bytes: the entry is received after all.
	m2 := manifestBytes(t, "smica", act("b.pdf", pdf, 2))
	bb, _, err := c.CreateBatch(ctx, m2, false, key(m2))
	if err != nil {
		t.Fatal(err)
	}
	wrong := goodPDF(302)
	if st, _ := clientErr(t, c.PutFile(ctx, bb.ID, "b.pdf", bytes.NewReader(wrong), int64(len(wrong)))); st != 422 {
		t.Errorf("PUT de mauvais octets: statut %d, attendu 422", st)
	}
	if err := c.PutFile(ctx, bb.ID, "b.pdf", bytes.NewReader(pdf), int64(len(pdf))); err != nil {
		t.Errorf("PUT des bons octets après un 422: %v", err)
	}
	got, _, err := c.Batch(ctx, bb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.MissingFiles) != 0 || got.Acts[0].State != "received" {
		t.Errorf("après correction: missing_files %v, entrée %s", got.MissingFiles, describe(got.Acts[0]))
	}
}

// assertNotStaged fails if the staging bucket holds the file of entry idx
// of batch.
func assertNotStaged(t *testing.T, s *testenv.Stack, batch string, idx int) {
	t.Helper()
	obj, size, err := s.Blob.GetStaging(context.Background(), store.StagedKey(batch, idx))
	if err == nil {
		obj.Close()
		t.Errorf("objet de dépôt %s présent (%d octets), attendu absent", store.StagedKey(batch, idx), size)
	}
}

// TestFileSizeLimit runs a stack whose size limit is between a one-page
// and a two-page scan, in the API and in the checker alike (as the server
// configures them, from one setting).
func TestFileSizeLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	small, big := goodPDF(401), pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 402, Pages: 2, DPI: 100})
	limit := int64(len(small)) + 1000
	if int64(len(big)) <= limit {
		t.Fatalf("le grand fichier (%d) doit dépasser la limite (%d)", len(big), limit)
	}
	s := testenv.NewStack(t, testenv.StackOptions{
		Limits: api.Limits{MaxFileSize: limit},
		Tune:   func(d *ingest.Deps) { d.Limits.MaxFileSize = limit },
	})
	s.Hub(t, "smica", "12202")
	token := s.Token(t, auth.RoleHub, "smica")
	c := client.New(s.URL, token)
	m := manifestBytes(t, "smica", act("small.pdf", small, 1), act("big.pdf", big, 2))
	b, _, err := c.CreateBatch(ctx, m, false, key(m))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutFile(ctx, b.ID, "small.pdf", bytes.NewReader(small), int64(len(small))); err != nil {
		t.Fatalf("PUT small.pdf: %v", err)
	}
	// Over the limit: 413, announced by Content-Length alone.
	if st, typ := clientErr(t, c.PutFile(ctx, b.ID, "big.pdf", bytes.NewReader(big), int64(len(big)))); st != 413 {
		t.Errorf("PUT big.pdf: statut %d (%s), attendu 413", st, typ)
	}
	// 413 before any byte is read: with Expect: 100-continue the server
	// answers without asking for the body, which is never sent.
	u, _ := url.Parse(s.URL)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "PUT /api/v1/batches/%s/files/big.pdf HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/pdf\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", b.ID, u.Host, token, int64(1)<<30)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("réponse au PUT annoncé de 1 Gio: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("PUT annoncé de 1 Gio: statut %d, attendu 413 sans lire le corps", resp.StatusCode)
	}
	// Nothing of big.pdf was stored, and it was not received.
	assertNotStaged(t, s, b.ID, 1)
	got, _, err := c.Batch(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := got.Acts[1].State; st != "expected" && st != "rejected" {
		t.Errorf("big.pdf après le 413: %s", describe(got.Acts[1]))
	}
	if _, _, err := c.Submit(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	done := waitBatch(t, c, b.ID)
	if e := done.Acts[0]; e.State != "archived" {
		t.Errorf("small.pdf: %s, attendue archived", describe(e))
	}
	// The entry whose file was over the size limit ends pdf_too_large
	// (INTERFACE.md: "over the size limit → pdf_too_large"), not
	// file_missing: the file was sent, and refused for its size.
	e := done.Acts[1]
	if e.State != "rejected" || e.Reason == nil || *e.Reason != string(model.ReasonPDFTooLarge) ||
		e.Message == nil || !strings.HasPrefix(*e.Message, model.ReasonPDFTooLarge.Message()) {
		t.Errorf("big.pdf: %s, attendue rejected pdf_too_large", describe(e))
	}
}

// TestResourceLimit kills every checker child at once (a 1 ns time limit):
// the entry ends pdf_resource_limit, once, and is not retried.
func TestResourceLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testenv.NewStack(t, testenv.StackOptions{
		Tune: func(d *ingest.Deps) { d.Isolate.Timeout = time.Nanosecond },
	})
	s.Hub(t, "smica", "12202")
	c := client.New(s.URL, s.Token(t, auth.RoleHub, "smica"))
	pdf := goodPDF(501)
	b := uploadBatch(t, c, manifestBytes(t, "smica", act("a.pdf", pdf, 1)), map[string][]byte{"a.pdf": pdf})
	e := b.Acts[0]
	if e.State != "rejected" || e.Reason == nil || *e.Reason != string(model.ReasonPDFResourceLimit) ||
		e.Message == nil || !strings.HasPrefix(*e.Message, model.ReasonPDFResourceLimit.Message()) {
		t.Fatalf("a.pdf: %s, attendue rejected pdf_resource_limit", describe(e))
	}
	if b.State != "done" {
		t.Errorf("état du lot %s, attendu done", b.State)
	}
	// Once River has finished with the job, no retry can come: wait for
	// its final state (polled with a deadline), then check there was one
	// attempt and one rejected state in the history.
	var attempts int
	var jobState string
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.Store.Pool.QueryRow(ctx, `SELECT attempt, state FROM river_job WHERE kind = 'validate'`).Scan(&attempts, &jobState)
		if err != nil {
			t.Fatal(err)
		}
		if jobState == "cancelled" || jobState == "completed" || jobState == "discarded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tâche de validation toujours %s après %d tentative(s)", jobState, attempts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if attempts != 1 || jobState != "cancelled" {
		t.Errorf("tâche de validation: %d tentative(s), état %s ; attendu une seule, annulée (jamais réessayée)", attempts, jobState)
	}
	var states []string
	rows, err := s.Store.Pool.Query(ctx, `SELECT state FROM entry_history WHERE entry_id = $1 ORDER BY id`, e.EntryID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var st string
		if err := rows.Scan(&st); err != nil {
			t.Fatal(err)
		}
		states = append(states, st)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if fmt.Sprint(states) != "[expected received rejected]" {
		t.Errorf("historique %v, attendu [expected received rejected]", states)
	}
}
