package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/sample"
	"github.com/etatcivil/etatcivil/internal/testenv"
	"github.com/etatcivil/etatcivil/internal/upload"
)

// TestFaults is make test-faults (issue 10), through the real binaries:
// one `serve --workers=false` (the API) and `etatcivil worker` processes
// on one database and bucket, the registry simulator, FAULTS_ACTS acts
// (200 by default; make test-faults runs 1,000). Each fault prints
//
//	fault=NAME in_flight=N completed=N duplicated=N lost=N
//
// and fails if duplicated or lost is not 0. duplicated counts archived
// object versions beyond one per act version, archived objects no entry
// names, and messages the simulator accepted twice (double_accepted);
// lost counts acts not archived at the end (every act of the batch is
// valid: each ends archived when nothing goes wrong), and jobs left
// running. River's rescuer is set to 20 s here (ETATCIVIL_RESCUE_AFTER;
// 10 min by default, docs/operations.md).
func TestFaults(t *testing.T) {
	n := 200
	if v, err := strconv.Atoi(os.Getenv("FAULTS_ACTS")); err == nil && v > 0 {
		n = v
	}
	down := 60 * time.Second
	if v, err := time.ParseDuration(os.Getenv("FAULTS_S3_DOWN")); err == nil && v > 0 {
		down = v
	}
	t.Run("kill9_worker", func(t *testing.T) {
		t.Parallel()
		f := newFaultRun(t, n, "")
		w := f.startWorker()
		f.upload()
		inFlight := f.waitArchived(n / 4)
		w.kill9(t)
		f.startWorker()
		f.finish("kill9_worker", inFlight)
	})
	t.Run("sigterm_worker", func(t *testing.T) {
		t.Parallel()
		f := newFaultRun(t, n, "")
		w := f.startWorker()
		f.upload()
		inFlight := f.waitArchived(n / 4)
		// Stop accepting work, let running jobs finish or go back within
		// ETATCIVIL_SHUTDOWN_TIMEOUT (10 s here), exit 0.
		if code := w.term(t, 40*time.Second); code != 0 {
			t.Errorf("SIGTERM : code de sortie %d, attendu 0 :\n%s", code, w.log)
		}
		f.startWorker()
		f.finish("sigterm_worker", inFlight)
	})
	t.Run("scale_out", func(t *testing.T) {
		t.Parallel()
		f := newFaultRun(t, n, "")
		for range 3 {
			f.startWorker()
		}
		start := time.Now()
		f.upload()
		f.finish("scale_out", 0)
		elapsed := time.Since(start)
		fmt.Printf("fault=scale_out workers=3 acts_per_s=%.1f\n", float64(n)/elapsed.Seconds())
		// Periodic jobs are inserted by the elected leader only: the audit
		// chainer (every 30 s) ran about once per period, not once per
		// process.
		var chains int
		if err := f.db.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'audit_chain'`).Scan(&chains); err != nil {
			t.Fatal(err)
		}
		if most := int(time.Since(f.started)/(30*time.Second)) + 2; chains > most {
			t.Errorf("%d chaînages d'audit en %s : les tâches périodiques ont tourné dans plusieurs processus (au plus %d attendus)",
				chains, time.Since(f.started).Round(time.Second), most)
		}
	})
	t.Run("postgres_restart", func(t *testing.T) {
		t.Parallel()
		pg := startPostgres(t)
		f := newFaultRun(t, n, "", "ETATCIVIL_DATABASE_URL="+pg.url)
		f.startWorker()
		f.upload()
		inFlight := f.waitArchived(n / 4)
		// The connections the test holds die with the server: it reconnects.
		f.db.Close(context.Background())
		pg.stop(t)
		// While PostgreSQL is down the API accepts nothing, and says so:
		// 503 with Retry-After, not a 500.
		m, err := os.ReadFile(filepath.Join(f.dir, "extra", "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(m)
		req, _ := http.NewRequest("POST", f.s.url+"/api/v1/batches", strings.NewReader(string(m)))
		req.Header.Set("Authorization", "Bearer "+f.tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", hex.EncodeToString(sum[:]))
		if resp, err := http.DefaultClient.Do(req); err != nil {
			t.Errorf("POST pendant la panne : %v", err)
		} else {
			resp.Body.Close()
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
				t.Errorf("POST pendant la panne : %d, Retry-After %q ; attendu 503 avec Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}
		time.Sleep(10 * time.Second)
		pg.start(t)
		db, err := pgx.Connect(context.Background(), pg.url)
		if err != nil {
			t.Fatal(err)
		}
		f.db = db
		t.Cleanup(func() { db.Close(context.Background()) })
		f.finish("postgres_restart", inFlight)
	})
	t.Run("postgres_failover", func(t *testing.T) {
		t.Parallel()
		// A primary and its standby, replication synchronous (a commit
		// waits for the standby's flush), one URL naming both with
		// target_session_attrs=read-write: the deployment
		// docs/operations.md describes. The primary dies; the standby is
		// promoted; the processes, never restarted nor reconfigured, go
		// on with it.
		primary := startPostgres(t)
		standby := primary.standby(t)
		url := "postgres://postgres@127.0.0.1:" + primary.port + ",127.0.0.1:" + standby.port +
			"/etatcivil?sslmode=disable&target_session_attrs=read-write"
		f := newFaultRun(t, n, "", "ETATCIVIL_DATABASE_URL="+url)
		f.startWorker()
		f.upload()
		inFlight := f.waitArchived(n / 4)
		f.db.Close(context.Background())
		primary.stop(t)
		if out, err := standby.ctl("-w", "promote"); err != nil {
			t.Fatalf("pg_ctl promote : %v\n%s", err, out)
		}
		db, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		f.db = db
		t.Cleanup(func() { db.Close(context.Background()) })
		f.finish("postgres_failover", inFlight)
	})
	t.Run("staging_refuses_writes", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t)
		bs := gw.store(t)
		f := newFaultRun(t, n, "", gw.env()...)
		f.blob = bs
		f.startWorker()
		f.upload()
		inFlight := f.waitArchived(n / 4)
		// The staging bucket refuses every write (its directory on the
		// gateway's disk made immutable) while the archive accepts them.
		staging := filepath.Join(gw.dir, "data", gw.config().Staging)
		immutable := func(on bool) {
			flag := "-i"
			if on {
				flag = "+i"
			}
			if out, err := exec.Command("chattr", "-R", flag, staging).CombinedOutput(); err != nil {
				t.Fatalf("chattr %s : %v %s", flag, err, out)
			}
		}
		immutable(true)
		t.Cleanup(func() { _ = exec.Command("chattr", "-R", "-i", staging).Run() })
		time.Sleep(down / 4)
		f.refusedUpload("staging_refuses_writes")
		time.Sleep(down / 4)
		f.noneRejected(down)
		immutable(false)
		f.finish("staging_refuses_writes", inFlight)
	})
	t.Run("s3_down", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t)
		bs := gw.store(t) // the buckets exist before the server starts
		f := newFaultRun(t, n, "", gw.env()...)
		f.blob = bs
		f.startWorker()
		f.upload()
		inFlight := f.waitArchived(n / 4)
		gw.stop()
		// While the gateway is down: acts wait, none is rejected, and a
		// file sent now is refused with 503 and Retry-After.
		time.Sleep(down / 2)
		f.refusedUpload("s3_down")
		time.Sleep(down / 2)
		f.noneRejected(down)
		gw.start(t)
		f.finish("s3_down", inFlight)
	})
}

// refusedUpload sends one more batch's file and expects 503 with
// Retry-After: the storage it needs is refusing writes.
func (f *faultRun) refusedUpload(fault string) {
	t := f.t
	t.Helper()
	ctx := context.Background()
	m, err := os.ReadFile(filepath.Join(f.dir, "extra", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(m)
	b, _, err := client.New(f.s.url, f.tok).CreateBatch(ctx, m, false, hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	file := b.Acts[0].File
	body, err := os.ReadFile(filepath.Join(f.dir, "extra", file))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", f.s.url+"/api/v1/batches/"+b.ID+"/files/"+file, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s : PUT pendant la panne : %v", fault, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("%s : PUT pendant la panne : %d, Retry-After %q ; attendu 503 avec Retry-After", fault, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// noneRejected checks, during an outage of d, that no act was rejected
// for it and that some wait (unless all had ended before).
func (f *faultRun) noneRejected(d time.Duration) {
	t := f.t
	t.Helper()
	var rejected, waiting int
	if err := f.db.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE state = 'rejected'), count(*) FILTER (WHERE waiting IS NOT NULL)
		FROM entries WHERE batch_id = $1`, f.batch).Scan(&rejected, &waiting); err != nil {
		t.Fatal(err)
	}
	if rejected != 0 {
		t.Errorf("%d actes rejetés pour une panne de stockage", rejected)
	}
	if waiting == 0 && f.count(`state IN ('archived', 'rejected', 'stalled')`) < f.n {
		t.Errorf("panne de %s : aucun acte en attente (waiting)", d)
	}
}

// faultRun is one fault's stack and batch.
type faultRun struct {
	t       *testing.T
	s       *server
	sim     *regSim
	blob    *blob.Store
	db      *pgx.Conn
	tok     string
	n       int
	dir     string
	batch   string
	started time.Time
	workers []*workerProc
}

func newFaultRun(t *testing.T, n int, dir string, env ...string) *faultRun {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	sim := startSim(t, freePort(t), filepath.Join(dir, "sim.json"))
	reg := filepath.Join(dir, "registries.yaml")
	if err := os.WriteFile(reg, []byte(acceptanceRegistries), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerArgs(t, []string{"serve", "--workers=false"}, append([]string{"ETATCIVIL_REGISTRIES_FILE=" + reg,
		"ETATCIVIL_REGISTRY_SIM=" + sim.url, "ETATCIVIL_RESCUE_AFTER=20s"}, env...)...)
	f := &faultRun{t: t, s: s, sim: sim, blob: s.blob, tok: hubToken(t, s), n: n, dir: dir, started: time.Now()}
	for name, count := range map[string]int{"batch": n, "extra": 1} {
		if err := sample.Generate(sample.Options{Dir: filepath.Join(dir, name), Count: count, Seed: time.Now().UnixNano(), Today: time.Now(),
			Prefix: name + "-"}); err != nil {
			t.Fatal(err)
		}
	}
	// The extra act (sent during outages) must not be one of the batch's:
	// a number no register of the batch reaches.
	xpath := filepath.Join(dir, "extra", "manifest.json")
	raw, err := os.ReadFile(xpath)
	if err != nil {
		t.Fatal(err)
	}
	var xm map[string]any
	if err := json.Unmarshal(raw, &xm); err != nil {
		t.Fatal(err)
	}
	xm["acts"].([]any)[0].(map[string]any)["number"] = 99_999
	if raw, err = json.Marshal(xm); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(xpath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(context.Background(), envOf(s.env, "ETATCIVIL_DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	f.db = db
	return f
}

// workerProc is a running `etatcivil worker`.
type workerProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuffer
}

func (f *faultRun) startWorker() *workerProc {
	f.t.Helper()
	w := &workerProc{exited: make(chan struct{}), log: &syncBuffer{}}
	w.cmd = exec.Command(f.s.bin, "worker")
	w.cmd.Env = append(append([]string{}, f.s.env...), "ETATCIVIL_OPS_ADDR=127.0.0.1:0")
	w.cmd.Stdout, w.cmd.Stderr = w.log, w.log
	if err := w.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() { _ = w.cmd.Wait(); close(w.exited) }()
	f.t.Cleanup(func() {
		_ = w.cmd.Process.Signal(os.Interrupt)
		select {
		case <-w.exited:
		case <-time.After(30 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.exited
		}
	})
	f.workers = append(f.workers, w)
	return w
}

func (w *workerProc) kill9(t *testing.T) {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w.exited
}

// term sends SIGTERM and returns the exit code (-1 if it did not exit
// within d, then it is killed).
func (w *workerProc) term(t *testing.T, d time.Duration) int {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
		return w.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		_ = w.cmd.Process.Kill()
		<-w.exited
		return -1
	}
}

// upload sends the batch with the real client.
func (f *faultRun) upload() {
	f.t.Helper()
	b, err := upload.Run(context.Background(), client.New(f.s.url, f.tok), filepath.Join(f.dir, "batch"), upload.Options{Parallel: 4})
	if err != nil {
		f.t.Fatalf("envoi : %v", err)
	}
	f.batch = b.ID
}

func (f *faultRun) count(cond string) int {
	f.t.Helper()
	var c int
	if err := f.db.QueryRow(context.Background(), `SELECT count(*) FROM entries WHERE batch_id = $1 AND `+cond, f.batch).Scan(&c); err != nil {
		f.t.Fatal(err)
	}
	return c
}

// waitArchived waits until k acts are archived and returns how many
// were still in flight (not ended) then.
func (f *faultRun) waitArchived(k int) int {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for f.count(`state = 'archived'`) < k {
		if time.Now().After(deadline) {
			f.t.Fatalf("%d actes archivés après 5 min (attendu %d) :\n%s", f.count(`state = 'archived'`), k, f.s.jobs(f.t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return f.n - f.count(`state IN ('archived', 'rejected', 'stalled')`)
}

// finish waits for every act to end and every transmission to be
// acknowledged, then counts, prints the fault's line and fails on any
// duplicate or loss.
func (f *faultRun) finish(name string, inFlight int) {
	t := f.t
	t.Helper()
	ctx := context.Background()
	admin := client.New(f.s.url, f.s.admin)
	deadline := time.Now().Add(10 * time.Minute)
	for f.count(`state IN ('archived', 'rejected', 'stalled')`) < f.n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		if _, err := admin.Post(ctx, "/api/v1/transmissions/flush", nil); err != nil {
			t.Fatalf("transmissions flush : %v", err)
		}
		var open int
		if err := f.db.QueryRow(ctx, `SELECT count(*) FROM transmissions t JOIN entries e ON e.id = t.entry_id
			WHERE e.batch_id = $1 AND t.state <> 'acknowledged'`, f.batch).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	completed := f.count(`state = 'archived'`)
	lost := f.n - completed

	// One archived object version per act version, no object no entry names.
	versions, err := f.blob.Versions(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := f.db.Query(ctx, `SELECT object_key FROM entries WHERE object_key IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	named, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	duplicated := 0
	known := map[string]bool{}
	for _, k := range named {
		known[k] = true
		if v := len(versions[k]); v > 1 {
			duplicated += v - 1
			t.Errorf("%s : %d versions archivées", k, v)
		}
	}
	prefix := ""
	if len(named) > 0 {
		prefix, _, _ = strings.Cut(named[0], "/")
	}
	for k, v := range versions {
		if !known[k] && prefix != "" && strings.HasPrefix(k, prefix+"/") {
			duplicated += len(v)
			t.Errorf("%s : objet archivé qu'aucune entrée ne nomme", k)
		}
	}
	var stats struct {
		DoubleAccepted int `json:"double_accepted"`
	}
	f.sim.get(t, "/_sim/stats", &stats)
	duplicated += stats.DoubleAccepted
	var stuck int
	if err := f.db.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'running' AND attempted_at < now() - interval '2 minutes'`).Scan(&stuck); err != nil {
		t.Fatal(err)
	}
	lost += stuck
	fmt.Printf("fault=%s in_flight=%d completed=%d duplicated=%d lost=%d\n", name, inFlight, completed, duplicated, lost)
	if duplicated != 0 || lost != 0 {
		t.Errorf("fault=%s : %d dupliqué(s), %d perdu(s) (dont %d tâche(s) bloquée(s)), double_accepted %d\n%s",
			name, duplicated, lost, stuck, stats.DoubleAccepted, f.s.jobs(t))
	}
}

// postgres is a private PostgreSQL cluster a fault can restart: the
// shared server of the other tests must not be touched.
type postgres struct {
	bin, dir, port, url string
	runas               []string
}

func startPostgres(t *testing.T) *postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		t.Fatal("pg_ctl introuvable (paquet postgresql) : make test l'installe")
	}
	p := &postgres{bin: filepath.Dir(bins[len(bins)-1]), port: strings.TrimPrefix(freePort(t), "127.0.0.1:")}
	dir, err := os.MkdirTemp("", "etatcivil-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() { p.ctl("-m", "immediate", "stop"); os.RemoveAll(dir) })
	if os.Getuid() == 0 { // initdb refuses root: the cluster belongs to postgres
		p.runas = []string{"runuser", "-u", "postgres", "--"}
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown : %v %s", err, out)
		}
	}
	if out, err := p.cmd(filepath.Join(p.bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust").CombinedOutput(); err != nil {
		t.Fatalf("initdb : %v\n%s", err, out)
	}
	if out, err := p.ctl("-w", "-o", "-c listen_addresses=127.0.0.1 -c port="+p.port+" -c unix_socket_directories="+dir, "start"); err != nil {
		t.Fatalf("pg_ctl start : %v\n%s", err, out)
	}
	p.url = "postgres://postgres@127.0.0.1:" + p.port + "/etatcivil?sslmode=disable"
	if out, err := p.cmd(filepath.Join(p.bin, "createdb"), "-h", "127.0.0.1", "-p", p.port, "-U", "postgres", "etatcivil").CombinedOutput(); err != nil {
		t.Fatalf("createdb : %v\n%s", err, out)
	}
	for _, args := range [][]string{{"migrate"}, {"cog", "import", filepath.Join(repoRoot(t), "internal", "cog", "data", "cog.csv.gz")}} {
		c := exec.Command(testenv.Bin(t, "etatcivil"), args...)
		c.Env = append(os.Environ(), "ETATCIVIL_DATABASE_URL="+p.url)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("etatcivil %s : %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return p
}

// standby makes a streaming standby of p (pg_basebackup -R) in its own
// directory on its own port, waits until it streams, then makes p's
// replication synchronous: a commit p acknowledges is flushed on the
// standby too, so a promotion loses none.
func (p *postgres) standby(t *testing.T) *postgres {
	t.Helper()
	s := &postgres{bin: p.bin, port: strings.TrimPrefix(freePort(t), "127.0.0.1:"), runas: p.runas}
	dir, err := os.MkdirTemp("", "etatcivil-faults-standby-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() { s.ctl("-m", "immediate", "stop"); os.RemoveAll(dir) })
	if len(p.runas) > 0 {
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown : %v %s", err, out)
		}
	}
	if out, err := s.cmd(filepath.Join(p.bin, "pg_basebackup"), "-h", "127.0.0.1", "-p", p.port, "-U", "postgres",
		"-D", filepath.Join(dir, "data"), "-R", "-X", "stream").CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup : %v\n%s", err, out)
	}
	s.start(t)
	s.url = "postgres://postgres@127.0.0.1:" + s.port + "/etatcivil?sslmode=disable"
	ctx := context.Background()
	db, err := pgx.Connect(ctx, p.url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	state := func() string {
		var st string
		_ = db.QueryRow(ctx, `SELECT state || '/' || sync_state FROM pg_stat_replication LIMIT 1`).Scan(&st)
		return st
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.HasPrefix(state(), "streaming/") {
		if time.Now().After(deadline) {
			t.Fatalf("le secours ne suit pas le primaire : %q", state())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, q := range []string{`ALTER SYSTEM SET synchronous_standby_names = '*'`, `SELECT pg_reload_conf()`} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for state() != "streaming/sync" {
		if time.Now().After(deadline) {
			t.Fatalf("réplication non synchrone : %q", state())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return s
}

func (p *postgres) cmd(name string, args ...string) *exec.Cmd {
	all := append(append(append([]string{}, p.runas...), name), args...)
	return exec.Command(all[0], all[1:]...)
}

func (p *postgres) ctl(args ...string) ([]byte, error) {
	return p.cmd(filepath.Join(p.bin, "pg_ctl"), append([]string{"-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "log")}, args...)...).CombinedOutput()
}

// stop stops the server at once, every connection cut.
func (p *postgres) stop(t *testing.T) {
	t.Helper()
	if out, err := p.ctl("-w", "-m", "immediate", "stop"); err != nil {
		t.Fatalf("pg_ctl stop : %v\n%s", err, out)
	}
}

func (p *postgres) start(t *testing.T) {
	t.Helper()
	if out, err := p.ctl("-w", "-o", "-c listen_addresses=127.0.0.1 -c port="+p.port+" -c unix_socket_directories="+p.dir, "start"); err != nil {
		t.Fatalf("pg_ctl start : %v\n%s", err, out)
	}
}

// repoRoot is the repository's root (the e2e package is two levels down).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

// gateway is a private S3 gateway (versitygw) a fault can stop and start
// again on the same port and data.
type gateway struct {
	dir, addr, key, secret string
	cmd                    *exec.Cmd
	exited                 chan struct{}
	log                    *syncBuffer
}

func startGateway(t *testing.T) *gateway {
	t.Helper()
	g := &gateway{dir: t.TempDir(), addr: freePort(t), key: "faults", secret: "faults-secret-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	for _, d := range []string{"data", "versions"} {
		if err := os.MkdirAll(filepath.Join(g.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	g.start(t)
	t.Cleanup(g.stop)
	return g
}

func (g *gateway) start(t *testing.T) {
	t.Helper()
	g.exited, g.log = make(chan struct{}), &syncBuffer{}
	g.cmd = exec.Command(testenv.Bin(t, "versitygw"), "--port", g.addr, "--quiet", "posix",
		"--versioning-dir", filepath.Join(g.dir, "versions"), filepath.Join(g.dir, "data"))
	g.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+g.key, "ROOT_SECRET_KEY="+g.secret)
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + g.addr + "/"); err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("passerelle S3 injoignable :\n%s", g.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *gateway) stop() {
	if g.cmd == nil {
		return
	}
	select {
	case <-g.exited:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}

func (g *gateway) config() blob.Config {
	return blob.Config{Endpoint: g.addr, Region: "us-east-1", AccessKey: g.key, SecretKey: g.secret, Archive: "faults-archive", Staging: "faults-staging"}
}

// store creates the buckets and returns a store on them.
func (g *gateway) store(t *testing.T) *blob.Store {
	t.Helper()
	b, err := blob.New(g.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.EnsureBuckets(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

// env points a server at the gateway.
func (g *gateway) env() []string {
	c := g.config()
	return []string{"ETATCIVIL_S3_ENDPOINT=http://" + c.Endpoint, "ETATCIVIL_S3_BUCKET=" + c.Archive, "ETATCIVIL_S3_STAGING_BUCKET=" + c.Staging,
		"ETATCIVIL_S3_ACCESS_KEY=" + c.AccessKey, "ETATCIVIL_S3_SECRET_KEY=" + c.SecretKey}
}
