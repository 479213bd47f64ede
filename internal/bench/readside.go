package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/cog"
	"github.com/etatcivil/etatcivil/internal/store"
)

// readDatabase is the database of the read side, beside make up's on the
// same server: loaded once per size and kept between runs (a million acts
// take minutes to load).
const readDatabase = "etatcivil_bench_read"

// scenario is one kind of read of the read side.
type scenario struct {
	name string
	req  func(r *rand.Rand) *http.Request
}

// readResult is what the read side measured.
type readResult struct {
	latencies map[string][]time.Duration
	errors    map[string]int
	firstErr  string
	requests  int
	elapsed   time.Duration
	events    int // audit events recorded during the run
	chained   int
	chainTime time.Duration
	usage     usage
}

// readSide loads cfg.ReadActs acts into their own database (or reuses
// it), serves it with a separate `etatcivil serve`, and reads it with
// cfg.ReadClients clients for cfg.ReadDuration: the town hall's
// dashboard, completeness view, a filtered list and an act page with its
// persons (purpose given), and the hub's batch status, each read
// recording its audit event. Then the chainer chains what the reads
// recorded.
func readSide(ctx context.Context, cfg Config) (readResult, error) {
	var res readResult
	dbURL, err := withDatabase(cfg.DatabaseURL, readDatabase)
	if err != nil {
		return res, err
	}
	if err := prepareReadDB(ctx, cfg, dbURL); err != nil {
		return res, err
	}
	env := append(os.Environ(), "ETATCIVIL_DATABASE_URL="+dbURL)
	townhall, err := tokenFor(cfg.Exe, env, "--role", "townhall", "--commune", LoadRodez, "--name", "mairie de Rodez (mesure)")
	if err != nil {
		return res, err
	}
	hub, err := tokenFor(cfg.Exe, env, "--role", "hub", "--hub", LoadHub, "--name", "opérateur (mesure)")
	if err != nil {
		return res, err
	}
	addr, ops := freeAddr(), freeAddr()
	// Workers off: the loaded acts have no files in the bucket, and the
	// read side measures reads. The chainer runs after, timed alone.
	srv := exec.Command(cfg.Exe, "serve", "--workers=false")
	srv.Env = append(env, "ETATCIVIL_ADDR="+addr, "ETATCIVIL_OPS_ADDR="+ops)
	var srvLog bytes.Buffer
	srv.Stdout, srv.Stderr = &srvLog, &srvLog
	if err := srv.Start(); err != nil {
		return res, err
	}
	defer func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
	}()
	if err := waitReady(ctx, "http://"+ops+"/readyz", 60*time.Second); err != nil {
		return res, fmt.Errorf("serveur de lecture : %w\n%s", err, srvLog.String())
	}

	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return res, err
	}
	defer db.Close(ctx)
	ids := func(q string) ([]string, error) {
		rows, err := db.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}
	acts, err := ids(`SELECT id::text FROM acts WHERE commune = '` + LoadRodez + `' AND state = 'archived' ORDER BY random() LIMIT 2000`)
	if err != nil {
		return res, err
	}
	batches, err := ids(`SELECT id::text FROM batches WHERE hub_id = '` + LoadHub + `' ORDER BY random() LIMIT 1000`)
	if err != nil {
		return res, err
	}
	if len(acts) == 0 || len(batches) == 0 {
		return res, fmt.Errorf("base de lecture vide")
	}
	base := "http://" + addr
	get := func(tok, path string) *http.Request {
		r, _ := http.NewRequest("GET", base+path, nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	kinds := []string{"naissance", "mariage", "deces", "reconnaissance"}
	scenarios := []scenario{
		{"town-hall dashboard", func(*rand.Rand) *http.Request { return get(townhall, "/api/v1/dashboard") }},
		{"completeness view", func(r *rand.Rand) *http.Request {
			return get(townhall, fmt.Sprintf("/api/v1/registers?year=%d", 1900+r.IntN(126)))
		}},
		{"filtered list", func(r *rand.Rand) *http.Request {
			return get(townhall, fmt.Sprintf("/api/v1/acts?year=%d&kind=%s&state=archived&limit=50", 1900+r.IntN(126), kinds[r.IntN(4)]))
		}},
		{"act page", func(r *rand.Rand) *http.Request {
			q := get(townhall, "/api/v1/acts/"+acts[r.IntN(len(acts))]+"?persons=1")
			q.Header.Set("Etatcivil-Purpose", "delivrance_copie")
			q.Header.Set("Etatcivil-Reason", "mesure de lecture")
			return q
		}},
		{"batch status", func(r *rand.Rand) *http.Request { return get(hub, "/api/v1/batches/"+batches[r.IntN(len(batches))]) }},
	}

	var before int64
	if err := db.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM audit_events`).Scan(&before); err != nil {
		return res, err
	}
	res.latencies, res.errors = map[string][]time.Duration{}, map[string]int{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.ReadClients, MaxConnsPerHost: cfg.ReadClients}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	// A short warm-up (connections, caches), not measured.
	for i := range 2 * len(scenarios) {
		resp, err := client.Do(scenarios[i%len(scenarios)].req(rand.New(rand.NewPCG(uint64(i), 1))))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if err := db.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM audit_events`).Scan(&before); err != nil {
		return res, err
	}
	if cfg.ReadProfile != "" {
		// The server's CPU profile over the run (docs/performance.md).
		go func() {
			resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", ops, int(cfg.ReadDuration.Seconds())))
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if f, err := os.Create(cfg.ReadProfile); err == nil {
				_, _ = io.Copy(f, resp.Body)
				f.Close()
			}
		}()
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	w := watch(200 * time.Millisecond)
	start := time.Now()
	deadline := start.Add(cfg.ReadDuration)
	// Each client sends at rate/clients requests per second on a fixed
	// schedule (the clients' schedules interleaved), and a request's
	// latency runs from when it was due, not from when it could be sent:
	// a server that falls behind is charged for the wait (no coordinated
	// omission). With ReadRate 0, each client sends as fast as it can.
	var interval time.Duration
	if cfg.ReadRate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.ReadClients) / float64(cfg.ReadRate))
	}
	for c := range cfg.ReadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			lat := map[string][]time.Duration{}
			errs := map[string]int{}
			first := ""
			due := start.Add(interval * time.Duration(c) / time.Duration(cfg.ReadClients))
			for i := c; ctx.Err() == nil; i++ {
				if interval > 0 {
					if due.After(deadline) {
						break
					}
					if err := sleep(ctx, time.Until(due)); err != nil {
						break
					}
				} else if !time.Now().Before(deadline) {
					break
				}
				sc := scenarios[i%len(scenarios)]
				req := sc.req(rnd).WithContext(ctx)
				t0 := time.Now()
				if interval > 0 {
					t0 = due
					due = due.Add(interval)
				}
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("%s %s : HTTP %d", req.Method, req.URL.Path, resp.StatusCode)
					}
				}
				d := time.Since(t0)
				if err != nil {
					errs[sc.name]++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				lat[sc.name] = append(lat[sc.name], d)
			}
			mu.Lock()
			defer mu.Unlock()
			for k, v := range lat {
				res.latencies[k] = append(res.latencies[k], v...)
				res.requests += len(v)
			}
			for k, v := range errs {
				res.errors[k] += v
			}
			if res.firstErr == "" {
				res.firstErr = first
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if cfg.ReadRate > 0 && res.elapsed < cfg.ReadDuration {
		res.elapsed = cfg.ReadDuration
	}
	res.usage = w.finish()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE id > $1`, before).Scan(&res.events); err != nil {
		return res, err
	}

	// The chainer, alone, on what the reads recorded.
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return res, err
	}
	defer st.Close()
	t0 := time.Now()
	for {
		n, err := st.ChainAudit(ctx, 5000)
		if err != nil {
			return res, fmt.Errorf("chaînage : %w", err)
		}
		res.chained += n
		if n == 0 {
			break
		}
	}
	res.chainTime = time.Since(t0)
	return res, nil
}

// report adds the read side's figures to rep.
func (res readResult) report(rep *Report, cfg Config) {
	names := make([]string, 0, len(res.latencies))
	for n := range res.latencies {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		d := res.latencies[n]
		slices.Sort(d)
		p50 := float64(d[len(d)/2].Microseconds()) / 1000
		p99 := float64(d[min(len(d)-1, len(d)*99/100)].Microseconds()) / 1000
		rep.add("read "+n+" p50", p50, "ms", "", nil)
		rep.add("read "+n+" p99", p99, "ms", "<= 100", ptr(p99 <= 100))
	}
	rate := float64(res.requests) / res.elapsed.Seconds()
	how := "as fast as they can"
	if cfg.ReadRate > 0 {
		how = fmt.Sprintf("paced at %d req/s in all", cfg.ReadRate)
	}
	rep.add(fmt.Sprintf("read side: requests/s served, %d clients %s, %d acts", cfg.ReadClients, how, cfg.ReadActs), rate, "req/s", ">= 500", ptr(rate >= 500))
	errs := 0
	for _, n := range res.errors {
		errs += n
	}
	rep.add("read side: failed requests", float64(errs), "requests", "= 0", ptr(errs == 0))
	per := 0.0
	if res.requests > 0 {
		per = float64(res.events) / float64(res.requests)
	}
	rep.add("read side: audit events per read", per, "events", "= 1", ptr(res.events == res.requests))
	if res.chainTime > 0 && res.chained > 0 {
		rep.add("audit chainer: events/s", float64(res.chained)/res.chainTime.Seconds(), "events/s", "", nil)
	}
	procs := make([]string, 0, len(res.usage.CPU))
	for n := range res.usage.CPU {
		procs = append(procs, n)
	}
	slices.Sort(procs)
	for _, n := range procs {
		if res.requests > 0 {
			rep.add("read side: CPU ms per read, "+n, res.usage.CPU[n]*1000/float64(res.requests), "ms", "", nil)
		}
	}
	mb := float64(res.usage.PeakRSS["etatcivil"]) / (1 << 20)
	rep.add("read side: peak RSS etatcivil", mb, "MiB", "<= 300", ptr(mb <= 300))
}

// prepareReadDB makes sure the read side's database holds cfg.ReadActs
// loaded acts: kept from an earlier run of the same size, else dropped,
// created, migrated and loaded.
func prepareReadDB(ctx context.Context, cfg Config, dbURL string) error {
	admin, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	if db, err := pgx.Connect(ctx, dbURL); err == nil {
		var n int
		err := db.QueryRow(ctx, `SELECT acts FROM bench_loaded`).Scan(&n)
		db.Close(ctx)
		if err == nil && n == cfg.ReadActs {
			fmt.Fprintf(cfg.Out, "lecture : base %s reprise (%d actes déjà chargés)\n", readDatabase, n)
			// Migrations added since it was loaded apply to it as to any
			// database in service.
			st, err := store.Open(ctx, dbURL)
			if err != nil {
				return err
			}
			defer st.Close()
			if _, err := st.Migrate(ctx); err != nil {
				return fmt.Errorf("migrations de la base reprise : %w", err)
			}
			return nil
		}
	}
	fmt.Fprintf(cfg.Out, "lecture : chargement de %d actes dans la base %s…\n", cfg.ReadActs, readDatabase)
	for _, q := range []string{`DROP DATABASE IF EXISTS ` + readDatabase + ` WITH (FORCE)`, `CREATE DATABASE ` + readDatabase} {
		if _, err := admin.Exec(ctx, q); err != nil {
			return err
		}
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrations : %w", err)
	}
	snap, err := cog.Embedded()
	if err != nil {
		return err
	}
	if err := st.ImportCOG(ctx, snap.Date, snap.Communes()); err != nil {
		return err
	}
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer db.Close(ctx)
	if err := LoadActs(ctx, db, cfg.ReadActs, cfg.Out); err != nil {
		return err
	}
	_, err = db.Exec(ctx, `CREATE TABLE bench_loaded AS SELECT `+fmt.Sprint(cfg.ReadActs)+` AS acts`)
	return err
}

// tokenFor creates a token with `etatcivil token create` and returns it.
func tokenFor(exe string, env []string, args ...string) (string, error) {
	c := exec.Command(exe, append([]string{"token", "create"}, args...)...)
	c.Env = env
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("token create : %w\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// withDatabase is the URL u with its database replaced by name.
func withDatabase(u, name string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("ETATCIVIL_DATABASE_URL : %w", err)
	}
	p.Path = "/" + name
	return p.String(), nil
}

// freeAddr is a loopback address with a port free now.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls u until it answers 200.
func waitReady(ctx context.Context, u string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s ne répond pas après %s", u, within)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}
