package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// wantEntry checks one entry of a processed batch.
func wantEntry(t *testing.T, b store.BatchView, i int, file, state string, reason model.Reason, version int, unchanged bool) store.BatchEntry {
	t.Helper()
	if i >= len(b.Acts) {
		t.Fatalf("lot %s: pas d'entrée %d", b.ID, i)
	}
	e := b.Acts[i]
	ok := e.File == file && e.State == state && e.Unchanged == unchanged
	if reason == "" {
		ok = ok && e.Reason == nil && e.Message == nil
	} else {
		ok = ok && e.Reason != nil && *e.Reason == string(reason) && e.Message != nil && strings.HasPrefix(*e.Message, reason.Message())
	}
	if version > 0 {
		ok = ok && e.Version != nil && *e.Version == version
	}
	if !ok {
		t.Errorf("entrée %d: %s ; attendu file=%q state=%s reason=%q version=%d unchanged=%v", i, describe(e), file, state, reason, version, unchanged)
	}
	return e
}

func getAct(t *testing.T, s *testenv.Stack, token, id string) (store.ActView, []byte) {
	t.Helper()
	r := send(t, s.URL, token, apiReq{method: "GET", path: "/api/v1/acts/" + id})
	if r.status != 200 {
		t.Fatalf("GET acte %s: statut %d: %s", id, r.status, r.body)
	}
	var a store.ActView
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	return a, r.body
}

func TestActIdentityAndVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "smica", "12202")
	hubToken := s.Token(t, auth.RoleHub, "smica")
	c := client.New(s.URL, hubToken)

	pdfA, pdfB, pdfC, pdfD, pdfE := goodPDF(601), goodPDF(602), goodPDF(603), goodPDF(604), goodPDF(605)
	bad := append([]byte("JUNK"), goodPDF(606)...)
	fixed := goodPDF(607)
	otherPersons := []map[string]any{{"role": "titulaire", "surname": "DUPONT", "given_names": []string{"Louise"}, "sex": "F"}}

	// Batch 1: within one manifest, later entries are judged against
	// earlier ones in manifest order.
	m1 := manifestBytes(t, "smica",
		act("A.pdf", pdfA, 1),      // 0: act 1, v1
		act("A-copy.pdf", pdfA, 1), // 1: same file, same index: unchanged
		with(act("A-other-index.pdf", pdfA, 1), "persons", otherPersons), // 2: index_conflict
		act("B.pdf", pdfB, 1), // 3: duplicate_act
		with(act("B-replaces.pdf", pdfB, 1), "replaces", sha(pdfC), "revision_reason", "rescan"), // 4: revision_conflict
		act("C.pdf", pdfC, 2),  // 5: act 2, v1
		act("bad.pdf", bad, 3), // 6: act 3, rejected not_pdf
	)
	b1 := uploadBatch(t, c, m1, map[string][]byte{"A.pdf": pdfA, "C.pdf": pdfC, "bad.pdf": bad})
	if b1.State != "done" {
		t.Errorf("lot 1: état %s, attendu done", b1.State)
	}
	eA := wantEntry(t, b1, 0, "A.pdf", "archived", "", 1, false)
	eCopy := wantEntry(t, b1, 1, "A-copy.pdf", "archived", "", 1, true)
	eIdx := wantEntry(t, b1, 2, "A-other-index.pdf", "rejected", model.ReasonIndexConflict, 0, false)
	eDup := wantEntry(t, b1, 3, "B.pdf", "rejected", model.ReasonDuplicateAct, 0, false)
	eRev := wantEntry(t, b1, 4, "B-replaces.pdf", "rejected", model.ReasonRevisionConflict, 0, false)
	eC := wantEntry(t, b1, 5, "C.pdf", "archived", "", 1, false)
	eBad := wantEntry(t, b1, 6, "bad.pdf", "rejected", model.ReasonNotPDF, 1, false)
	if eA.ID == nil || eC.ID == nil || eBad.ID == nil {
		t.Fatalf("ids manquants: %s %s %s", describe(eA), describe(eC), describe(eBad))
	}
	actA, actC, act3 := *eA.ID, *eC.ID, *eBad.ID
	for _, e := range []store.BatchEntry{eCopy, eIdx, eDup, eRev} {
		if e.ID == nil || *e.ID != actA {
			t.Errorf("%s: id %v, attendu l'acte 1 %s (l'id est stable pour la clé)", e.File, deref(e.ID), actA)
		}
	}
	if actA == actC || actA == act3 || actC == act3 {
		t.Errorf("actes distincts de même id: %s %s %s", actA, actC, act3)
	}

	// Batch 2: the same table across batches.
	m2 := manifestBytes(t, "smica",
		act("A.pdf", pdfA, 1), // 0: unchanged, shows v1
		with(act("A-index.pdf", pdfA, 1), "persons", otherPersons), // 1: index_conflict
		with(act("A-corr.pdf", pdfA, 1), "persons", otherPersons,
			"replaces", sha(pdfA), "revision_reason", "correction_index"), // 2: v2, same file
		act("D.pdf", pdfD, 2), // 3: duplicate_act
		with(act("D-rescan.pdf", pdfD, 2), "replaces", sha(pdfC), "revision_reason", "rescan"),     // 4: v2 of act 2
		with(act("E.pdf", pdfE, 2), "replaces", sha(pdfC), "revision_reason", "mention_marginale"), // 5: C is no longer current: revision_conflict
		act("fixed.pdf", fixed, 3), // 6: the rejected bad.pdf held nothing: v1 afresh
	)
	bv, created, err := c.CreateBatch(ctx, m2, false, key(m2))
	if err != nil || !created {
		t.Fatalf("lot 2: %v %v", created, err)
	}
	// Only the entries that take a file are awaited.
	if fmt.Sprint(bv.MissingFiles) != "[A-corr.pdf D-rescan.pdf fixed.pdf]" {
		t.Errorf("lot 2: missing_files %v, attendu [A-corr.pdf D-rescan.pdf fixed.pdf]", bv.MissingFiles)
	}
	// An unchanged entry takes no file.
	if st, _ := clientErr(t, c.PutFile(ctx, bv.ID, "A.pdf", bytes.NewReader(pdfA), int64(len(pdfA)))); st != 409 {
		t.Errorf("PUT d'une entrée inchangée: statut %d, attendu 409", st)
	}
	for name, data := range map[string][]byte{"A-corr.pdf": pdfA, "D-rescan.pdf": pdfD, "fixed.pdf": fixed} {
		if err := c.PutFile(ctx, bv.ID, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("PUT %s: %v", name, err)
		}
	}
	if _, _, err := c.Submit(ctx, bv.ID); err != nil {
		t.Fatal(err)
	}
	b2 := waitBatch(t, c, bv.ID)
	if b2.State != "done" {
		t.Errorf("lot 2: état %s, attendu done", b2.State)
	}
	wantEntry(t, b2, 0, "A.pdf", "archived", "", 1, true)
	wantEntry(t, b2, 1, "A-index.pdf", "rejected", model.ReasonIndexConflict, 0, false)
	wantEntry(t, b2, 2, "A-corr.pdf", "archived", "", 2, false)
	wantEntry(t, b2, 3, "D.pdf", "rejected", model.ReasonDuplicateAct, 0, false)
	wantEntry(t, b2, 4, "D-rescan.pdf", "archived", "", 2, false)
	wantEntry(t, b2, 5, "E.pdf", "rejected", model.ReasonRevisionConflict, 0, false)
	wantEntry(t, b2, 6, "fixed.pdf", "archived", "", 1, false)
	for i, want := range []string{actA, actA, actA, actC, actC, actC, act3} {
		if e := b2.Acts[i]; e.ID == nil || *e.ID != want {
			t.Errorf("lot 2, entrée %d (%s): id %v, attendu %s", i, e.File, deref(e.ID), want)
		}
	}

	// The act shows its versions and their history.
	admin := s.Token(t, auth.RoleAdmin, "")
	a, raw := getAct(t, s, admin, actA)
	if a.CurrentVersion == nil || *a.CurrentVersion != 2 || a.State != "archived" {
		t.Errorf("acte 1: current_version %v, état %s ; attendu 2, archived", deref(a.CurrentVersion), a.State)
	}
	if len(a.Versions) != 2 {
		t.Fatalf("acte 1: %d versions, attendu 2: %s", len(a.Versions), raw)
	}
	v1, v2 := a.Versions[0], a.Versions[1]
	if v1.Version != 1 || v1.SHA256 != sha(pdfA) || v1.State != "archived" || v1.RevisionReason != nil {
		t.Errorf("acte 1, v1: %+v", v1)
	}
	if v2.Version != 2 || v2.SHA256 != sha(pdfA) || v2.State != "archived" || v2.RevisionReason == nil || *v2.RevisionReason != "correction_index" {
		t.Errorf("acte 1, v2: %+v", v2)
	}
	wantHistory(t, "acte 1", a.History, []string{"1:received", "1:validated", "1:sealed", "1:archived", "2:received", "2:validated", "2:sealed", "2:archived"})
	if strings.Contains(string(raw), `"persons"`) || strings.Contains(string(raw), "MARTIN") || strings.Contains(string(raw), "DUPONT") {
		t.Errorf("acte sans ?persons=1: données personnelles présentes: %s", raw)
	}

	a2, raw2 := getAct(t, s, admin, actC)
	if a2.CurrentVersion == nil || *a2.CurrentVersion != 2 || len(a2.Versions) != 2 ||
		a2.Versions[0].SHA256 != sha(pdfC) || a2.Versions[1].SHA256 != sha(pdfD) ||
		a2.Versions[1].RevisionReason == nil || *a2.Versions[1].RevisionReason != "rescan" {
		t.Errorf("acte 2: %s", raw2)
	}
	wantHistory(t, "acte 2", a2.History, []string{"1:received", "1:validated", "1:sealed", "1:archived", "2:received", "2:validated", "2:sealed", "2:archived"})

	a3, raw3 := getAct(t, s, admin, act3)
	if a3.CurrentVersion == nil || *a3.CurrentVersion != 1 || a3.State != "archived" {
		t.Errorf("acte 3: current_version %v, état %s: %s", deref(a3.CurrentVersion), a3.State, raw3)
	}
	var current *store.VersionView
	for i := range a3.Versions {
		if a3.Versions[i].State == "archived" {
			current = &a3.Versions[i]
		}
	}
	if current == nil || current.Version != 1 || current.SHA256 != sha(fixed) {
		t.Errorf("acte 3: la version validée doit être la v1 de fixed.pdf: %s", raw3)
	}
	wantHistory(t, "acte 3", a3.History, []string{"1:received", "1:rejected", "1:received", "1:validated", "1:sealed", "1:archived"})

	// Person data: only with ?persons=1 and a purpose, and every read is
	// audited.
	townhall := s.Token(t, auth.RoleTownhall, "", "12202")
	elsewhere := s.Token(t, auth.RoleTownhall, "", "12145")
	auditor := s.Token(t, auth.RoleAuditor, "")
	persons := func(token, purpose, reason string) apiResp {
		h := http.Header{}
		if purpose != "" {
			h.Set("Etatcivil-Purpose", purpose)
		}
		if reason != "" {
			h.Set("Etatcivil-Reason", reason)
		}
		return send(t, s.URL, token, apiReq{method: "GET", path: "/api/v1/acts/" + actA + "?persons=1", header: h})
	}
	auditCount := func() int {
		var n int
		if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'act.read_persons'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		name, token, purpose string
		status               int
		typ                  string
	}{
		{"mairie sans finalité", townhall, "", 400, "purpose_required"},
		{"mairie, finalité inconnue", townhall, "curiosite", 400, "purpose_required"},
		{"auditeur sans finalité", auditor, "", 400, "purpose_required"},
		{"admin sans finalité", admin, "", 400, "purpose_required"},
		{"hub sans finalité", hubToken, "", 400, "purpose_required"},
		{"autre mairie avec finalité", elsewhere, "controle", 404, "not_found"},
		{"autre mairie sans finalité", elsewhere, "", 404, "not_found"},
	} {
		r := persons(tc.token, tc.purpose, "")
		wantProblem(t, tc.name, r, tc.status, tc.typ)
		if strings.Contains(string(r.body), "DUPONT") || strings.Contains(string(r.body), "MARTIN") {
			t.Errorf("%s: données personnelles dans le refus: %s", tc.name, r.body)
		}
	}
	if n := auditCount(); n != 0 {
		t.Errorf("%d lecture(s) de personnes auditée(s) alors qu'aucune n'a abouti", n)
	}

	const reason = "Demande de copie intégrale n° 2024-117"
	r := persons(townhall, "delivrance_copie", reason)
	if r.status != 200 {
		t.Fatalf("lecture des personnes: statut %d: %s", r.status, r.body)
	}
	var withPersons struct {
		ID      string `json:"id"`
		Persons []struct {
			Role    string `json:"role"`
			Surname string `json:"surname"`
		} `json:"persons"`
	}
	if err := json.Unmarshal(r.body, &withPersons); err != nil {
		t.Fatal(err)
	}
	// The current version (v2, correction_index) carries the new index.
	if withPersons.ID != actA || len(withPersons.Persons) != 1 || withPersons.Persons[0].Surname != "DUPONT" || withPersons.Persons[0].Role != "titulaire" {
		t.Errorf("personnes: %s, attendu DUPONT (index de la v2)", r.body)
	}
	if r := persons(auditor, "controle", ""); r.status != 200 {
		t.Errorf("auditeur avec finalité: statut %d: %s", r.status, r.body)
	}

	townhallID, _, _ := auth.Parse(townhall)
	auditorID, _, _ := auth.Parse(auditor)
	rows, err := s.Store.Pool.Query(ctx, `SELECT actor, actor_name, coalesce(act_id::text, ''), coalesce(purpose, ''), coalesce(reason, '')
		FROM audit_events WHERE action = 'act.read_persons' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var actor, name, actID, purpose, why string
		if err := rows.Scan(&actor, &name, &actID, &purpose, &why); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join([]string{actor, name, actID, purpose, why}, "|"))
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	want := []string{
		strings.Join([]string{townhallID, "test townhall", actA, "delivrance_copie", reason}, "|"),
		strings.Join([]string{auditorID, "test auditor", actA, "controle", ""}, "|"),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audit des lectures:\n%v\nattendu\n%v", got, want)
	}
}

// wantHistory checks that history holds the "version:state" items of
// want in this order (other states may come between).
func wantHistory(t *testing.T, what string, h []store.HistoryItem, want []string) {
	t.Helper()
	var got []string
	for _, it := range h {
		got = append(got, fmt.Sprintf("%d:%s", it.Version, it.State))
	}
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i != len(want) {
		t.Errorf("%s: historique %v, attendu dans l'ordre %v", what, got, want)
	}
	for j := 1; j < len(h); j++ {
		if h[j].At.Before(h[j-1].At) {
			t.Errorf("%s: historique non chronologique: %v", what, got)
		}
	}
}
