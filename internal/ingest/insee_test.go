package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/inseelot"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/registry"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// person is a fully indexed person of a test act.
func person(role, surname, sex string) map[string]any {
	return map[string]any{"role": role, "surname": surname, "given_names": []string{"Jeanne"}, "sex": sex,
		"birth_date": "1950-04-02", "birth_place": "Rodez (Aveyron)"}
}

// uploadActs uploads one generated PDF per act (the act's "file" is
// filled in) and waits until the batch has settled; it returns the batch.
func uploadActs(t *testing.T, c *client.Client, seed int64, acts ...map[string]any) []string {
	t.Helper()
	return uploadActsAs(t, c, "h", seed, acts...)
}

// uploadActsAs is uploadActs for hub.
func uploadActsAs(t *testing.T, c *client.Client, hub string, seed int64, acts ...map[string]any) []string {
	t.Helper()
	ctx := context.Background()
	files := map[string][]byte{}
	for i, a := range acts {
		name := fmt.Sprintf("f%d-%d.pdf", seed, i)
		data := pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: seed + int64(i), DPI: 72})
		sum := sha256.Sum256(data)
		a["file"], a["size"], a["sha256"] = name, len(data), hex.EncodeToString(sum[:])
		files[name] = data
	}
	m, _ := json.Marshal(map[string]any{"hub": hub, "acts": acts})
	ms := sha256.Sum256(m)
	b, _, err := c.CreateBatch(ctx, m, false, hex.EncodeToString(ms[:]))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := c.PutFile(ctx, b.ID, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.Submit(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	got, _, err := c.WaitBatch(wctx, b.ID, nil)
	if err != nil || got.Counts.Archived != len(acts) {
		t.Fatalf("lot: %+v %v", got.Counts, err)
	}
	var ids []string
	for _, a := range got.Acts {
		ids = append(ids, *a.ID)
	}
	return ids
}

func birth(number int, flow string) map[string]any {
	return map[string]any{"commune": "12202", "kind": "naissance", "year": time.Now().Year(), "number": number,
		"act_date": time.Now().Format(time.DateOnly), "event_date": time.Now().Format(time.DateOnly), "flow": flow,
		"persons": []any{child(), person("mere", "ROUX", "F")}}
}

func child() map[string]any {
	p := person("titulaire", "ROUX", "F")
	p["birth_date"] = time.Now().Format(time.DateOnly)
	return p
}

func waitSettled(t *testing.T, s *testenv.Stack, registry string, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var open, all int
		if err := s.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE state NOT IN ('acknowledged', 'refused', 'dead')), count(*)
			FROM transmissions WHERE registry = $1`, registry).Scan(&open, &all); err != nil {
			t.Fatal(err)
		}
		if open == 0 && all == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s : %d transmission(s) sur %d encore ouvertes", registry, open, all)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func simMessages(t *testing.T, sim, registry string) []map[string]any {
	t.Helper()
	resp, err := http.Get(sim + "/_sim/messages?limit=1000&registry=" + registry)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestINSEELots: courant births go to INSEE in one lot per commune and
// day, as XML valid against our schema, sent through 5xx and lost
// acknowledgements under one key, the bytes received being those stored;
// an act lacking a bulletin's data is refused locally with the French
// message, nothing sent; recognitions and reprise acts are not routed.
func TestINSEELots(t *testing.T) {
	t.Parallel()
	sim := simWith(t, `{"error_rate": 0.3, "lost_ack_rate": 0.5}`)
	s, c := routedStack(t, fmt.Sprintf(`registries:
  - id: insee
    connector: insee
    endpoint: %s/insee/insee
    route: {flows: [courant], versions: first}
    cadence: by_kind
    ack_deadline: 1s
    retry: {initial_backoff: 100ms, max_backoff: 500ms, max_attempts: 40}
`, sim), nil)
	ctx := context.Background()
	noSex := birth(4, "courant")
	noSex["persons"] = []any{map[string]any{"role": "titulaire", "surname": "ROUX", "given_names": []string{"Paul"},
		"birth_date": time.Now().Format(time.DateOnly), "birth_place": "Rodez (Aveyron)"}}
	recognition := map[string]any{"commune": "12202", "kind": "reconnaissance", "year": time.Now().Year(), "number": 1,
		"act_date": time.Now().Format(time.DateOnly), "flow": "courant",
		"persons": []any{person("auteur", "ROUX", "M"), person("titulaire", "ROUX", "F")}}
	ids := uploadActs(t, c, 900, birth(3, "courant"), birth(1, "courant"), birth(2, "courant"), noSex, birth(5, "reprise"), recognition)

	refusedAct := act(t, c, ids[3])
	if len(refusedAct.Transmissions) != 1 || refusedAct.Transmissions[0].State != "refused" || refusedAct.Transmissions[0].Reason == nil ||
		!strings.Contains(*refusedAct.Transmissions[0].Reason, "sexe") || !strings.Contains(*refusedAct.Transmissions[0].Reason, "Refus local") {
		t.Fatalf("acte sans sexe : %+v", refusedAct.Transmissions)
	}
	for _, i := range []int{4, 5} {
		if a := act(t, c, ids[i]); len(a.Transmissions) != 0 {
			t.Fatalf("acte %d routé vers l'INSEE : %+v", i, a.Transmissions)
		}
	}
	admin := client.New(s.URL, s.Token(t, auth.RoleAdmin, ""))
	if _, err := admin.Post(ctx, "/api/v1/transmissions/flush", map[string]any{"registry": "insee"}); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, s, "insee", 4)
	var acked, lots int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'acknowledged' AND ack_id LIKE 'insee-ack-%'),
		(SELECT count(*) FROM lots) FROM transmissions`).Scan(&acked, &lots); err != nil || acked != 3 || lots != 1 {
		t.Fatalf("%d acquittées, %d lots (%v)", acked, lots, err)
	}
	var stored []byte
	var key string
	if err := s.Store.Pool.QueryRow(ctx, `SELECT message, idempotency_key FROM lots`).Scan(&stored, &key); err != nil {
		t.Fatal(err)
	}
	msgs := simMessages(t, sim, "insee")
	if len(msgs) != 1 || msgs[0]["idempotency_key"] != key || msgs[0]["xml"] != string(stored) {
		t.Fatalf("messages reçus : %d, clé %v (attendu %s), identiques au stocké : %v", len(msgs), msgs[0]["idempotency_key"], key, msgs[0]["xml"] == string(stored))
	}
	if err := inseelot.ValidateEmbedded(stored); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<premier>1</premier>", "<dernier>3</dernier>", "<nombre>3</nombre>", "<nature>naissance</nature>"} {
		if !bytes.Contains(stored, []byte(want)) {
			t.Errorf("lot sans %s", want)
		}
	}
	st := simStats(t, sim)
	if st["double_accepted"].(float64) != 0 || st["unique"].(float64) != 1 {
		t.Fatalf("simulateur : %v", st)
	}
	// Re-driving the act refused locally changes nothing it lacks: it is
	// refused again, alone, nothing sent, no lot made.
	if _, err := c.Post(ctx, "/api/v1/transmissions/retry", map[string]any{"state": "refused"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var local int
		if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM transmission_attempts WHERE outcome = 'refused_locally'`).Scan(&local); err != nil {
			t.Fatal(err)
		}
		if local == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d refus locaux après relance, attendu 2", local)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitSettled(t, s, "insee", 4)
	var lotsAfter int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM lots`).Scan(&lotsAfter); err != nil || lotsAfter != 1 {
		t.Fatalf("%d lots après la relance d'un acte incomplet (%v)", lotsAfter, err)
	}
}

// TestLotRefusalNamingActs: a registry that refuses a lot naming one act
// refuses that act with its reason; the others leave the lot and go into
// a new one at once (here refused again, naming the next act); once the
// registry accepts, re-driving the refused acts puts them into one new lot
// that is acknowledged. Lots keep their act sets.
func TestLotRefusalNamingActs(t *testing.T) {
	t.Parallel()
	sim := simWith(t, `{"refuse_rate": 1}`)
	s, c := routedStack(t, fmt.Sprintf(`registries:
  - id: insee
    connector: insee
    endpoint: %s/insee/insee
    route: {flows: [courant]}
    retry: {initial_backoff: 100ms, max_backoff: 500ms, max_attempts: 10}
`, sim), nil)
	ctx := context.Background()
	uploadActs(t, c, 950, birth(7, "courant"), birth(8, "courant"), birth(9, "courant"))
	admin := client.New(s.URL, s.Token(t, auth.RoleAdmin, ""))
	if _, err := admin.Post(ctx, "/api/v1/transmissions/flush", map[string]any{"registry": "insee"}); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, s, "insee", 3)
	rows, err := s.Store.Pool.Query(ctx, `SELECT e.number, t.state, coalesce(t.reason, '') FROM transmissions t JOIN entries e ON e.id = t.entry_id ORDER BY e.number`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n int
		var state, reason string
		if err := rows.Scan(&n, &state, &reason); err != nil {
			t.Fatal(err)
		}
		if state != "refused" || !strings.Contains(reason, "refus simulé") {
			t.Errorf("acte n° %d : %s « %s »", n, state, reason)
		}
	}
	rows.Close()
	var sets []string
	lrows, err := s.Store.Pool.Query(ctx, `SELECT string_agg(e.number::text, ',' ORDER BY e.number) FROM lots l JOIN lot_acts la ON la.lot_id = l.id
		JOIN transmissions t ON t.id = la.transmission_id JOIN entries e ON e.id = t.entry_id GROUP BY l.id, l.created_at ORDER BY l.created_at`)
	if err != nil {
		t.Fatal(err)
	}
	for lrows.Next() {
		var set string
		if err := lrows.Scan(&set); err != nil {
			t.Fatal(err)
		}
		sets = append(sets, set)
	}
	lrows.Close()
	if !slices.Equal(sets, []string{"7,8,9", "8,9", "9"}) {
		t.Fatalf("lots : %v (attendu 7,8,9 puis 8,9 puis 9)", sets)
	}
	simReset(t, sim)
	raw, err := c.Post(ctx, "/api/v1/transmissions/retry", map[string]any{"state": "refused"})
	var retried struct {
		Retried []string `json:"retried"`
	}
	if err != nil || json.Unmarshal(raw, &retried) != nil || len(retried.Retried) != 3 {
		t.Fatalf("relance : %s %v", raw, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var acked, lots int
		if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'acknowledged'), (SELECT count(*) FROM lots) FROM transmissions`).Scan(&acked, &lots); err != nil {
			t.Fatal(err)
		}
		if acked == 3 {
			if lots != 4 {
				t.Fatalf("%d lots, attendu 4 (trois refusés, un nouveau)", lots)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acquittées après relance", acked)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st := simStats(t, sim); st["unique"].(float64) != 1 || st["double_accepted"].(float64) != 0 {
		t.Fatalf("simulateur : %v", st)
	}
}

// TestDeadLotRetriedUnderItsKey: a lot whose registry stays down past the
// budget is dead; re-driving it sends the same lot under the same key
// (the registry may have taken it), never a new one.
func TestDeadLotRetriedUnderItsKey(t *testing.T) {
	t.Parallel()
	sim := simWith(t, `{"lost_ack_rate": 1}`)
	s, c := routedStack(t, fmt.Sprintf(`registries:
  - id: insee
    connector: insee
    endpoint: %s/insee/insee
    route: {flows: [courant]}
    ack_deadline: 100ms
    retry: {initial_backoff: 50ms, max_backoff: 100ms, max_attempts: 3}
`, sim), nil)
	ctx := context.Background()
	uploadActs(t, c, 970, birth(1, "courant"), birth(2, "courant"))
	admin := client.New(s.URL, s.Token(t, auth.RoleAdmin, ""))
	if _, err := admin.Post(ctx, "/api/v1/transmissions/flush", map[string]any{"registry": "insee"}); err != nil {
		t.Fatal(err)
	}
	// Accepted, acknowledgement lost: sent. Then the registry goes down:
	// overdue, sent again and again until the budget is spent.
	deadline := time.Now().Add(time.Minute)
	for {
		var sent bool
		if err := s.Store.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM lots WHERE state IN ('sent', 'overdue'))`).Scan(&sent); err != nil {
			t.Fatal(err)
		}
		if sent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lot jamais envoyé")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, err := http.Post(sim+"/_sim/faults", "application/json", strings.NewReader(`{"error_rate": 1}`)); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	waitSettled(t, s, "insee", 2)
	var state, key string
	if err := s.Store.Pool.QueryRow(ctx, `SELECT state, idempotency_key FROM lots`).Scan(&state, &key); err != nil || state != "dead" {
		t.Fatalf("lot %s (%v)", state, err)
	}
	if resp, err := http.Post(sim+"/_sim/faults", "application/json", strings.NewReader(`{}`)); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	if _, err := c.Post(ctx, "/api/v1/transmissions/retry", map[string]any{"registry": "insee", "state": "dead"}); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, s, "insee", 2)
	var lots, acked int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM lots), count(*) FILTER (WHERE state = 'acknowledged') FROM transmissions`).Scan(&lots, &acked); err != nil ||
		lots != 1 || acked != 2 {
		t.Fatalf("%d lots, %d acquittées (%v)", lots, acked, err)
	}
	st := simStats(t, sim)
	if st["unique"].(float64) != 1 || st["double_accepted"].(float64) != 0 || st["resends"].(float64) < 1 {
		t.Fatalf("simulateur : %v", st)
	}
	if m := simMessages(t, sim, "insee"); len(m) != 1 || m[0]["idempotency_key"] != key {
		t.Fatalf("messages : %v", m)
	}
}

// TestBackfill: a registry added after acts were archived receives them
// through backfill, as routing at archiving time would have sent them;
// a second backfill creates nothing.
func TestBackfill(t *testing.T) {
	t.Parallel()
	sim := simWith(t, `{}`)
	const before = `registries:
  - id: other
    connector: http
    endpoint: http://127.0.0.1:9/other
    route: {kinds: [mariage]}
`
	s, c := routedStack(t, before, nil)
	ctx := context.Background()
	uploadActs(t, c, 990, birth(1, "courant"), birth(2, "reprise"), birth(3, "courant"))
	admin := client.New(s.URL, s.Token(t, auth.RoleAdmin, ""))
	backfill := func() map[string]any {
		raw, err := admin.Post(ctx, "/api/v1/transmissions/backfill", map[string]any{"registry": "late", "limit": 2})
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if _, err := admin.Post(ctx, "/api/v1/transmissions/backfill", map[string]any{"registry": "late"}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("registre inconnu : %v", err)
	}
	cfg, err := registry.Parse("late.yaml", fmt.Appendf(nil, before+`  - id: late
    connector: http
    endpoint: %s/http/late
    route: {flows: [courant]}
`, sim))
	if err != nil {
		t.Fatal(err)
	}
	s.Deps.Routes.Set(cfg)
	first := backfill()
	if first["examined"].(float64) != 2 || first["next"] == "" {
		t.Fatalf("première page : %v", first)
	}
	var routed float64 = first["routed"].(float64)
	for next := first; next["next"] != ""; {
		raw, err := admin.Post(ctx, "/api/v1/transmissions/backfill", map[string]any{"registry": "late", "after": next["next"], "limit": 2})
		if err != nil {
			t.Fatal(err)
		}
		next = map[string]any{}
		_ = json.Unmarshal(raw, &next)
		routed += next["routed"].(float64)
	}
	if routed != 2 {
		t.Fatalf("%v transmission(s) créée(s), attendu 2 (les actes courants)", routed)
	}
	waitSettled(t, s, "late", 2)
	if again := backfill(); again["routed"].(float64) != 0 || again["examined"].(float64) != 1 {
		t.Fatalf("seconde passe : %v (seul l'acte de reprise reste sans transmission)", again)
	}
	if st := simStats(t, sim); st["unique"].(float64) != 2 {
		t.Fatalf("simulateur : %v", st)
	}
}

// TestTransmissionsScoped: a hub sees its own communes' transmissions and
// registry counts, a town hall its commune's, an auditor everything.
func TestTransmissionsScoped(t *testing.T) {
	t.Parallel()
	sim := simWith(t, `{}`)
	s, c := routedStack(t, fmt.Sprintf(`registries:
  - id: r
    connector: http
    endpoint: %s/http/r
    route: {}
`, sim), nil)
	s.Hub(t, "g", "12145")
	g := client.New(s.URL, s.Token(t, auth.RoleHub, "g"))
	uploadActs(t, c, 1010, birth(1, "reprise"), birth(2, "reprise"))
	other := birth(1, "reprise")
	other["commune"] = "12145"
	uploadActsAs(t, g, "g", 1020, other)
	waitSettled(t, s, "r", 3)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		c    *client.Client
		want int
	}{
		{"hub h", c, 2},
		{"hub g", g, 1},
		{"mairie de Rodez", client.New(s.URL, s.Token(t, auth.RoleTownhall, "", "12202")), 2},
		{"mairie de Millau", client.New(s.URL, s.Token(t, auth.RoleTownhall, "", "12145")), 1},
		{"auditeur", client.New(s.URL, s.Token(t, auth.RoleAuditor, "")), 3},
	} {
		raw, err := tc.c.Get(ctx, "/api/v1/transmissions", nil)
		var list struct {
			Transmissions []json.RawMessage `json:"transmissions"`
		}
		if err != nil || json.Unmarshal(raw, &list) != nil || len(list.Transmissions) != tc.want {
			t.Errorf("%s : %d transmissions, attendu %d (%v)", tc.name, len(list.Transmissions), tc.want, err)
		}
		raw, err = tc.c.Get(ctx, "/api/v1/registries", nil)
		var regs struct {
			Registries []struct {
				Registry string         `json:"registry"`
				States   map[string]int `json:"states"`
			} `json:"registries"`
		}
		if err != nil || json.Unmarshal(raw, &regs) != nil || len(regs.Registries) != 1 || regs.Registries[0].States["acknowledged"] != tc.want {
			t.Errorf("%s : registres %s (%v), attendu %d acquittées", tc.name, raw, err, tc.want)
		}
	}
}
