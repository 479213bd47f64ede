package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/registrysim"
)

func simWith(t *testing.T, faults string) string {
	t.Helper()
	srv := httptest.NewServer(registrysim.New().Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+"/_sim/faults", "application/json", bytes.NewBufferString(faults))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pannes du simulateur: %v %v", resp, err)
	}
	resp.Body.Close()
	return srv.URL
}

// simReset clears the simulator's faults (and what it received).
func simReset(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Post(url+"/_sim/reset", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// until polls cond every step until it holds, failing with what after d.
func until(t *testing.T, d, step time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(step)
	}
}

func simStats(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSendThroughFaults: per-act messages to a registry that answers 5xx,
// drops connections, loses acknowledgements and is slow all end
// acknowledged, each accepted once (double_accepted = 0), every attempt
// kept; a registry that refuses leaves the reason on the act.
func TestSendThroughFaults(t *testing.T) {
	t.Parallel()
	faulty := simWith(t, `{"error_rate": 0.3, "drop_rate": 0.1, "lost_ack_rate": 0.2, "latency_ms_max": 50}`)
	refusing := simWith(t, `{"refuse_rate": 1}`)
	s, c := routedStack(t, fmt.Sprintf(`registries:
  - id: faulty
    connector: http
    endpoint: %s/http/faulty
    route: {versions: all}
    ack_deadline: 1s
    retry: {initial_backoff: 100ms, max_backoff: 1s, max_attempts: 60}
  - id: strict
    connector: http
    endpoint: %s/http/strict
    route: {kinds: [deces]}
`, faulty, refusing), nil)
	ctx := context.Background()
	const n = 12
	files := map[string][]byte{}
	var order []string
	for i := range n {
		name := fmt.Sprintf("d%02d.pdf", i)
		files[name] = pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: int64(100 + i), DPI: 72})
		order = append(order, name)
	}
	id := upload(t, c, files, order)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	b, _, err := c.WaitBatch(wctx, id, nil)
	if err != nil || b.Counts.Archived != n {
		t.Fatalf("lot: %+v %v", b.Counts, err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var open int
		if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM transmissions WHERE state NOT IN ('acknowledged', 'refused', 'dead')`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d transmissions encore ouvertes", open)
		}
		time.Sleep(250 * time.Millisecond)
	}
	var acked, refused, dead, attempts int
	err = s.Store.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'acknowledged' AND registry = 'faulty' AND ack_id IS NOT NULL),
			count(*) FILTER (WHERE state = 'refused' AND registry = 'strict' AND reason LIKE 'refus simulé%'),
			count(*) FILTER (WHERE state = 'dead'),
			(SELECT count(*) FROM transmission_attempts)
		FROM transmissions`).Scan(&acked, &refused, &dead, &attempts)
	if err != nil || acked != n || refused != n || dead != 0 {
		t.Fatalf("acquittées %d, refusées %d, mortes %d (%v)", acked, refused, dead, err)
	}
	st := simStats(t, faulty)
	if st["double_accepted"].(float64) != 0 || st["unique"].(float64) != n {
		t.Fatalf("simulateur: %v", st)
	}
	if attempts <= 2*n {
		t.Fatalf("%d tentatives pour %d envois sous pannes : les pannes n'ont pas joué", attempts, 2*n)
	}
	a := act(t, c, *b.Acts[0].ID)
	seen := map[string]string{}
	for _, tr := range a.Transmissions {
		seen[tr.Registry] = tr.State
		if tr.Registry == "strict" && (tr.Reason == nil || *tr.Reason == "") {
			t.Errorf("refus sans motif: %+v", tr)
		}
	}
	if seen["faulty"] != "acknowledged" || seen["strict"] != "refused" {
		t.Fatalf("transmissions de l'acte: %v", seen)
	}
}

// TestDeadThenRetried: a registry down past its budget leaves the
// transmission dead, listed, with every attempt; once it is back,
// retrying by state gets it acknowledged.
func TestDeadThenRetried(t *testing.T) {
	t.Parallel()
	sim := simWith(t, `{"error_rate": 1}`)
	s, c := routedStack(t, fmt.Sprintf(`registries:
  - id: down
    connector: http
    endpoint: %s/http/down
    route: {}
    retry: {initial_backoff: 50ms, max_backoff: 100ms, max_attempts: 3}
`, sim), nil)
	ctx := context.Background()
	upload(t, c, map[string][]byte{"a.pdf": pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 7, DPI: 72})}, []string{"a.pdf"})
	waitTransmission := func(want string) map[string]any {
		deadline := time.Now().Add(90 * time.Second)
		for {
			raw, err := c.Get(ctx, "/api/v1/transmissions", nil)
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Transmissions []map[string]any `json:"transmissions"`
			}
			_ = json.Unmarshal(raw, &out)
			if len(out.Transmissions) == 1 && out.Transmissions[0]["state"] == want {
				return out.Transmissions[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("transmission: %s, attendu %s", raw, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	dead := waitTransmission("dead")
	if dead["attempts"].(float64) != 3 || dead["reason"] == nil {
		t.Fatalf("transmission morte: %v", dead)
	}
	var kept int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM transmission_attempts WHERE outcome = 'failed' AND http_status = 503`).Scan(&kept); err != nil || kept != 3 {
		t.Fatalf("%d tentatives gardées (%v)", kept, err)
	}
	simReset(t, sim)
	raw, err := c.Post(ctx, "/api/v1/transmissions/retry", map[string]any{"state": "dead"})
	if err != nil || !bytes.Contains(raw, []byte(dead["id"].(string))) {
		t.Fatalf("relance: %s %v", raw, err)
	}
	acked := waitTransmission("acknowledged")
	if acked["ack_id"] == nil {
		t.Fatalf("acquittée sans accusé: %v", acked)
	}
}

// TestRetryWakesTheWaitingSend: retrying a transmission that waits out a
// long back-off (retrying) wakes its snoozed send job instead of adding a
// second one, which would send it twice and keep a twin job snoozing for
// ever after.
func TestRetryWakesTheWaitingSend(t *testing.T) {
	t.Parallel()
	sim := simWith(t, `{"error_rate": 1}`)
	s, c := routedStack(t, fmt.Sprintf(`registries:
  - id: slow
    connector: http
    endpoint: %s/http/slow
    route: {}
    retry: {initial_backoff: 1h, max_backoff: 2h, max_attempts: 5}
`, sim), nil)
	ctx := context.Background()
	upload(t, c, map[string][]byte{"a.pdf": pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 8, DPI: 72})}, []string{"a.pdf"})
	var id, state string
	until(t, 90*time.Second, 200*time.Millisecond, "transmission jamais en retrying", func() bool {
		_ = s.Store.Pool.QueryRow(ctx, `SELECT id::text, state FROM transmissions`).Scan(&id, &state)
		return state == "retrying"
	})
	jobs := func(states string) (n, all int) {
		t.Helper()
		err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state::text = ANY(string_to_array($2, ','))), count(*)
			FROM river_job WHERE kind = 'send' AND args->>'transmission_id' = $1`, id, states).Scan(&n, &all)
		if err != nil {
			t.Fatal(err)
		}
		return n, all
	}
	const waiting = "scheduled,available,retryable,running"
	if w, a := jobs(waiting); w != 1 || a != 1 {
		t.Fatalf("avant la relance : %d travaux en attente sur %d", w, a)
	}
	// The transmission is "retrying" as soon as the attempt is recorded,
	// a moment before River puts the job to sleep: retried in that
	// moment, a running job gets a companion (see wakeOrInsert). Here
	// the retry comes once it sleeps.
	until(t, 30*time.Second, 50*time.Millisecond, "le travail d'envoi ne s'endort pas", func() bool {
		asleep, _ := jobs("scheduled")
		return asleep == 1
	})
	simReset(t, sim)
	if raw, err := c.Post(ctx, "/api/v1/transmissions/retry", map[string]any{"state": "retrying"}); err != nil || !bytes.Contains(raw, []byte(id)) {
		t.Fatalf("relance: %s %v", raw, err)
	}
	until(t, 60*time.Second, 200*time.Millisecond, "transmission non acquittée après la relance (le travail endormi n'a pas été réveillé)", func() bool {
		_ = s.Store.Pool.QueryRow(ctx, `SELECT state FROM transmissions WHERE id = $1`, id).Scan(&state)
		return state == "acknowledged"
	})
	if w, a := jobs(waiting); w != 0 || a != 1 {
		t.Fatalf("après la relance : %d travaux en attente, %d en tout (un seul attendu)", w, a)
	}
	if st := simStats(t, sim); st["double_accepted"].(float64) != 0 {
		t.Fatalf("simulateur: %v", st)
	}
}

// TestArchivesTransfer: a register's lot goes to the archives as one SEDA
// 2.3 package (the simulator validates the message against the official
// schemas and every PDF against its digest); lost replies are recovered by
// resending under the same key; every act ends acknowledged, once.
func TestArchivesTransfer(t *testing.T) {
	t.Parallel()
	sim := simWith(t, `{"error_rate": 0.3, "lost_ack_rate": 0.5}`)
	s, c := routedStack(t, fmt.Sprintf(`registries:
  - id: arch
    connector: archives
    endpoint: %s/archives/arch
    route: {versions: all}
    ack_deadline: 1s
    retry: {initial_backoff: 100ms, max_backoff: 500ms, max_attempts: 40}
`, sim), nil)
	ctx := context.Background()
	files := map[string][]byte{}
	var order []string
	for i := range 4 {
		name := fmt.Sprintf("a%d.pdf", i)
		files[name] = pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: int64(400 + i), DPI: 72})
		order = append(order, name)
	}
	id := upload(t, c, files, order)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if b, _, err := c.WaitBatch(wctx, id, nil); err != nil || b.Counts.Archived != 4 {
		t.Fatalf("lot: %+v %v", b.Counts, err)
	}
	if _, err := c.Post(ctx, "/api/v1/transmissions/flush", map[string]any{}); err == nil {
		t.Fatal("flush accepté pour un opérateur (réservé à l'admin)")
	}
	admin := client.New(s.URL, s.Token(t, auth.RoleAdmin, ""))
	if _, err := admin.Post(ctx, "/api/v1/transmissions/flush", map[string]any{"registry": "arch"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var state string
		var acts int
		err := s.Store.Pool.QueryRow(ctx, `SELECT coalesce(max(state), ''), coalesce(max(acts), 0) FROM lots`).Scan(&state, &acts)
		if err != nil {
			t.Fatal(err)
		}
		if state == "acknowledged" && acts == 4 {
			break
		}
		if state == "refused" || state == "dead" || time.Now().After(deadline) {
			var reason *string
			_ = s.Store.Pool.QueryRow(ctx, `SELECT reason FROM lots`).Scan(&reason)
			t.Fatalf("lot %s (%d actes), motif %v", state, acts, reason)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var acked int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM transmissions WHERE state = 'acknowledged' AND ack_id LIKE 'arch-reply-%'`).Scan(&acked); err != nil || acked != 4 {
		t.Fatalf("%d transmissions acquittées (%v)", acked, err)
	}
	st := simStats(t, sim)
	if st["double_accepted"].(float64) != 0 || st["unique"].(float64) != 1 || st["refused"].(float64) != 0 {
		t.Fatalf("simulateur: %v", st)
	}
}
