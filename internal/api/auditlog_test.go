package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestAuditLogWhoReadWhat: every read of a PDF or of person data leaves
// one event with its actor, purpose and reason, a read without purpose is
// refused and leaves none; the audit log answers "who read act X" and
// "what did token Y read" (filtered by time, paged), each query being an
// event itself; pruning the reasons keeps their digests, and the chain
// and checkpoints still verify.
func TestAuditLogWhoReadWhat(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "h", "12202")
	hub := client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
	ctx := context.Background()
	p1, p2 := goodPDF(501), goodPDF(502)
	b := waitBatch(t, hub, uploadBatch(t, hub, manifestBytes(t, "h", act("a.pdf", p1, 1), act("b.pdf", p2, 2)),
		map[string][]byte{"a.pdf": p1, "b.pdf": p2}).ID)
	if b.Counts.Archived != 2 {
		t.Fatalf("lot : %+v", b.Counts)
	}
	actA, actB := *entryByFile(t, b, "a.pdf").ID, *entryByFile(t, b, "b.pdf").ID
	town, auditor := s.Token(t, auth.RoleTownhall, "", "12202"), s.Token(t, auth.RoleAuditor, "")
	townID, _, _ := auth.Parse(town)
	auditorID, _, _ := auth.Parse(auditor)

	reads := func(actID string) int {
		var n int
		if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE act_id = $1 AND action LIKE 'act.read%'`, actID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Refused without a purpose, through each channel; nothing recorded.
	wantProblem(t, "PDF sans finalité", send(t, s.URL, town, apiReq{method: "GET", path: "/api/v1/acts/" + actA + "/pdf"}), 400, "purpose_required")
	wantProblem(t, "personnes sans finalité", send(t, s.URL, town, apiReq{method: "GET", path: "/api/v1/acts/" + actA + "?persons=1"}), 400, "purpose_required")
	wantProblem(t, "finalité inconnue", send(t, s.URL, town, apiReq{method: "GET", path: "/api/v1/acts/" + actA + "/pdf",
		header: http.Header{"Etatcivil-Purpose": {"curiosite"}}}), 400, "purpose_required")
	if n := reads(actA); n != 0 {
		t.Fatalf("%d lectures enregistrées pour des lectures refusées", n)
	}
	get := func(token, path, purpose, reason string) {
		t.Helper()
		r := send(t, s.URL, token, apiReq{method: "GET", path: path, header: http.Header{"Etatcivil-Purpose": {purpose}, "Etatcivil-Reason": {reason}}})
		if r.status != 200 {
			t.Fatalf("%s : %d %s", path, r.status, r.body)
		}
	}
	get(town, "/api/v1/acts/"+actA+"/pdf", "delivrance_copie", "demande de copie intégrale n° 4521")
	get(town, "/api/v1/acts/"+actA+"?persons=1", "mise_a_jour", "mention de mariage")
	get(auditor, "/api/v1/acts/"+actB+"/pdf", "controle", "contrôle du parquet")
	if reads(actA) != 2 || reads(actB) != 1 {
		t.Fatalf("lectures : %d, %d", reads(actA), reads(actB))
	}

	type page struct {
		Events []store.AuditEvent `json:"events"`
		Next   *string            `json:"next"`
	}
	query := func(params url.Values) page {
		t.Helper()
		r := send(t, s.URL, auditor, apiReq{method: "GET", path: "/api/v1/audit/events?" + params.Encode()})
		var p page
		if r.status != 200 || json.Unmarshal(r.body, &p) != nil {
			t.Fatalf("journal %v : %d %s", params, r.status, r.body)
		}
		return p
	}
	readsIn := func(p page) []string {
		var out []string
		for _, e := range p.Events {
			if e.Action == "act.read_pdf" || e.Action == "act.read_persons" {
				reason := "<purgé>"
				if e.Reason != nil {
					reason = *e.Reason
				}
				out = append(out, e.Actor+" "+e.Action+" "+*e.Purpose+" "+reason)
			}
		}
		return out
	}
	// Who read act A.
	who := readsIn(query(url.Values{"act": {actA}}))
	want := []string{townID + " act.read_pdf delivrance_copie demande de copie intégrale n° 4521", townID + " act.read_persons mise_a_jour mention de mariage"}
	if len(who) != 2 || who[0] != want[0] || who[1] != want[1] {
		t.Fatalf("qui a lu l'acte A : %q", who)
	}
	// What the town hall's token read, and nothing in a window before it.
	if what := query(url.Values{"actor": {townID}}); len(what.Events) != 2 || *what.Events[0].ActID != actA {
		t.Fatalf("ce qu'a lu la mairie : %+v", what.Events)
	}
	if none := query(url.Values{"actor": {townID}, "to": {time.Now().Add(-time.Hour).Format(time.RFC3339)}}); len(none.Events) != 0 {
		t.Fatalf("fenêtre vide : %+v", none.Events)
	}
	// Paged: one at a time, following the cursor.
	first := query(url.Values{"actor": {townID}, "limit": {"1"}})
	if len(first.Events) != 1 || first.Next == nil {
		t.Fatalf("première page : %+v", first)
	}
	second := query(url.Values{"actor": {townID}, "limit": {"1"}, "cursor": {*first.Next}})
	if len(second.Events) != 1 || second.Events[0].ID == first.Events[0].ID {
		t.Fatalf("deuxième page : %+v", second)
	}
	// A query needs an act or an actor; town halls may not query.
	wantProblem(t, "journal sans filtre", send(t, s.URL, auditor, apiReq{method: "GET", path: "/api/v1/audit/events"}), 400, "invalid_parameter")
	if r := send(t, s.URL, town, apiReq{method: "GET", path: "/api/v1/audit/events?act=" + actA}); r.status != 403 && r.status != 404 {
		t.Fatalf("journal consulté par une mairie : %d", r.status)
	}
	// The queries are themselves in the log, by the auditor's token.
	if logged := query(url.Values{"actor": {auditorID}}); func() int {
		n := 0
		for _, e := range logged.Events {
			if e.Action == "audit.log" {
				n++
			}
		}
		return n
	}() != 5 {
		t.Fatalf("consultations du journal non enregistrées : %+v", logged.Events)
	}

	// Anchored, then the reasons pruned: the digests stay, the chain and
	// the checkpoints still verify, purposes stay readable.
	if _, err := s.API.Anchor.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := s.Store.PruneReadReasons(ctx, time.Now().Add(time.Minute))
	if err != nil || n < 3 {
		t.Fatalf("purge : %d %v", n, err)
	}
	pruned := query(url.Values{"act": {actA}})
	for _, e := range pruned.Events {
		if e.Reason != nil {
			t.Fatalf("motif non purgé : %+v", e)
		}
	}
	if got := readsIn(pruned); len(got) != 2 || got[0] != townID+" act.read_pdf delivrance_copie <purgé>" {
		t.Fatalf("après purge : %q", got)
	}
	var digests int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE act_id = $1 AND action LIKE 'act.read%' AND reason IS NULL AND length(reason_sha256) = 64`, actA).Scan(&digests); err != nil || digests != 2 {
		t.Fatalf("empreintes des motifs purgés : %d %v", digests, err)
	}
	rep, err := s.API.Anchor.Verify(ctx)
	if err != nil || !rep.OK || rep.Checkpoints < 1 {
		t.Fatalf("vérification après purge : %+v %v", rep, err)
	}
}

// TestEveryReadIsAttributed: each read of the API's views (act, list,
// dashboard, registers, batch, verification) records one event naming
// its token, the route and the act or batch of the path, never the
// query's values; a read with its own event (person data) records that
// one only; a read refused as outside the caller's scope (404) is
// recorded too, as an attempt.
func TestEveryReadIsAttributed(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "h", "12202")
	hubTok := s.Token(t, auth.RoleHub, "h")
	hub := client.New(s.URL, hubTok)
	ctx := context.Background()
	p1 := goodPDF(511)
	b := waitBatch(t, hub, uploadBatch(t, hub, manifestBytes(t, "h", act("a.pdf", p1, 1)), map[string][]byte{"a.pdf": p1}).ID)
	if b.Counts.Archived != 1 {
		t.Fatalf("lot : %+v", b.Counts)
	}
	actA := *entryByFile(t, b, "a.pdf").ID
	town, other, auditor := s.Token(t, auth.RoleTownhall, "", "12202"), s.Token(t, auth.RoleTownhall, "", "12145"), s.Token(t, auth.RoleAuditor, "")
	id := func(tok string) string { i, _, _ := auth.Parse(tok); return i }

	type event struct{ action, act, batch, data string }
	events := func(tok string) []event {
		t.Helper()
		rows, err := s.Store.Pool.Query(ctx, `SELECT action, coalesce(act_id::text, ''), coalesce(batch_id::text, ''), data::text
			FROM audit_events WHERE actor = $1 AND action LIKE 'view.%' OR actor = $1 AND action LIKE 'act.read%' ORDER BY id`, id(tok))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []event
		for rows.Next() {
			var e event
			if err := rows.Scan(&e.action, &e.act, &e.batch, &e.data); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
		return out
	}
	read := func(tok, path string, want int, header http.Header) {
		t.Helper()
		if r := send(t, s.URL, tok, apiReq{method: "GET", path: path, header: header}); r.status != want {
			t.Fatalf("%s : %d, attendu %d : %s", path, r.status, want, r.body)
		}
	}
	read(town, "/api/v1/acts/"+actA, 200, nil)
	read(town, "/api/v1/dashboard", 200, nil)
	read(town, "/api/v1/registers?year=2024", 200, nil)
	read(town, "/api/v1/acts?surname=Lef%C3%A8vre&year=2024", 200, nil)
	read(town, "/api/v1/acts/"+actA+"?persons=1", 200, http.Header{"Etatcivil-Purpose": {"controle"}})
	got := events(town)
	want := []event{
		{"view.act", actA, "", `{"route": "/api/v1/acts/{id}"}`},
		{"view.dashboard", "", "", `{"route": "/api/v1/dashboard"}`},
		{"view.registers", "", "", `{"route": "/api/v1/registers"}`},
		{"view.acts", "", "", `{"route": "/api/v1/acts"}`},
		{"act.read_persons", actA, "", "{}"},
	}
	if len(got) != len(want) {
		t.Fatalf("événements de la mairie :\n%v\nattendus :\n%v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("événement %d : %+v, attendu %+v", i, got[i], want[i])
		}
	}
	// The hub has polled its batch while it waited: one more read, one
	// more event.
	polled := len(events(hubTok))
	read(hubTok, "/api/v1/batches/"+b.ID, 200, nil)
	if got := events(hubTok); polled == 0 || len(got) != polled+1 || got[polled].action != "view.batch" || got[polled].batch != b.ID {
		t.Errorf("lecture du lot (%d lectures avant) : %+v", polled, got)
	}
	read(auditor, "/api/v1/acts/"+actA+"/verification", 200, nil)
	if got := events(auditor); len(got) != 1 || got[0].action != "view.verification" || got[0].act != actA {
		t.Errorf("vérification : %+v", got)
	}
	// Another commune's town hall: 404, and the attempt is on record.
	read(other, "/api/v1/acts/"+actA, 404, nil)
	if got := events(other); len(got) != 1 || got[0].action != "view.act" || got[0].act != actA {
		t.Errorf("tentative hors périmètre : %+v", got)
	}
	// A malformed id names no act.
	read(other, "/api/v1/acts/pas-un-uuid", 404, nil)
	if got := events(other); len(got) != 2 || got[1].act != "" {
		t.Errorf("identifiant invalide : %+v", got)
	}
}
