package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/bench"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestDashboardTTL: with a TTL, a dashboard is served as counted until
// it expires (a change shows after, not before), concurrent readers of
// the same dashboard share one count, other scopes are counted apart;
// without a TTL every read counts.
func TestDashboardTTL(t *testing.T) {
	t.Parallel()
	st := testenv.Store(t)
	ctx := context.Background()
	c, err := st.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = bench.LoadActs(ctx, c.Conn(), 200, nil)
	c.Release()
	if err != nil {
		t.Fatal(err)
	}
	rodez := store.Scope{Communes: []string{bench.LoadRodez}}
	total := func(sc store.Scope) int {
		t.Helper()
		d, err := st.Dashboard(ctx, sc, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		return d.Total
	}
	if n := total(rodez); n != 20 {
		t.Fatalf("sans cache : %d actes, attendu 20", n)
	}
	st.DashboardTTL = 400 * time.Millisecond
	if n := total(rodez); n != 20 {
		t.Fatalf("premier comptage : %d", n)
	}
	if _, err := st.Pool.Exec(ctx, `INSERT INTO acts (id, commune, year, kind, number, commune_chain, state)
		VALUES (gen_random_uuid(), $1, 1850, 'naissance', 1, ARRAY[$1], 'archived')`, bench.LoadRodez); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n := total(rodez); n != 20 {
				t.Errorf("dans le délai : %d, attendu le comptage gardé (20)", n)
			}
		}()
	}
	wg.Wait()
	if n := total(store.Scope{All: true}); n != 201 {
		t.Errorf("autre périmètre : %d, attendu 201 (compté à part)", n)
	}
	time.Sleep(500 * time.Millisecond)
	if n := total(rodez); n != 21 {
		t.Errorf("après le délai : %d, attendu 21", n)
	}
}
