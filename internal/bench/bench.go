// Package bench measures the pipeline side by side with its floor and
// with the standalone tools (issue 9): the same synthetic acts through
// the real client and API to archived and acknowledged; through the same
// package functions and S3 calls without PostgreSQL and River (the floor);
// and through qpdf, openssl and curl run with xargs -P (what a user
// scripting the best existing tools would get). It prints a Markdown
// table and writes the same figures as JSON.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/sample"
	"github.com/etatcivil/etatcivil/internal/upload"
)

// Config is what a run needs: the running local stack (make up's
// environment) and the work directory.
type Config struct {
	Acts        int
	Dir         string // work directory (.local/bench)
	Server      string
	HubToken    string
	AdminToken  string // to flush the lots held by their cadence
	DatabaseURL string
	S3          blob.Config
	Exe         string // bin/etatcivil, for the isolated PDF check
	SealCert    string
	SealKey     string
	TSAURL      string
	TrustRoots  string
	Parallel    int // uploads and floor workers at once
	// Level is the PAdES level of the measured run and the floor (B-B,
	// the target's); the hub's level is set for the run and restored.
	// LevelAlso is a second level run and reported without a target
	// (B-T with the local TSA; "" for none).
	Level, LevelAlso string
	Hub              string // the hub of HubToken (smica on make up)
	Out              io.Writer
	// Read side: acts loaded, concurrent clients, duration.
	ReadActs     int
	ReadClients  int
	ReadDuration time.Duration
	ReadRate     int    // requests per second sent in all (0: as fast as the clients can)
	ReadProfile  string // where to write the read server's CPU profile ("": none)
	// Parts, if set, limits the run to these parts: pipeline (with the
	// scale-out), floor, tools, read. Ratios need the parts they divide.
	Parts []string
}

func (c Config) part(name string) bool { return len(c.Parts) == 0 || slices.Contains(c.Parts, name) }

// Target is one figure of the report, with its target if it has one.
type Target struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target"`
	Met    *bool   `json:"met"`
}

// Report is the run's result (.local/bench/latest.json).
type Report struct {
	Acts int `json:"acts"`
	// ReadActs is the size of the read side's database (0: not run).
	ReadActs int       `json:"read_acts,omitempty"`
	Bytes    int64     `json:"bytes"`
	Machine  string    `json:"machine"`
	At       time.Time `json:"at"`
	Targets  []Target  `json:"targets"`
}

func (r *Report) add(name string, value float64, unit, target string, met *bool) {
	r.Targets = append(r.Targets, Target{Name: name, Value: math.Round(value*1000) / 1000, Unit: unit, Target: target, Met: met})
}

func ptr(b bool) *bool { return &b }

// Run runs the benchmark and writes its report.
func Run(ctx context.Context, cfg Config) (Report, error) {
	rep := Report{Acts: cfg.Acts, At: time.Now().UTC(), Machine: fmt.Sprintf("%s/%s, %d CPU", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())}
	if cfg.Parallel <= 0 {
		cfg.Parallel = runtime.NumCPU() * 2
	}
	if cfg.Level == "" {
		cfg.Level = "B-B"
	}
	if cfg.Hub == "" {
		cfg.Hub = "smica"
	}
	// Fresh acts every run: the same ones again would be unchanged
	// resubmissions (nothing to do), not a measure.
	seed := time.Now().UnixNano()
	acts := filepath.Join(cfg.Dir, fmt.Sprintf("acts-%d", seed))
	defer os.RemoveAll(acts)
	if cfg.part("pipeline") || cfg.part("floor") || cfg.part("tools") {
		fmt.Fprintf(cfg.Out, "génération de %d actes dans %s…\n", cfg.Acts, acts)
		if err := sample.Generate(sample.Options{Dir: acts, Count: cfg.Acts, Seed: seed, SizeClass: sample.SizeRealistic,
			Prefix: fmt.Sprintf("bench-%d-", seed)}); err != nil {
			return rep, err
		}
	}
	files, _ := filepath.Glob(filepath.Join(acts, "*.pdf"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			rep.Bytes += st.Size()
		}
	}

	// Each part runs whatever happened to the others: a failure is
	// reported with the figures of the parts that ran, and the run fails.
	var failed []error
	fail := func(err error) {
		fmt.Fprintf(cfg.Out, "ÉCHEC : %v\n", err)
		failed = append(failed, err)
	}

	// 1. The pipeline: the real client through the real API.
	var rate, pipePerAct float64
	if cfg.part("pipeline") {
		r, perAct, err := runPipeline(ctx, cfg, &rep, acts, seed, len(files))
		if err != nil {
			fail(err)
		}
		rate, pipePerAct = r, perAct
	}

	// 2. The floor: the same work without PostgreSQL and River.
	if cfg.part("floor") {
		fmt.Fprintln(cfg.Out, "plancher : les mêmes fonctions et appels S3, sans PostgreSQL ni River…")
		if floorTime, err := floor(ctx, cfg, files); err != nil {
			fail(fmt.Errorf("plancher : %w", err))
		} else {
			floorRate := float64(len(files)) / floorTime.Seconds()
			rep.add("floor: acts/s", floorRate, "acts/s", "", nil)
			if rate > 0 {
				ratio := rate / floorRate
				rep.add("pipeline ÷ floor (throughput)", ratio, "ratio", ">= 0.70", ptr(ratio >= 0.7))
			}
		}
	}

	// 3. The standalone tools.
	if cfg.part("tools") {
		fmt.Fprintln(cfg.Out, "outils autonomes : qpdf --check, openssl cms -sign, curl --aws-sigv4, xargs -P…")
		tools, err := standalone(ctx, cfg, acts, files)
		if err != nil {
			fail(fmt.Errorf("outils : %w", err))
		}
		for _, t := range tools.steps {
			rep.add("tools: "+t.name, t.d.Seconds(), "s", "", nil)
		}
		toolsPerAct := tools.total.Seconds() / float64(len(files))
		if err == nil {
			rep.add("tools: seconds per act", toolsPerAct, "s/act", "", nil)
		}
		if err == nil && pipePerAct > 0 {
			rep.add("pipeline: seconds per act", pipePerAct, "s/act", "", nil)
			r2 := pipePerAct / toolsPerAct
			rep.add("pipeline ÷ tools (seconds per act)", r2, "ratio", "<= 0.5", ptr(r2 <= 0.5))
		}
	}

	// 4. The read side, on its own database of ReadActs acts.
	if cfg.part("read") {
		fmt.Fprintf(cfg.Out, "lecture : %d clients pendant %s sur %d actes…\n", cfg.ReadClients, cfg.ReadDuration, cfg.ReadActs)
		if res, err := readSide(ctx, cfg); err != nil {
			fail(fmt.Errorf("lecture : %w", err))
		} else {
			if res.firstErr != "" {
				fmt.Fprintf(cfg.Out, "lecture : première erreur : %s\n", res.firstErr)
			}
			rep.ReadActs = cfg.ReadActs
			res.report(&rep, cfg)
		}
	}

	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return rep, err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return rep, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "latest.json"), append(b, '\n'), 0o644); err != nil {
		return rep, err
	}
	printTable(cfg.Out, rep)
	return rep, errors.Join(failed...)
}

// runPipeline runs the pipeline, then the scale-out, adding their
// figures to rep; it returns the pipeline's acts/s and seconds per act.
func runPipeline(ctx context.Context, cfg Config, rep *Report, acts string, seed int64, files int) (float64, float64, error) {
	restore, err := setLevel(cfg, cfg.Level)
	if err != nil {
		return 0, 0, err
	}
	defer restore()
	fmt.Fprintf(cfg.Out, "pipeline : %d actes, %.0f Mo, %d envois à la fois, cachets %s…\n", files, float64(rep.Bytes)/1e6, cfg.Parallel, cfg.Level)
	p, err := pipeline(ctx, cfg, acts)
	if err != nil {
		return 0, 0, fmt.Errorf("pipeline : %w", err)
	}
	rep.add("pipeline: time to all archived", p.archived.Seconds(), "s", "", nil)
	rep.add("pipeline: time to all acknowledged", p.acknowledged.Seconds(), "s", "", nil)
	rate := float64(p.acts) / p.archived.Seconds()
	rep.add("pipeline: acts/s to archived at "+cfg.Level, rate, "acts/s", ">= 50", ptr(rate >= 50))
	rep.add("pipeline: goal 100 acts/s at "+cfg.Level, rate, "acts/s", ">= 100 (goal)", ptr(rate >= 100))
	rep.add("pipeline: MB/s to archived", float64(rep.Bytes)/1e6/p.archived.Seconds(), "MB/s", "", nil)
	for _, st := range p.stages {
		rep.add("stage "+st.name+" p50", st.p50*1000, "ms", "", nil)
		rep.add("stage "+st.name+" p99", st.p99*1000, "ms", "", nil)
	}
	var cpu float64
	names := make([]string, 0, len(p.usage.CPU))
	for n := range p.usage.CPU {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cpu += p.usage.CPU[n]
		rep.add("CPU seconds: "+n, p.usage.CPU[n], "s", "", nil)
	}
	rep.add("CPU seconds per act, all processes", cpu/float64(p.acts), "s/act", "", nil)
	for _, n := range names {
		mb := float64(p.usage.PeakRSS[n]) / (1 << 20)
		if n == "etatcivil" {
			rep.add("peak RSS: etatcivil (largest process)", mb, "MiB", "<= 300", ptr(mb <= 300))
		} else {
			rep.add("peak RSS: "+n+" (largest process)", mb, "MiB", "", nil)
		}
	}

	// Another level, reported without a target (B-T: each seal waits for
	// the local TSA).
	if cfg.LevelAlso != "" {
		if _, err := setLevel(cfg, cfg.LevelAlso); err != nil {
			return 0, 0, err
		}
		more := filepath.Join(cfg.Dir, fmt.Sprintf("acts-%d-level", seed))
		if err := sample.Generate(sample.Options{Dir: more, Count: cfg.Acts, Seed: seed + 7, SizeClass: sample.SizeRealistic,
			Prefix: fmt.Sprintf("bench-%d-level-", seed)}); err != nil {
			return 0, 0, err
		}
		fmt.Fprintf(cfg.Out, "pipeline, cachets %s…\n", cfg.LevelAlso)
		px, err := pipeline(ctx, cfg, more)
		os.RemoveAll(more)
		if err != nil {
			return 0, 0, fmt.Errorf("pipeline en %s : %w", cfg.LevelAlso, err)
		}
		rep.add("pipeline: acts/s to archived at "+cfg.LevelAlso, float64(px.acts)/px.archived.Seconds(), "acts/s", "", nil)
		if _, err := setLevel(cfg, cfg.Level); err != nil {
			return 0, 0, err
		}
	}

	// Scale-out, reported without a target: 1 and 2 more `etatcivil
	// worker` processes beside serve (2 and 3 processes working).
	for extra := 1; extra <= 2; extra++ {
		more := filepath.Join(cfg.Dir, fmt.Sprintf("acts-%d-%d", seed, extra))
		if err := sample.Generate(sample.Options{Dir: more, Count: cfg.Acts, Seed: seed + int64(extra)*1_000_003, SizeClass: sample.SizeRealistic,
			Prefix: fmt.Sprintf("bench-%d-%d-", seed, extra)}); err != nil {
			return 0, 0, err
		}
		fmt.Fprintf(cfg.Out, "pipeline avec %d processus de workers…\n", extra+1)
		stop, err := startWorkers(cfg, extra)
		if err != nil {
			return 0, 0, err
		}
		px, err := pipeline(ctx, cfg, more)
		stop()
		os.RemoveAll(more)
		if err != nil {
			return 0, 0, fmt.Errorf("pipeline à %d processus : %w", extra+1, err)
		}
		rep.add(fmt.Sprintf("pipeline with %d worker processes: acts/s to archived", extra+1), float64(px.acts)/px.archived.Seconds(), "acts/s", "", nil)
	}
	return rate, p.archived.Seconds() / float64(p.acts), nil
}

// setLevel sets the PAdES level of the bench's hub (etatcivil hub
// set-level) and returns what restores the level it had.
func setLevel(cfg Config, level string) (func(), error) {
	show := exec.Command(cfg.Exe, "hub", "show", cfg.Hub)
	out, err := show.Output()
	if err != nil {
		return nil, fmt.Errorf("hub show %s : %w", cfg.Hub, err)
	}
	var h struct {
		SealLevel string `json:"seal_level"`
	}
	if err := json.Unmarshal(out, &h); err != nil || h.SealLevel == "" {
		return nil, fmt.Errorf("hub show %s : niveau illisible (%v) : %s", cfg.Hub, err, out)
	}
	set := func(l string) error {
		if out, err := exec.Command(cfg.Exe, "hub", "set-level", cfg.Hub, l).CombinedOutput(); err != nil {
			return fmt.Errorf("hub set-level %s %s : %w : %s", cfg.Hub, l, err, out)
		}
		return nil
	}
	if err := set(level); err != nil {
		return nil, err
	}
	return func() { _ = set(h.SealLevel) }, nil
}

func printTable(w io.Writer, rep Report) {
	fmt.Fprintf(w, "\n%d actes, %.0f Mo", rep.Acts, float64(rep.Bytes)/1e6)
	if rep.ReadActs > 0 {
		fmt.Fprintf(w, " ; lecture sur %d actes", rep.ReadActs)
	}
	fmt.Fprintf(w, " ; %s, %s\n\n", rep.Machine, rep.At.Format(time.RFC3339))
	fmt.Fprintln(w, "| figure | value | unit | target | |")
	fmt.Fprintln(w, "|---|---:|---|---|---|")
	for _, t := range rep.Targets {
		verdict := ""
		if t.Met != nil {
			verdict = "not met"
			if *t.Met {
				verdict = "met"
			}
			if t.Target == ">= 100 (goal)" {
				verdict = map[bool]string{true: "goal reached", false: "goal not reached"}[*t.Met]
			}
		}
		fmt.Fprintf(w, "| %s | %.3f | %s | %s | %s |\n", t.Name, t.Value, t.Unit, t.Target, verdict)
	}
}

type stage struct {
	name     string
	p50, p99 float64 // seconds
}

type pipelineResult struct {
	acts                   int
	archived, acknowledged time.Duration
	stages                 []stage
	usage                  usage
}

func pipeline(ctx context.Context, cfg Config, dir string) (pipelineResult, error) {
	var r pipelineResult
	db, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return r, err
	}
	defer db.Close(ctx)
	c := client.New(cfg.Server, cfg.HubToken)
	// The processes are watched while the acts go through, whatever the
	// outcome.
	w := watch(200 * time.Millisecond)
	batchID, err := r.run(ctx, cfg, db, c, dir)
	r.usage = w.finish()
	if err != nil {
		return r, err
	}

	// Per-stage latency from the ledger's history.
	rows, err := db.Query(ctx, `WITH h AS (
			SELECT h.entry_id, h.state, min(h.at) AS at FROM entry_history h JOIN entries e ON e.id = h.entry_id
			WHERE e.batch_id = $1 GROUP BY h.entry_id, h.state)
		SELECT s.name, percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM b.at - a.at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM b.at - a.at))
		FROM (VALUES ('validation', 'received', 'validated'), ('seal', 'validated', 'sealed'), ('archive', 'sealed', 'archived'),
			('received→archived', 'received', 'archived')) AS s(name, from_state, to_state)
		JOIN h a ON a.state = s.from_state JOIN h b ON b.entry_id = a.entry_id AND b.state = s.to_state
		GROUP BY s.name ORDER BY s.name`, batchID)
	if err != nil {
		return r, err
	}
	for rows.Next() {
		var st stage
		if err := rows.Scan(&st.name, &st.p50, &st.p99); err != nil {
			return r, err
		}
		r.stages = append(r.stages, st)
	}
	return r, rows.Err()
}

// run sends the acts of dir and waits for every entry, then every
// transmission, to end; it records the times in r and returns the batch.
func (r *pipelineResult) run(ctx context.Context, cfg Config, db *pgx.Conn, c *client.Client, dir string) (string, error) {
	start := time.Now()
	b, err := upload.Run(ctx, c, dir, upload.Options{Parallel: cfg.Parallel})
	if err != nil {
		return "", err
	}
	batchID := b.ID
	// All archived (or ended otherwise), then every transmission acknowledged.
	for {
		var total, ended int
		if err := db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state IN ('archived', 'rejected', 'stalled'))
			FROM entries WHERE batch_id = $1`, batchID).Scan(&total, &ended); err != nil {
			return "", err
		}
		if total > 0 && ended == total {
			r.acts = total
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return "", err
		}
	}
	r.archived = time.Since(start)
	// Lot registries (INSEE) hold transmissions until their cadence: the
	// bench asks for the lots now, as an operator would (transmissions
	// flush), every few seconds while it waits.
	admin := client.New(cfg.Server, cfg.AdminToken)
	deadline := time.Now().Add(10 * time.Minute)
	lastFlush := time.Time{}
	for {
		if cfg.AdminToken != "" && time.Since(lastFlush) > 2*time.Second {
			if _, err := admin.Post(ctx, "/api/v1/transmissions/flush", nil); err != nil {
				return "", fmt.Errorf("transmissions flush : %w", err)
			}
			lastFlush = time.Now()
		}
		var open int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM transmissions t JOIN entries e ON e.id = t.entry_id
			WHERE e.batch_id = $1 AND t.state NOT IN ('acknowledged', 'refused', 'dead')`, batchID).Scan(&open); err != nil {
			return "", err
		}
		if open == 0 || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return "", err
		}
	}
	r.acknowledged = time.Since(start)
	return batchID, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// startWorkers starts n `etatcivil worker` processes with the stack's
// environment (their operations listeners on free ports) and returns
// what stops them.
func startWorkers(cfg Config, n int) (func(), error) {
	var cmds []*exec.Cmd
	stop := func() {
		for _, c := range cmds {
			_ = c.Process.Signal(os.Interrupt)
		}
		for _, c := range cmds {
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = c.Process.Kill()
				<-done
			}
		}
	}
	for range n {
		c := exec.Command(cfg.Exe, "worker")
		c.Env = append(os.Environ(), "ETATCIVIL_OPS_ADDR=127.0.0.1:0")
		c.Stdout, c.Stderr = io.Discard, io.Discard
		if err := c.Start(); err != nil {
			stop()
			return nil, err
		}
		cmds = append(cmds, c)
	}
	return stop, nil
}
