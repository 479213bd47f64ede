package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/etatcivil/etatcivil/internal/registry"
	"github.com/etatcivil/etatcivil/internal/seda"
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
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	took := time.Since(start)
	d.Metrics.sent(t.Registry, o, err, took)
	dec := decide(o, err, t.Attempts, reg, took)
	var then func(pgx.Tx) error
	if dec.snooze == 0 {
		then = complete
	}
	if _, err := d.Store.RecordAttempt(ctx, t, open, dec.state, dec.attempt, dec.ackID, dec.reason, then); err != nil {
		return err
	}
	if dec.snooze > 0 {
		return river.JobSnooze(dec.snooze)
	}
	return nil
}

// decision is what one send's outcome does to a transmission or a lot.
type decision struct {
	state         string
	attempt       store.Attempt
	ackID, reason string
	snooze        time.Duration // 0: final, the job completes
}

// decide applies the delivery rules, the same for every connector: a
// transient failure retries with the registry's back-off until its
// budget is spent (dead); a refusal is final with its reason; an
// acknowledgement is final; an acceptance without one waits for it until
// the deadline, then the message is sent again under the same key.
func decide(o transmit.Outcome, err error, attempts int, reg registry.Registry, took time.Duration) decision {
	a := store.Attempt{HTTPStatus: o.Status, Duration: took}
	switch {
	case err != nil:
		a.Outcome, a.Error = "failed", err.Error()
		n := attempts + 1
		if n >= reg.Retry.MaxAttempts {
			return decision{state: "dead", attempt: a, reason: fmt.Sprintf("abandonné après %d tentatives : %v", n, err)}
		}
		return decision{state: "retrying", attempt: a, snooze: sendBackoff(n, reg.Retry)}
	case o.Refused:
		a.Outcome = "refused"
		return decision{state: "refused", attempt: a, reason: o.Reason}
	case o.Acknowledged:
		a.Outcome = "acknowledged"
		return decision{state: "acknowledged", attempt: a, ackID: o.AckID}
	default:
		a.Outcome = "sent"
		return decision{state: "sent", attempt: a, snooze: reg.AckDeadline.Duration}
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

// SendLotArgs asks for one lot to be sent (or re-sent).
type SendLotArgs struct {
	LotID string `json:"lot_id"`
}

// Kind implements river.JobArgs.
func (SendLotArgs) Kind() string { return "send_lot" }

// InsertOpts: as SendArgs.
func (SendLotArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 25} }

// SendLotWorker sends a lot under its key and moves the lot and its
// transmissions together: archives lots as SEDA 2.3 transfers, INSEE lots
// as our lot XML (built once, stored, byte-identical at every resend).
type SendLotWorker struct {
	river.WorkerDefaults[SendLotArgs]
	deps *Deps
}

// Timeout bounds one lot send (a register's PDFs streamed from S3).
func (w *SendLotWorker) Timeout(*river.Job[SendLotArgs]) time.Duration {
	return 2 * w.deps.stepTimeout()
}

// Work implements river.Worker.
func (w *SendLotWorker) Work(ctx context.Context, job *river.Job[SendLotArgs]) error {
	d := w.deps
	l, acts, err := d.Store.Lot(ctx, job.Args.LotID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	switch l.State {
	case "acknowledged", "refused", "dead":
		return nil
	case "sent":
		if err := d.Store.MarkLotOverdue(ctx, l.ID); err != nil {
			return err
		}
	}
	reg, ok := findRegistry(d.Routes.Get(), l.Registry)
	if !ok {
		d.Logger.Warn("registre absent de la configuration: lot en attente", "registry", l.Registry, "lot", l.ID)
		return river.JobSnooze(5 * time.Minute)
	}
	complete := func(tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	}
	start := time.Now()
	var o transmit.Outcome
	switch registry.Connector(l.Connector) {
	case registry.ConnectorArchives:
		t := transferOf(d, l, acts)
		o, err = d.HTTP.SendTransfer(ctx, reg, l.Key, t, func(a seda.Act) (io.ReadCloser, error) {
			for _, la := range acts {
				if la.ActID == a.ActID && la.Version == a.Version {
					return d.Blob.GetArchive(ctx, la.ObjectKey, la.VersionID)
				}
			}
			return nil, fmt.Errorf("acte %s absent du lot", a.ActID)
		})
	case registry.ConnectorINSEE:
		msg := l.Message
		if msg == nil {
			lot, err := inseeLot(l, acts)
			if err == nil {
				msg, err = lot.XML()
			}
			if err != nil {
				// Acts are checked when routed, so this is a lot we cannot
				// write at all: refused here, with the reason, never sent.
				_, err := d.Store.RecordLotAttempt(ctx, l, open, store.LotOutcome{State: "refused",
					Attempt: store.Attempt{Outcome: "refused_locally", Error: err.Error()}, Reason: "Refus local, rien n'a été envoyé : " + err.Error()}, complete)
				return err
			}
			if msg, err = d.Store.SetLotMessage(ctx, l.ID, msg); err != nil {
				return err
			}
		}
		o, err = d.HTTP.SendLot(ctx, reg, l.Key, msg)
	default:
		return river.JobCancel(fmt.Errorf("pas d'expéditeur de lots pour le connecteur %s", l.Connector))
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	took := time.Since(start)
	d.Metrics.sent(l.Registry, o, err, took)
	dec := decide(o, err, l.Attempts, reg, took)
	out := store.LotOutcome{State: dec.state, Attempt: dec.attempt, AckID: dec.ackID, Reason: dec.reason}
	var redrive []string
	if dec.state == "refused" {
		out.Refused, out.Released = blame(acts, o.Refusals)
		redrive = out.Released
	}
	then := complete
	if dec.snooze > 0 {
		then = nil
	}
	if len(redrive) > 0 {
		// The acts the registry did not name go into a new lot at once:
		// the rest of the register is not held back by one bad act.
		then = func(tx pgx.Tx) error {
			if _, err := d.jobs.River.InsertTx(ctx, tx, LotBuildArgs{Registry: l.Registry, Redrive: redrive}, nil); err != nil {
				return err
			}
			return complete(tx)
		}
	}
	if _, err := d.Store.RecordLotAttempt(ctx, l, open, out, then); err != nil {
		return err
	}
	if dec.snooze > 0 {
		return river.JobSnooze(dec.snooze)
	}
	return nil
}

// blame splits a refused lot's acts: those the registry named (by act id
// or number), with their reasons, and the others, released for a new
// lot. A refusal that names no act of the lot refuses them all.
func blame(acts []store.LotAct, named []transmit.Refusal) (refused map[string]string, released []string) {
	refused = map[string]string{}
	for _, a := range acts {
		for _, r := range named {
			if (r.ActID != "" && r.ActID == a.ActID) || (r.ActID == "" && r.Number == a.Number) {
				refused[a.TransmissionID] = r.Reason
			}
		}
	}
	if len(refused) == 0 {
		return nil, nil
	}
	for _, a := range acts {
		if _, ok := refused[a.TransmissionID]; !ok {
			released = append(released, a.TransmissionID)
		}
	}
	return refused, released
}

// transferOf builds the SEDA transfer of an archives lot: one register.
func transferOf(d *Deps, l store.Lot, acts []store.LotAct) seda.Transfer {
	t := seda.Transfer{MessageID: l.ID, Date: l.CreatedAt, Commune: l.Commune,
		ArchivalAgency:     seda.Identifier{ID: l.Registry, Name: "Archives (" + l.Registry + ")"},
		TransferringAgency: seda.Identifier{ID: "etatcivil", Name: "etatcivil"}}
	if d.CommuneName != nil {
		t.CommuneName = d.CommuneName(l.Commune)
	}
	for _, a := range acts {
		t.Year, t.Kind = a.Year, a.Kind
		sa := seda.Act{ActID: a.ActID, Commune: a.Commune, CommuneName: t.CommuneName, Year: a.Year, Kind: a.Kind, SansVie: a.SansVie,
			Number: a.Number, Version: a.Version, ActDate: a.ActDate, SealedSHA256: a.SealedSHA256, Size: a.SealedSize,
			FileName: fmt.Sprintf("acts/%05d-v%d.pdf", a.Number, a.Version)}
		for _, p := range a.Persons {
			sa.Persons = append(sa.Persons, seda.Person{Role: p.Role, Surname: p.Surname, GivenNames: p.GivenNames})
		}
		t.Acts = append(t.Acts, sa)
	}
	return t
}
