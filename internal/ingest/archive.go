package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/inseelot"
	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/registry"
	"github.com/etatcivil/etatcivil/internal/revocation"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// CrashEnv names the test hook that kills the process at a step
// boundary: ETATCIVIL_CRASH_AT=seal.after_stage makes the first worker to
// reach that point exit at once, as a kill -9 would. Production leaves it
// unset.
const CrashEnv = "ETATCIVIL_CRASH_AT"

// Crash points, in pipeline order.
var CrashPoints = []string{
	"validate.before_commit",
	"seal.before_stage",
	"seal.after_stage",
	"archive.after_put",
	"archive.after_commit",
}

// crash exits the process when point is the configured crash point.
func crash(point string) {
	if os.Getenv(CrashEnv) == point {
		fmt.Fprintf(os.Stderr, "etatcivil: arrêt brutal simulé au point %s\n", point)
		os.Exit(70)
	}
}

// SealedKey is the staging key of the sealed bytes of one attempt.
func SealedKey(entryID string, jobID int64, attempt int) string {
	return fmt.Sprintf("sealed/%s/%d-%d.pdf", entryID, jobID, attempt)
}

// ObjectKey is the archive key of a sealed version, readable by a person.
func ObjectKey(w store.Work, sealedSHA256 string) string {
	return fmt.Sprintf("acts/%s/%d/%s/%05d/v%d-%s.pdf", w.Commune, w.Year, w.Kind, w.Number, w.Version, sealedSHA256)
}

// SealArgs asks for the sealing of one validated entry.
type SealArgs struct {
	EntryID string `json:"entry_id"`
}

// Kind implements river.JobArgs.
func (SealArgs) Kind() string { return "seal" }

// InsertOpts: not unique, for the same reason as ValidateArgs.
func (SealArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 10} }

// SealWorker seals a validated file with its hub's seal into staging and
// commits the sealed bytes' SHA-256 and size before any archive write.
type SealWorker struct {
	river.WorkerDefaults[SealArgs]
	deps *Deps
}

// Timeout bounds one sealing.
func (w *SealWorker) Timeout(*river.Job[SealArgs]) time.Duration { return w.deps.stepTimeout() }

// Work implements river.Worker.
func (w *SealWorker) Work(ctx context.Context, job *river.Job[SealArgs]) error {
	d := w.deps
	wk, ok, err := load(ctx, d, job.Args.EntryID, model.StateValidated)
	if !ok {
		return err
	}
	key, err := d.Keys.For(ctx, wk.HubID)
	if err != nil {
		return waitFor(ctx, d, wk, model.StateValidated, "seal_unavailable", err)
	}
	orig, err := localCopy(ctx, d, wk.StagedKey, wk.Size, wk.SHA256)
	if err != nil {
		return waitFor(ctx, d, wk, model.StateValidated, stagingCause(err), err)
	}
	defer orig.Close()
	level, err := d.Store.HubSealLevel(ctx, wk.HubID)
	if err != nil {
		return waitFor(ctx, d, wk, model.StateValidated, "seal_unavailable", err)
	}
	opts := seal.Options{
		Reason: "Copie numérique fidèle du registre, cachet de l'opérateur " + wk.HubID,
		Name:   key.Label, Location: "France", Time: time.Now(),
	}
	if level != "B-B" {
		// Never archived below the hub's level: without a TSA, the act
		// waits (tsa_unavailable) until one answers.
		if d.Timestamp == nil {
			return waitFor(ctx, d, wk, model.StateValidated, "tsa_unavailable",
				fmt.Errorf("aucune autorité d'horodatage configurée (ETATCIVIL_TSA_URL) pour un cachet %s", level))
		}
		opts.Timestamp = d.Timestamp
	}
	if level == "B-LT" || level == "B-LTA" {
		if d.Validation == nil {
			return waitFor(ctx, d, wk, model.StateValidated, "revocation_unavailable",
				fmt.Errorf("aucune source de données de validation configurée pour un cachet %s", level))
		}
		opts.Validation, opts.DocTimestamp = d.Validation, level == "B-LTA"
	}
	crash("seal.before_stage")
	sealed, n, err := d.Sealer.Seal(ctx, orig, wk.Size, key, opts)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, tsa.ErrUnavailable) || errors.Is(err, tsa.ErrBadResponse) {
			return waitFor(ctx, d, wk, model.StateValidated, "tsa_unavailable", err)
		}
		if errors.Is(err, revocation.ErrUnavailable) {
			return waitFor(ctx, d, wk, model.StateValidated, "revocation_unavailable", err)
		}
		return waitFor(ctx, d, wk, model.StateValidated, "seal_error", err)
	}
	defer sealed.Close()
	// A key per attempt: a duplicate or rescued run never overwrites the
	// sealed bytes another run committed (sealing is not deterministic).
	sk := SealedKey(wk.EntryID, job.ID, job.Attempt)
	sum, err := d.Blob.PutStaging(ctx, sk, sealed, n)
	if err != nil {
		return waitFor(ctx, d, wk, model.StateValidated, "s3_unavailable", err)
	}
	crash("seal.after_stage")
	certSum := sha256.Sum256(key.Certificate().Raw)
	moved, err := d.Store.MarkSealed(ctx, wk, store.Sealed{Key: sk, SHA256: sum, Size: n,
		CertSHA256: hex.EncodeToString(certSum[:]), Subject: key.Certificate().Subject.String(), Level: level}, func(tx pgx.Tx) error {
		if _, err := d.jobs.River.InsertTx(ctx, tx, ArchiveArgs{EntryID: wk.EntryID}, nil); err != nil {
			return err
		}
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
	if err == nil && moved {
		logStep(ctx, d, wk, model.StateSealed)
	}
	return err
}

// ArchiveArgs asks for the archiving of one sealed entry.
type ArchiveArgs struct {
	EntryID string `json:"entry_id"`
}

// Kind implements river.JobArgs.
func (ArchiveArgs) Kind() string { return "archive" }

// InsertOpts: not unique, for the same reason as ValidateArgs.
func (ArchiveArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 10} }

// ArchiveWorker is the only writer of the archive bucket: it copies the
// committed sealed bytes, write-once under COMPLIANCE retention.
type ArchiveWorker struct {
	river.WorkerDefaults[ArchiveArgs]
	deps *Deps
}

// Timeout bounds one archive write.
func (w *ArchiveWorker) Timeout(*river.Job[ArchiveArgs]) time.Duration { return w.deps.stepTimeout() }

// Work implements river.Worker.
func (w *ArchiveWorker) Work(ctx context.Context, job *river.Job[ArchiveArgs]) error {
	d := w.deps
	wk, ok, err := load(ctx, d, job.Args.EntryID, model.StateSealed)
	if !ok {
		return err
	}
	// The copy to the archive is not abandoned half-way when the job is
	// cancelled (a SIGTERM past the shutdown timeout, a lost connection):
	// a PUT cut off after its last byte may still become a version on the
	// server while the retry writes it again, and conditional writes are
	// not atomic on every S3 (make test-faults found two versions of an
	// act on the gateway). It ends within the step timeout; the commit
	// that follows uses the job's context, and a retry adopts the object
	// (If-None-Match answers 412).
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.stepTimeout())
	defer cancel()
	// One copy of an entry at a time, whatever runs it: River's rescuer
	// may run a job again while a slow first run is still copying, and
	// two concurrent conditional PUTs of one key both succeed on some S3
	// (two versions of one act on the gateway under make test-faults).
	held, err := d.Store.LeaseArchive(ctx, wk.EntryID, d.stepTimeout()+time.Minute)
	if err != nil {
		return err
	}
	if !held {
		return river.JobSnooze(10 * time.Second) // the other run will have moved the entry on
	}
	defer d.Store.ReleaseArchive(context.WithoutCancel(ctx), wk.EntryID)
	obj, size, err := d.Blob.GetStaging(pctx, wk.SealedKey)
	if err != nil {
		return waitFor(ctx, d, wk, model.StateSealed, "s3_unavailable", err)
	}
	defer obj.Close()
	if size != wk.SealedSize {
		return waitFor(ctx, d, wk, model.StateSealed, "staging_integrity", fmt.Errorf("copie scellée de %d octets, %d attendus", size, wk.SealedSize))
	}
	key := ObjectKey(wk, wk.SealedSHA256)
	until := d.RetainUntil(time.Now())
	a, err := d.Blob.PutArchive(pctx, key, obj, size, wk.SealedSHA256, until)
	if errors.Is(err, blob.ErrIntegrity) {
		// The staged sealed bytes are not those committed: never archive
		// them. The act stalls, visibly, for an operator.
		return waitFor(ctx, d, wk, model.StateSealed, "staging_integrity", err)
	}
	if err != nil {
		return waitFor(ctx, d, wk, model.StateSealed, "s3_unavailable", err)
	}
	crash("archive.after_put")
	moved, err := d.Store.MarkArchived(ctx, wk, a.Key, a.VersionID, until, func(tx pgx.Tx) error {
		// Routing happens in the archiving transaction: an archived
		// version always has its transmissions, never twice.
		if _, err := route(ctx, tx, d, wk, ""); err != nil {
			return err
		}
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
	if err != nil || !moved {
		return err
	}
	logStep(ctx, d, wk, model.StateArchived)
	crash("archive.after_commit")
	// Staging copies are no longer needed; the cleanup job catches any
	// left behind.
	removeStaging(ctx, d, wk)
	return nil
}

func removeStaging(ctx context.Context, d *Deps, wk store.Work) {
	if wk.StagedKey != "" {
		if err := d.Blob.RemoveStaging(ctx, wk.StagedKey); err != nil {
			d.Logger.Warn("suppression du dépôt", "key", wk.StagedKey, "err", err)
			return
		}
	}
	// Every seal attempt's copy, the committed one and any a duplicate
	// run left behind.
	if err := d.Blob.RemoveStagingPrefix(ctx, "sealed/"+wk.EntryID+"/"); err != nil {
		d.Logger.Warn("suppression du dépôt", "entry", wk.EntryID, "err", err)
		return
	}
	if err := d.Store.StagingRemoved(ctx, wk.EntryID); err != nil {
		d.Logger.Warn("suppression du dépôt", "entry", wk.EntryID, "err", err)
	}
}

// CleanupArgs is the periodic removal of staging objects: archived
// entries' at once (if the archive step could not), rejected ones after
// ETATCIVIL_REJECTED_RETENTION_DAYS.
type CleanupArgs struct{}

// Kind implements river.JobArgs.
func (CleanupArgs) Kind() string { return "staging_cleanup" }

// CleanupWorker removes staging objects no longer needed.
type CleanupWorker struct {
	river.WorkerDefaults[CleanupArgs]
	deps *Deps
}

// Timeout bounds one cleanup round.
func (w *CleanupWorker) Timeout(*river.Job[CleanupArgs]) time.Duration { return w.deps.stepTimeout() }

// Work implements river.Worker.
func (w *CleanupWorker) Work(ctx context.Context, job *river.Job[CleanupArgs]) error {
	d := w.deps
	before := time.Now().AddDate(0, 0, -d.RejectedRetentionDays)
	list, err := d.Store.StagingToRemove(ctx, before, 500)
	if err != nil {
		return err
	}
	for _, wk := range list {
		removeStaging(ctx, d, wk)
	}
	return nil
}

// waitFor records an infrastructure failure of a step and snoozes, or
// stalls the entry past the budget.
func waitFor(ctx context.Context, d *Deps, wk store.Work, from model.State, cause string, cerr error) error {
	n, stalled, err := d.Store.MarkWaiting(ctx, wk, from, cause, d.RetryBudget)
	if err != nil {
		return fmt.Errorf("%w (et enregistrement de l'attente: %w)", cerr, err)
	}
	d.Logger.Warn("étape en attente", "entry", wk.EntryID, "state", from, "cause", cause, "failures", n, "stalled", stalled, "err", cerr)
	if stalled {
		return river.JobCancel(fmt.Errorf("bloqué après %d échecs: %w", n, cerr))
	}
	return river.JobSnooze(Backoff(n, d.BackoffMax))
}

// SweepArgs is the periodic re-drive of orphaned entries: in a working
// state with no job to move them (see store.Orphans).
type SweepArgs struct{}

// Kind implements river.JobArgs.
func (SweepArgs) Kind() string { return "orphan_sweep" }

// SweepWorker re-enqueues orphaned entries.
type SweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	deps *Deps
}

// Timeout bounds one sweep.
func (w *SweepWorker) Timeout(*river.Job[SweepArgs]) time.Duration { return w.deps.stepTimeout() }

// Work implements river.Worker.
func (w *SweepWorker) Work(ctx context.Context, job *river.Job[SweepArgs]) error {
	d := w.deps
	// Twice the longest step: a job that is merely slow is never doubled.
	idle := 2 * (d.Isolate.Timeout + d.stepTimeout())
	list, err := d.Store.Orphans(ctx, idle, 500)
	if err != nil {
		return err
	}
	for _, wk := range list {
		err := d.Store.Transact(ctx, func(tx pgx.Tx) error { return d.jobs.EnqueueFor(ctx, tx, wk.EntryID, wk.State) })
		if err != nil {
			return err
		}
		d.Logger.Warn("entrée orpheline relancée", "entry", wk.EntryID, "state", wk.State)
	}
	return nil
}

// errStagingIntegrity: a staged object is not the bytes the ledger names.
var errStagingIntegrity = errors.New("le dépôt ne contient pas les octets enregistrés")

// localCopy copies a staged object to a temporary file, checking its
// size and SHA-256 against the ledger, so that a step works on exactly the
// bytes received (a concurrent re-upload or damage in staging is caught)
// and a slow network never eats into the PDF checker's time limit. The
// caller closes the file; closing removes it.
func localCopy(ctx context.Context, d *Deps, key string, size int64, sha string) (*tempFile, error) {
	obj, got, err := d.Blob.GetStaging(ctx, key)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	if got != size {
		return nil, fmt.Errorf("%w: %s fait %d octets, %d attendus", errStagingIntegrity, key, got, size)
	}
	f, err := os.CreateTemp("", "etatcivil-step-*")
	if err != nil {
		return nil, err
	}
	t := &tempFile{f}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), obj)
	if err == nil && n != size {
		err = fmt.Errorf("%w: %s: %d octets lus sur %d", errStagingIntegrity, key, n, size)
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != sha {
		err = fmt.Errorf("%w: %s a pour SHA-256 %x, le registre dit %s", errStagingIntegrity, key, h.Sum(nil), sha)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// tempFile removes itself on Close.
type tempFile struct{ *os.File }

// Close closes and removes the file.
func (t *tempFile) Close() error {
	err := t.File.Close()
	os.Remove(t.Name())
	return err
}

// stagingCause names why a step waits after localCopy failed.
func stagingCause(err error) string {
	if errors.Is(err, errStagingIntegrity) {
		return "staging_integrity"
	}
	return "s3_unavailable"
}

// route records, in tx, a pending transmission of the archived version
// to every registry whose rule matches it (only registry only, if set:
// backfill). It returns how many transmissions it created.
func route(ctx context.Context, tx pgx.Tx, d *Deps, wk store.Work, only string) (int, error) {
	cfg := d.Routes.Get()
	if cfg == nil {
		return 0, nil
	}
	f, err := store.RoutingFacts(ctx, tx, wk.EntryID)
	if err != nil {
		return 0, fmt.Errorf("routage: %w", err)
	}
	v := registry.Version{Kind: model.Kind(f.Kind), SansVie: f.SansVie, CommuneChain: f.CommuneChain, Flow: model.Flow(f.Flow),
		Year: f.Year, Version: f.Version, RevisionReason: model.RevisionReason(f.RevisionReason), ArchivedAt: time.Now()}
	var perAct, lots []store.Target
	var facts *store.LotAct
	for _, r := range cfg.Route(v) {
		if only != "" && r.ID != only {
			continue
		}
		t := store.Target{Registry: r.ID, Connector: string(r.Connector)}
		if r.Connector == registry.ConnectorINSEE {
			// INSEE takes bulletins only: an act without one (a
			// recognition) is not routed, whatever the rule says; an act
			// lacking a bulletin's data is refused here, at once, with
			// the French message saying what is missing.
			nature, ok := inseelot.NatureOf(f.Kind, f.SansVie)
			if !ok {
				continue
			}
			if facts == nil {
				a, err := store.IndexFacts(ctx, tx, wk.EntryID)
				if err != nil {
					return 0, fmt.Errorf("routage: %w", err)
				}
				facts = &a
			}
			if err := inseelot.Check(inseeAct(*facts), nature); err != nil {
				t.Refusal = "Refus local, rien n'a été envoyé : " + err.Error()
			}
		}
		if r.Connector == registry.ConnectorHTTP {
			perAct = append(perAct, t)
		} else {
			lots = append(lots, t) // sent in lots (insee, archives): the lot builders pick them up
		}
	}
	created, err := store.CreateTransmissions(ctx, tx, wk, lots)
	if err != nil {
		return 0, err
	}
	ids, err := store.CreateTransmissions(ctx, tx, wk, perAct)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if _, err := d.jobs.River.InsertTx(ctx, tx, SendArgs{TransmissionID: id}, nil); err != nil {
			return 0, err
		}
	}
	return len(created) + len(ids), nil
}
