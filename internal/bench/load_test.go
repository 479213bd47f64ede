package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/bench"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestLoadActs: the bulk loader writes what it promises per act (one
// version, four history rows, two transmissions per archived act, ten
// audit events), what the triggers would have kept (states, surnames,
// transmissions' commune), and an audit chain the verifier accepts; the
// chainer then continues it.
func TestLoadActs(t *testing.T) {
	t.Parallel()
	st := testenv.Store(t)
	ctx := context.Background()
	c, err := st.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	err = bench.LoadActs(ctx, c.Conn(), n, nil)
	c.Release()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for name, q := range map[string]string{
		"acts":          `SELECT count(*) FROM acts`,
		"archived":      `SELECT count(*) FROM acts WHERE state = 'archived'`,
		"entries":       `SELECT count(*) FROM entries WHERE is_version`,
		"history":       `SELECT count(*) FROM entry_history`,
		"transmissions": `SELECT count(*) FROM transmissions`,
		"events":        `SELECT count(*) FROM audit_events`,
		"surnames":      `SELECT count(*) FROM act_surnames`,
		"rodez":         `SELECT count(*) FROM acts WHERE commune = '12202'`,
		"bad commune":   `SELECT count(*) FROM transmissions t JOIN acts a ON a.id = t.act_id WHERE t.commune <> a.commune`,
		"bad state":     `SELECT count(*) FROM acts a JOIN entries e ON e.act_id = a.id WHERE e.state <> a.state`,
		"hub communes":  `SELECT count(*) FROM hub_communes WHERE hub_id = 'bench'`,
	} {
		var v int
		if err := st.Pool.QueryRow(ctx, q).Scan(&v); err != nil {
			t.Fatalf("%s : %v", name, err)
		}
		counts[name] = v
	}
	want := map[string]int{"acts": n, "entries": n, "history": 4 * n, "transmissions": 2 * counts["archived"], "events": 10 * n,
		"surnames": n, "rodez": n / 10, "bad commune": 0, "bad state": 0, "hub communes": 400}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s : %d, attendu %d", k, counts[k], v)
		}
	}
	if counts["archived"] < n*9/10 || counts["archived"] == n {
		t.Errorf("archivés : %d sur %d (quelques rejetés ou bloqués attendus)", counts["archived"], n)
	}
	rep, err := st.VerifyChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Chained != 10*n || rep.Unanchored != 0 {
		t.Fatalf("chaîne : %+v", rep)
	}
	// A new event after the load gets the next id and chains onto it.
	if _, err := st.Pool.Exec(ctx, `INSERT INTO audit_events (actor, action) VALUES ('t', 'view.dashboard')`); err != nil {
		t.Fatal(err)
	}
	// The chainer takes events older than every running transaction of
	// the cluster (other tests' included): it may have to wait a moment.
	chained := 0
	for deadline := time.Now().Add(30 * time.Second); chained == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		k, err := st.ChainAudit(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		chained += k
	}
	if chained != 1 {
		t.Fatalf("chaînage après chargement : %d événement(s), attendu 1", chained)
	}
	if rep, err := st.VerifyChain(ctx); err != nil || !rep.OK || rep.Chained != 10*n+1 {
		t.Fatalf("chaîne après un nouvel événement : %+v, %v", rep, err)
	}
}
