package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/bench"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// loadMillion fills st with n acts and their companions (bench.LoadActs,
// the loader make bench's read side uses).
func loadMillion(b *testing.B, st *store.Store, n int) {
	b.Helper()
	ctx := context.Background()
	c, err := st.Pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Release()
	start := time.Now()
	if err := bench.LoadActs(ctx, c.Conn(), n, nil); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d actes chargés en %s", n, time.Since(start).Round(time.Second))
}

// BenchmarkFollowMillion: with a million acts and their history, the
// pages' queries for a town hall of 100,000 acts (Rodez) and for the hub
// of all 400 communes. The target (issue 5) is a p99 under 100 ms for
// the dashboard, the completeness view and a filtered list; each query
// runs 100 times and its p50 and p99 are reported (ms).
func BenchmarkFollowMillion(b *testing.B) {
	st := testenv.Store(b)
	loadMillion(b, st, 1_000_000)
	ctx := context.Background()
	rodez := store.Scope{Communes: []string{"12202"}}
	rows, err := st.Pool.Query(ctx, `SELECT commune FROM hub_communes WHERE hub_id = 'bench'`)
	if err != nil {
		b.Fatal(err)
	}
	var all []string
	for rows.Next() {
		var c string
		_ = rows.Scan(&c)
		all = append(all, c)
	}
	hub := store.Scope{HubID: "bench", Communes: all}
	queries := []struct {
		name string
		run  func() error
	}{
		{"dashboard_townhall", func() error { _, err := st.Dashboard(ctx, rodez, "", 50); return err }},
		{"registers_townhall_year", func() error { _, err := st.Registers(ctx, rodez, "", 1950, ""); return err }},
		{"registers_townhall_all", func() error { _, err := st.Registers(ctx, rodez, "", 0, ""); return err }},
		{"list_townhall_filtered", func() error {
			_, _, _, err := st.ListActs(ctx, rodez, store.ActFilter{Year: 1950, Kind: "naissance", State: "archived", Limit: 50})
			return err
		}},
		{"list_townhall_surname", func() error {
			_, _, _, err := st.ListActs(ctx, rodez, store.ActFilter{Q: "martin", Limit: 50})
			return err
		}},
		{"list_townhall_refused", func() error {
			_, _, _, err := st.ListActs(ctx, rodez, store.ActFilter{RegistryState: "refused", Limit: 50})
			return err
		}},
		{"dashboard_hub_commune", func() error { _, err := st.Dashboard(ctx, hub, "12145", 50); return err }},
		{"list_hub_filtered", func() error {
			_, _, _, err := st.ListActs(ctx, hub, store.ActFilter{Year: 2001, Kind: "deces", Limit: 50})
			return err
		}},
	}
	for b.Loop() {
		for _, q := range queries {
			var d []time.Duration
			for range 100 {
				t0 := time.Now()
				if err := q.run(); err != nil {
					b.Fatalf("%s : %v", q.name, err)
				}
				d = append(d, time.Since(t0))
			}
			slices.Sort(d)
			p50, p99 := d[len(d)/2], d[len(d)*99/100]
			b.ReportMetric(float64(p99.Microseconds())/1000, q.name+"_p99_ms")
			// The target is reported, never asserted: a benchmark's timing
			// depends on what else the machine is doing (issue 9).
			verdict := "met"
			if p99 > 100*time.Millisecond {
				verdict = "not met"
			}
			b.Logf("%-26s p50 %6.1f ms  p99 %6.1f ms  (p99 <= 100 ms: %s)", q.name, float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000, verdict)
		}
	}
}
