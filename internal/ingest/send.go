package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/etatcivil/etatcivil/internal/registry"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/transmit"
)

// SendArgs asks for one per-act transmission to be sent (or re-sent).
type SendArgs struct {
	TransmissionID string `json:"transmission_id"`
}

// Kind implements river.JobArgs.
func (SendArgs) Kind() string { return "send" }

// InsertOpts: River's own attempts only cover database trouble; sends are
// counted in the transmission, against the registry's budget.
func (SendArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 25} }

// SendWorker sends a transmission to its registry and follows it to an
// acknowledgement, a refusal, or death after the registry's budget. An
// unavailable registry snoozes the job with the registry's back-off.
type SendWorker struct {
	river.WorkerDefaults[SendArgs]
	deps *Deps
}

// Timeout bounds one send.
func (w *SendWorker) Timeout(*river.Job[SendArgs]) time.Duration { return w.deps.stepTimeout() }

// open are the states a send may start from.
var open = []string{"pending", "retrying", "overdue", "sent"}

// Work implements river.Worker.
func (w *SendWorker) Work(ctx context.Context, job *river.Job[SendArgs]) error {
	d := w.deps
	t, err := d.Store.Transmission(ctx, job.Args.TransmissionID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	switch t.State {
	case "acknowledged", "refused", "dead":
		return nil
	case "sent":
		// Woken at the acknowledgement deadline with none: overdue, and
		// sent again under the same key (the registry answers a resend
		// with its acknowledgement).
		if _, err := d.Store.MarkOverdue(ctx, t.ID); err != nil {
			return err
		}
	}
	reg, ok := findRegistry(d.Routes.Get(), t.Registry)
	if !ok {
		d.Logger.Warn("registre absent de la configuration: transmission en attente", "registry", t.Registry, "transmission", t.ID)
		return river.JobSnooze(5 * time.Minute)
	}
	complete := func(tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	}
	start := time.Now()
	o, err := d.HTTP.Send(ctx, reg, t.Key, transmit.Message{ActID: t.ActID, Version: t.Version, Commune: t.Commune, Year: t.Year,
		Kind: t.Kind, Number: t.Number, SealedSHA256: t.SealedSHA256, ObjectKey: t.ObjectKey, ArchivedAt: t.ArchivedAt})
	a := store.Attempt{HTTPStatus: o.Status, Duration: time.Since(start)}
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.Outcome, a.Error = "failed", err.Error()
		n := t.Attempts + 1
		if n >= reg.Retry.MaxAttempts {
			_, err := d.Store.RecordAttempt(ctx, t, open, "dead", a, "", fmt.Sprintf("abandonné après %d tentatives : %v", n, err), complete)
			return err
		}
		if _, err := d.Store.RecordAttempt(ctx, t, open, "retrying", a, "", "", nil); err != nil {
			return err
		}
		return river.JobSnooze(sendBackoff(n, reg.Retry))
	case o.Refused:
		a.Outcome = "refused"
		_, err := d.Store.RecordAttempt(ctx, t, open, "refused", a, "", o.Reason, complete)
		return err
	case o.Acknowledged:
		a.Outcome = "acknowledged"
		_, err := d.Store.RecordAttempt(ctx, t, open, "acknowledged", a, o.AckID, "", complete)
		return err
	default:
		a.Outcome = "sent"
		if _, err := d.Store.RecordAttempt(ctx, t, open, "sent", a, "", "", nil); err != nil {
			return err
		}
		return river.JobSnooze(reg.AckDeadline.Duration)
	}
}

func findRegistry(c *registry.Config, id string) (registry.Registry, bool) {
	if c == nil {
		return registry.Registry{}, false
	}
	for _, r := range c.Registries {
		if r.ID == id {
			return r, true
		}
	}
	return registry.Registry{}, false
}

// sendBackoff is the registry's initial back-off doubled per failed
// attempt, capped at its maximum.
func sendBackoff(n int, r registry.Retry) time.Duration {
	d := r.InitialBackoff.Duration
	for i := 1; i < n && d < r.MaxBackoff.Duration; i++ {
		d *= 2
	}
	return min(d, r.MaxBackoff.Duration)
}
