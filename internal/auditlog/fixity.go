package auditlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/riverqueue/river"

	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/store"
)

// Fixity re-reads archived object versions, recomputes their SHA-256 and
// records each verdict: a full pass per Period, spread evenly over rounds
// every Every, reading at most Bandwidth bytes per second.
type Fixity struct {
	Store *store.Store
	Blob  *blob.Store
	// Period is a full pass's length (default 30 days).
	Period time.Duration
	// Every is the interval between rounds (default one minute).
	Every time.Duration
	// Bandwidth bounds the bytes read per second (0: unbounded).
	Bandwidth int64
}

func (f *Fixity) period() time.Duration {
	if f.Period > 0 {
		return f.Period
	}
	return 30 * 24 * time.Hour
}

func (f *Fixity) every() time.Duration {
	if f.Every > 0 {
		return f.Every
	}
	return time.Minute
}

// RoundSize is how many versions one round checks so that versions
// archived versions are all checked within a period.
func (f *Fixity) RoundSize(versions int64) int {
	rounds := int64(f.period() / f.every())
	if rounds < 1 {
		rounds = 1
	}
	return int((versions + rounds - 1) / rounds)
}

// Tally counts a round's verdicts.
type Tally struct {
	Checked int `json:"checked"`
	OK      int `json:"ok"`
	Missing int `json:"missing"`
	Altered int `json:"altered"`
}

// Round checks this round's share of the archive, the versions checked
// longest ago first.
func (f *Fixity) Round(ctx context.Context) (Tally, error) {
	total, err := f.Store.ArchivedVersionCount(ctx)
	if err != nil || total == 0 {
		return Tally{}, err
	}
	// Versions checked within the last period are not due yet.
	due, err := f.Store.FixityDue(ctx, f.RoundSize(total), time.Now().Add(-f.period()+f.every()))
	if err != nil {
		return Tally{}, err
	}
	return f.check(ctx, due)
}

// Pass checks every archived version now (fixity run), at the same
// bandwidth, batch after batch.
func (f *Fixity) Pass(ctx context.Context) (Tally, error) {
	var t Tally
	start := time.Now()
	for {
		due, err := f.Store.FixityDue(ctx, 100, start)
		if err != nil || len(due) == 0 {
			return t, err
		}
		r, err := f.check(ctx, due)
		t.Checked, t.OK, t.Missing, t.Altered = t.Checked+r.Checked, t.OK+r.OK, t.Missing+r.Missing, t.Altered+r.Altered
		if err != nil {
			return t, err
		}
	}
}

func (f *Fixity) check(ctx context.Context, due []store.FixityTarget) (Tally, error) {
	var t Tally
	for _, v := range due {
		r, err := f.Check(ctx, v)
		if err != nil {
			// The store did not answer: not a verdict; the next round retries.
			return t, err
		}
		if err := f.Store.RecordFixity(ctx, v, r); err != nil {
			return t, err
		}
		t.Checked++
		switch r.Outcome {
		case "ok":
			t.OK++
		case "missing":
			t.Missing++
		case "altered":
			t.Altered++
		}
	}
	return t, nil
}

// Check re-reads one version and judges it; an error means no verdict
// (the store is unavailable).
func (f *Fixity) Check(ctx context.Context, v store.FixityTarget) (store.FixityResult, error) {
	rc, err := f.Blob.GetArchive(ctx, v.Key, v.VersionID)
	if err != nil {
		if errors.Is(err, blob.ErrUnavailable) {
			return store.FixityResult{}, err
		}
		return store.FixityResult{Outcome: "missing", Detail: fmt.Sprintf("objet %s version %s illisible : %v", v.Key, v.VersionID, err)}, nil
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, &throttled{r: rc, ctx: ctx, bps: f.Bandwidth, start: time.Now()})
	if err != nil {
		if err = blob.Classify(err); errors.Is(err, blob.ErrUnavailable) || ctx.Err() != nil {
			return store.FixityResult{}, err
		}
		return store.FixityResult{Outcome: "missing", Detail: fmt.Sprintf("objet %s version %s : lecture interrompue : %v", v.Key, v.VersionID, err)}, nil
	}
	sum := hex.EncodeToString(h.Sum(nil))
	r := store.FixityResult{Outcome: "ok", Size: n, SHA256: sum}
	if n != v.Size || sum != v.SHA256 {
		r.Outcome = "altered"
		r.Detail = fmt.Sprintf("lu %d octets de SHA-256 %s ; registre : %d octets de SHA-256 %s", n, sum, v.Size, v.SHA256)
	}
	return r, nil
}

// throttled reads at most bps bytes per second on average (0: unbounded).
type throttled struct {
	r     io.Reader
	ctx   context.Context
	bps   int64
	start time.Time
	n     int64
}

func (t *throttled) Read(p []byte) (int, error) {
	if t.bps > 0 && int64(len(p)) > t.bps {
		p = p[:t.bps]
	}
	n, err := t.r.Read(p)
	t.n += int64(n)
	if t.bps > 0 {
		due := time.Duration(float64(t.n) / float64(t.bps) * float64(time.Second))
		if wait := due - time.Since(t.start); wait > 0 {
			select {
			case <-t.ctx.Done():
				return n, t.ctx.Err()
			case <-time.After(wait):
			}
		}
	}
	return n, err
}

// Jobs runs checkpoints and fixity rounds as River periodic jobs (run by
// the elected leader, so once across all processes).
type Jobs struct {
	Anchor *Anchor // nil: no checkpoints (no default seal)
	Fixity *Fixity
	// CheckpointEvery is the interval between checkpoints (default one hour).
	CheckpointEvery time.Duration
	// PruneReadReasons prunes the free-text reasons of reads older than
	// the read-log retention (nil: kept).
	PruneReadReasons func(ctx context.Context) (int64, error)
}

// CheckpointArgs anchors the chain.
type CheckpointArgs struct{}

// Kind implements river.JobArgs.
func (CheckpointArgs) Kind() string { return "audit_checkpoint" }

// FixityArgs runs one fixity round.
type FixityArgs struct{}

// Kind implements river.JobArgs.
func (FixityArgs) Kind() string { return "fixity" }

// PruneArgs prunes read reasons past their retention.
type PruneArgs struct{}

// Kind implements river.JobArgs.
func (PruneArgs) Kind() string { return "audit_prune" }

type checkpointWorker struct {
	river.WorkerDefaults[CheckpointArgs]
	a *Anchor
}

func (w *checkpointWorker) Timeout(*river.Job[CheckpointArgs]) time.Duration { return 10 * time.Minute }

func (w *checkpointWorker) Work(ctx context.Context, _ *river.Job[CheckpointArgs]) error {
	_, err := w.a.Checkpoint(ctx)
	return err
}

type fixityWorker struct {
	river.WorkerDefaults[FixityArgs]
	f *Fixity
}

func (w *fixityWorker) Timeout(*river.Job[FixityArgs]) time.Duration { return 30 * time.Minute }

func (w *fixityWorker) Work(ctx context.Context, _ *river.Job[FixityArgs]) error {
	_, err := w.f.Round(ctx)
	return err
}

type pruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	fn func(ctx context.Context) (int64, error)
}

func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	_, err := w.fn(ctx)
	return err
}

// AddWorkers implements ingest.Extension.
func (j *Jobs) AddWorkers(w *river.Workers) {
	if j.Anchor != nil {
		river.AddWorker(w, &checkpointWorker{a: j.Anchor})
	}
	if j.Fixity != nil {
		river.AddWorker(w, &fixityWorker{f: j.Fixity})
	}
	if j.PruneReadReasons != nil {
		river.AddWorker(w, &pruneWorker{fn: j.PruneReadReasons})
	}
}

// PeriodicJobs implements ingest.Extension.
func (j *Jobs) PeriodicJobs() []*river.PeriodicJob {
	var out []*river.PeriodicJob
	if j.Anchor != nil {
		every := j.CheckpointEvery
		if every <= 0 {
			every = time.Hour
		}
		out = append(out, river.NewPeriodicJob(river.PeriodicInterval(every),
			func() (river.JobArgs, *river.InsertOpts) { return CheckpointArgs{}, nil }, nil))
	}
	if j.Fixity != nil {
		out = append(out, river.NewPeriodicJob(river.PeriodicInterval(j.Fixity.every()),
			func() (river.JobArgs, *river.InsertOpts) { return FixityArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true}))
	}
	if j.PruneReadReasons != nil {
		out = append(out, river.NewPeriodicJob(river.PeriodicInterval(24*time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return PruneArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true}))
	}
	return out
}
