// Package ingest holds the pipeline's River jobs: one args type and one
// worker per step, registered in one place (NewClient). Job args carry ids
// only; everything else is read from the store when the job runs.
package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/pdfcheck"
	"github.com/etatcivil/etatcivil/internal/registry"
	"github.com/etatcivil/etatcivil/internal/reqid"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/transmit"
)

// Deps is what the workers use.
type Deps struct {
	Store  *store.Store
	Blob   *blob.Store
	Logger *slog.Logger
	// PDFCheckExe is the binary run as "EXE pdfcheck" to check a PDF in a
	// child process (os.Executable() in production).
	PDFCheckExe string
	Limits      pdfcheck.Limits
	Isolate     pdfcheck.IsolateOptions
	RetryBudget int           // infrastructure failures before "stalled"
	BackoffMax  time.Duration // cap of the snooze between them
	Workers     int           // jobs run at once by this process; 0: insert only
	Sealer      seal.Sealer
	Keys        *KeyRing
	// RetainUntil gives the COMPLIANCE retention date of an object
	// archived at t (ETATCIVIL_RETENTION after t).
	RetainUntil           func(t time.Time) time.Time
	RejectedRetentionDays int
	// RescueAfter: a job still running after this long is deemed lost
	// (its worker crashed) and retried; longer than every step's timeout.
	RescueAfter time.Duration
	// StepTimeout bounds one seal, archive or cleanup run, and the S3
	// part of a validation. River deems a job lost (its worker died) only
	// once it has run longer than its timeout and RescueAfter.
	StepTimeout time.Duration
	// Routes are the registries archived versions are routed to (nil: none).
	Routes *registry.Routes
	// HTTP sends per-act messages (connector "http").
	HTTP *transmit.HTTP
	// LotPolicies group the transmissions of lot-based connectors; a
	// connector without one keeps its transmissions pending.
	LotPolicies map[registry.Connector]LotPolicy
	// Extensions add their own workers and periodic jobs to the same
	// River client (notifications, for one).
	Extensions []Extension
	// Timestamp obtains signature timestamps (PAdES B-T) from the TSA;
	// nil when none is configured: acts of B-T hubs then wait.
	Timestamp seal.Timestamper
	// Validation gathers the validation material of B-LT and B-LTA seals
	// (OCSP answers, CRLs); nil: acts of such hubs wait.
	Validation *seal.Validation
	// Metrics count sends (nil: not counted).
	Metrics *SendMetrics
	// CommuneName names a COG code (for messages); nil leaves names empty.
	CommuneName func(code string) string

	jobs    *Client        // set by NewClient, for the next step's InsertTx
	checker *pdfcheck.Pool // set by NewClient
}

// Client is the River client and the way the rest of etatcivil enqueues.
type Client struct {
	River *river.Client[pgx.Tx]
	deps  *Deps
}

// CloseCheckers stops the idle PDF checker children, once the workers
// are stopped (a child left behind would end anyway when this process
// does: its stdin closes).
func (c *Client) CloseCheckers() {
	if c.deps.checker != nil {
		c.deps.checker.Close()
	}
}

// NewClient builds the River client with every worker registered. With
// deps.Workers == 0 it only inserts jobs (serve --workers=false).
func NewClient(pool *pgxpool.Pool, deps *Deps) (*Client, error) {
	if deps.HTTP == nil {
		deps.HTTP = &transmit.HTTP{}
	}
	// Checker children are kept between files (the process start is half
	// of a check's cost), as many idle as there are workers.
	deps.checker = &pdfcheck.Pool{Exe: deps.PDFCheckExe, Lim: deps.Limits, Opt: deps.Isolate, Idle: max(deps.Workers, 1)}
	if deps.LotPolicies == nil {
		deps.LotPolicies = map[registry.Connector]LotPolicy{
			registry.ConnectorArchives: ArchivesPolicy(time.Minute),
			registry.ConnectorINSEE:    INSEEPolicy(),
		}
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &ValidateWorker{deps: deps})
	river.AddWorker(workers, &SealWorker{deps: deps})
	river.AddWorker(workers, &ArchiveWorker{deps: deps})
	river.AddWorker(workers, &CleanupWorker{deps: deps})
	river.AddWorker(workers, &SweepWorker{deps: deps})
	river.AddWorker(workers, &SendWorker{deps: deps})
	river.AddWorker(workers, &LotBuildWorker{deps: deps})
	river.AddWorker(workers, &SendLotWorker{deps: deps})
	river.AddWorker(workers, &AuditChainWorker{deps: deps})
	for _, ext := range deps.Extensions {
		ext.AddWorkers(workers)
	}
	cfg := &river.Config{
		Workers: workers,
		Logger:  deps.Logger,
		// A job whose worker died is rescued and retried after this; the
		// guarded state changes make the retry harmless.
		RescueStuckJobsAfter: cmp.Or(deps.RescueAfter, 10*time.Minute),
		// No global timeout: each worker sets its own (Timeout methods).
		JobTimeout: -1,
		// A request's id follows the jobs it creates (job metadata).
		// Each job is timed (etatcivil_job_seconds).
		Middleware: []rivertype.Middleware{reqid.Insert, reqid.Work, timeJobs},
		// Run by the elected leader only, so once across all processes.
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(10*time.Minute),
				func() (river.JobArgs, *river.InsertOpts) { return CleanupArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(5*time.Minute),
				func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(time.Minute),
				func() (river.JobArgs, *river.InsertOpts) { return LotBuildArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			// The audit chain follows the log closely (checkpoints anchor it).
			river.NewPeriodicJob(river.PeriodicInterval(30*time.Second),
				func() (river.JobArgs, *river.InsertOpts) { return AuditChainArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
		},
	}
	for _, ext := range deps.Extensions {
		cfg.PeriodicJobs = append(cfg.PeriodicJobs, ext.PeriodicJobs()...)
	}
	if deps.Workers > 0 {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: deps.Workers}}
	}
	c, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("client River: %w", err)
	}
	client := &Client{River: c, deps: deps}
	deps.jobs = client
	return client, nil
}

// EnqueueValidate enqueues the validation of an entry in tx.
func (c *Client) EnqueueValidate(ctx context.Context, tx pgx.Tx, entryID string) error {
	_, err := c.River.InsertTx(ctx, tx, ValidateArgs{EntryID: entryID}, nil)
	return err
}

// EnqueueFor enqueues the job that resumes an entry in state (for acts retry).
func (c *Client) EnqueueFor(ctx context.Context, tx pgx.Tx, entryID string, state model.State) error {
	var args river.JobArgs
	switch state {
	case model.StateReceived:
		args = ValidateArgs{EntryID: entryID}
	case model.StateValidated:
		args = SealArgs{EntryID: entryID}
	case model.StateSealed:
		args = ArchiveArgs{EntryID: entryID}
	}
	if args != nil {
		_, err := c.River.InsertTx(ctx, tx, args, nil)
		return err
	}
	return fmt.Errorf("aucune étape à relancer depuis l'état %s", state)
}

// Flush asks for the lots of registry (every lot-based registry when
// empty) to be built now, whatever their cadence.
func (c *Client) Flush(ctx context.Context, registry string) error {
	_, err := c.River.Insert(ctx, LotBuildArgs{Registry: registry, Flush: true}, nil)
	return err
}

// Extension is a set of River workers and periodic jobs run beside the
// pipeline's, by the same client (one queue, one leader for periodic jobs).
type Extension interface {
	AddWorkers(*river.Workers)
	PeriodicJobs() []*river.PeriodicJob
}

// BackfillResult is one page of a backfill.
type BackfillResult struct {
	Registry string `json:"registry"`
	Examined int    `json:"examined"`
	Routed   int    `json:"routed"`
	// Next is where the next page starts; empty when every archived
	// version has been examined.
	Next string `json:"next"`
}

// Backfill applies registry's current rule to versions archived before
// it existed (or changed): one page of at most limit versions without a
// transmission to it, after the entry id after. Each version is routed
// as at archiving time, in its own transaction; running it twice creates
// nothing twice.
func (c *Client) Backfill(ctx context.Context, actor store.Actor, registryID, after string, limit int) (BackfillResult, error) {
	d := c.deps
	res := BackfillResult{Registry: registryID}
	if _, ok := findRegistry(d.Routes.Get(), registryID); !ok {
		return res, fmt.Errorf("%w: registre « %s » absent de la configuration en vigueur", ErrUnknownRegistry, registryID)
	}
	list, err := d.Store.ArchivedWithout(ctx, registryID, after, limit)
	if err != nil {
		return res, err
	}
	for _, wk := range list {
		err := d.Store.Transact(ctx, func(tx pgx.Tx) error {
			n, err := route(ctx, tx, d, wk, registryID)
			res.Routed += n
			return err
		})
		if err != nil {
			return res, err
		}
		res.Examined++
		res.Next = wk.EntryID
	}
	if len(list) < limit {
		res.Next = ""
	}
	err = d.Store.AuditSystem(ctx, actor, "transmission.backfill", map[string]any{"registry": registryID, "after": after,
		"examined": res.Examined, "routed": res.Routed})
	return res, err
}

// ErrUnknownRegistry is a registry id the configuration does not have.
var ErrUnknownRegistry = errors.New("registre inconnu")

// Redrive is how re-driven transmissions are sent again (see
// store.RetryTransmissions).
func (c *Client) Redrive(ctx context.Context) store.Redrive {
	return store.Redrive{
		Send: func(tx pgx.Tx, id string) error {
			return c.wakeOrInsert(ctx, tx, SendArgs{TransmissionID: id}, map[string]any{"transmission_id": id})
		},
		SendLot: func(tx pgx.Tx, lotID string) error {
			return c.wakeOrInsert(ctx, tx, SendLotArgs{LotID: lotID}, map[string]any{"lot_id": lotID})
		},
		Rebuild: func(tx pgx.Tx, registry string, ids []string) error {
			_, err := c.River.InsertTx(ctx, tx, LotBuildArgs{Registry: registry, Redrive: ids}, nil)
			return err
		},
	}
}

// wakeOrInsert makes the job of args that is still waiting (a retrying or
// overdue transmission's send sleeps, snoozed, until its back-off or
// deadline) available now, in tx, instead of inserting a second one: two
// jobs would each send, and each later failure would snooze both. Only if
// none waits is a new job inserted. A job running at this instant is left
// alone and a new one inserted: it may be about to give up on the old
// budget, and the extra send carries the same key.
func (c *Client) wakeOrInsert(ctx context.Context, tx pgx.Tx, args river.JobArgs, match map[string]any) error {
	js, err := json.Marshal(match)
	if err != nil {
		return err
	}
	res, err := c.River.JobListTx(ctx, tx, river.NewJobListParams().Kinds(args.Kind()).
		States(rivertype.JobStateScheduled, rivertype.JobStateRetryable, rivertype.JobStateAvailable).
		Where("args @> @match::jsonb", river.NamedArgs{"match": string(js)}).First(10))
	if err != nil {
		return err
	}
	if len(res.Jobs) == 0 {
		_, err := c.River.InsertTx(ctx, tx, args, nil)
		return err
	}
	for _, j := range res.Jobs {
		if _, err := c.River.JobRetryTx(ctx, tx, j.ID); err != nil {
			return err
		}
	}
	return nil
}

// ValidateArgs asks for the validation of one received entry.
type ValidateArgs struct {
	EntryID string `json:"entry_id"`
}

// Kind implements river.JobArgs.
func (ValidateArgs) Kind() string { return "validate" }

// InsertOpts: no uniqueness on purpose. A job that has just stalled its
// entry is still "running" for an instant, and a unique insert from "acts
// retry" would be skipped against it and lost. A duplicate job is
// harmless: the worker acts only on an entry still in "received", under a
// row lock.
func (ValidateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 10}
}

// ValidateWorker checks a received file: our own scanner, pdfcpu and the
// policy, in a child process with memory and time limits.
type ValidateWorker struct {
	river.WorkerDefaults[ValidateArgs]
	deps *Deps
}

// Timeout bounds one validation: the copy from S3 (a step) plus the
// child's own time limit.
func (w *ValidateWorker) Timeout(*river.Job[ValidateArgs]) time.Duration {
	return w.deps.Isolate.Timeout + w.deps.stepTimeout()
}

// Work implements river.Worker.
func (w *ValidateWorker) Work(ctx context.Context, job *river.Job[ValidateArgs]) error {
	d := w.deps
	wk, ok, err := load(ctx, d, job.Args.EntryID, model.StateReceived)
	if !ok {
		return err
	}
	if wk.StagedKey == "" {
		return river.JobCancel(fmt.Errorf("l'entrée %s n'a pas de fichier à valider", wk.EntryID))
	}
	f, err := localCopy(ctx, d, wk.StagedKey, wk.Size, wk.SHA256)
	if err != nil {
		return waitFor(ctx, d, wk, model.StateReceived, stagingCause(err), err)
	}
	defer f.Close()
	res, err := d.checker.Check(ctx, f, wk.Size)
	var rej *model.Rejection
	switch {
	case errors.As(err, &rej):
		_, err := d.Store.MarkRejected(ctx, wk, model.StateReceived, rej)
		if err != nil {
			return err
		}
		return river.JobCancel(rej)
	case ctx.Err() != nil:
		return ctx.Err() // shutdown or timeout: River retries the job
	case err != nil:
		// The child could not be started, fed, or was stopped by a signal:
		// ours, not the file's.
		return waitFor(ctx, d, wk, model.StateReceived, "checker_unavailable", err)
	}
	crash("validate.before_commit")
	// One transaction: the guarded state change, the next step, and this
	// job's completion, so a crash can neither lose nor double a step.
	moved, err := d.Store.MarkValidated(ctx, wk, store.Validation{Pages: res.Pages, Version: res.Version, PDFA: res.PDFA}, func(tx pgx.Tx) error {
		if _, err := d.jobs.River.InsertTx(ctx, tx, SealArgs{EntryID: wk.EntryID}, nil); err != nil {
			return err
		}
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
	if err == nil && moved {
		logStep(ctx, d, wk, model.StateValidated)
	}
	return err
}

// logStep logs one step done: the entry, its act and batch (ids only,
// never index data) and the request that started the work.
func logStep(ctx context.Context, d *Deps, wk store.Work, state model.State) {
	if d.Logger == nil {
		return
	}
	d.Logger.InfoContext(ctx, "étape faite", "state", string(state), "entry", wk.EntryID, "act", wk.ActID, "batch", wk.BatchID,
		"request_id", reqid.From(ctx))
}

// Backoff is 2^n seconds, capped at max.
func Backoff(n int, max time.Duration) time.Duration {
	if n > 30 {
		return max
	}
	d := time.Duration(1<<n) * time.Second
	if d > max {
		return max
	}
	return d
}

func (d *Deps) stepTimeout() time.Duration { return cmp.Or(d.StepTimeout, 5*time.Minute) }

// load reads a job's entry. ok is false when there is nothing to do: the
// entry is gone (err is a JobCancel), the database failed (err, retried by
// River), or the entry is no longer in state (done already, or re-driven
// elsewhere: err is nil).
func load(ctx context.Context, d *Deps, entryID string, state model.State) (store.Work, bool, error) {
	wk, err := d.Store.Work(ctx, entryID)
	if errors.Is(err, store.ErrNotFound) {
		return wk, false, river.JobCancel(err)
	}
	if err != nil {
		return wk, false, err
	}
	return wk, wk.State == state, nil
}
