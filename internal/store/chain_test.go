package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestAuditChain: events are chained once their transaction is older than
// every running one; editing, deleting or inserting a chained event
// directly in PostgreSQL makes the verification fail at its sequence
// number, and restoring it makes it pass.
func TestAuditChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	for i := range 6 {
		if err := st.Audit(ctx, store.Event{Actor: store.System, Action: "test.event", Data: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	// An event of a transaction still running is not chained yet.
	tx, err := st.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) // a no-op once committed; a failure must not leave it open
	if err := store.AuditTx(ctx, tx, store.Event{Actor: store.System, Action: "test.open"}); err != nil {
		t.Fatal(err)
	}
	// The horizon is the server's oldest running transaction, whatever
	// its database: other tests may hold it back for a moment.
	chainAll := func(want int64) store.ChainReport {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, err := st.ChainAudit(ctx, 1000); err != nil {
				t.Fatal(err)
			}
			r, err := st.VerifyChain(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r.Chained >= want || time.Now().After(deadline) {
				return r
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	r := chainAll(6)
	if !r.OK || r.Chained != 6 || r.Unanchored != 0 {
		t.Fatalf("chaîne : %+v", r)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := st.VerifyChain(ctx); err != nil || r.Unanchored != 1 {
		t.Fatalf("événement validé, pas encore chaîné : %+v %v", r, err)
	}
	if r := chainAll(7); r.Chained != 7 || r.Unanchored != 0 {
		t.Fatalf("chaînage après validation : %+v", r)
	}
	var seq int64
	if err := st.Pool.QueryRow(ctx, `SELECT seq FROM audit_events WHERE action = 'test.event' AND data->>'i' = '3'`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := st.Pool.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	mustFail := func(what string, seq int64) {
		t.Helper()
		r, err := st.VerifyChain(ctx)
		if err != nil || r.OK || len(r.Failures) != 1 || r.Failures[0].Seq != seq {
			t.Fatalf("%s : %+v %v (attendu un échec au n° %d)", what, r, err, seq)
		}
	}
	mustPass := func(what string) {
		t.Helper()
		if r, err := st.VerifyChain(ctx); err != nil || !r.OK {
			t.Fatalf("%s : %+v %v", what, r, err)
		}
	}
	// The append-only trigger stops the application; a database
	// administrator can disable it.
	if _, err := st.Pool.Exec(ctx, `UPDATE audit_events SET data = '{"i": 99}' WHERE seq = $1`, seq); err == nil {
		t.Fatal("modification acceptée malgré le déclencheur")
	}
	exec(`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`)
	defer exec(`ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only`)

	exec(`UPDATE audit_events SET data = '{"i": 99}' WHERE seq = $1`, seq)
	mustFail("événement modifié", seq)
	exec(`UPDATE audit_events SET data = '{"i": 3}' WHERE seq = $1`, seq)
	mustPass("événement restauré")

	exec(`CREATE TABLE saved_event AS SELECT * FROM audit_events WHERE seq = $1`, seq)
	exec(`DELETE FROM audit_events WHERE seq = $1`, seq)
	mustFail("événement supprimé", seq)
	exec(`INSERT INTO audit_events OVERRIDING SYSTEM VALUE SELECT * FROM saved_event`)
	mustPass("événement réinséré")

	var last int64
	if err := st.Pool.QueryRow(ctx, `SELECT max(seq) FROM audit_events`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	exec(fmt.Sprintf(`INSERT INTO audit_events (actor, action, seq, hash) VALUES ('intrus', 'act.read_pdf', %d, sha256('x'))`, last+1))
	mustFail("événement inséré", last+1)
	exec(`DELETE FROM audit_events WHERE actor = 'intrus'`)
	mustPass("intrus retiré")
}
