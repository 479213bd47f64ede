package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/etatcivil/etatcivil/internal/store"
)

// CollectArgs is the periodic collection of new events.
type CollectArgs struct{}

// Kind implements river.JobArgs.
func (CollectArgs) Kind() string { return "notify_collect" }

// CollectWorker runs Collect.
type CollectWorker struct {
	river.WorkerDefaults[CollectArgs]
	n *Notifier
}

// Timeout bounds one collection.
func (w *CollectWorker) Timeout(*river.Job[CollectArgs]) time.Duration { return 2 * time.Minute }

// Work implements river.Worker.
func (w *CollectWorker) Work(ctx context.Context, job *river.Job[CollectArgs]) error {
	_, err := w.n.Collect(ctx, river.ClientFromContext[pgx.Tx](ctx))
	return err
}

// Event is one notification in a webhook's JSON body.
type Event struct {
	ID             int64     `json:"id"`
	Kind           string    `json:"kind"` // rejected, stalled, refused, dead, overdue
	ActID          *string   `json:"act_id"`
	EntryID        string    `json:"entry_id,omitempty"`
	BatchID        string    `json:"batch_id,omitempty"`
	TransmissionID string    `json:"transmission_id,omitempty"`
	Commune        string    `json:"commune"`
	Hub            string    `json:"hub"`
	Registry       *string   `json:"registry"`
	Reason         string    `json:"reason"`
	Message        string    `json:"message"` // French, for people
	File           string    `json:"file,omitempty"`
	At             time.Time `json:"at"`
}

// Payload is a webhook's JSON body.
type Payload struct {
	Events []Event `json:"events"`
}

func eventJSON(e store.NotificationEvent) Event {
	out := Event{ID: e.ID, Kind: e.Kind, EntryID: e.EntryID, BatchID: e.BatchID, TransmissionID: e.TransmissionID,
		Commune: e.Commune, Hub: e.HubID, Reason: reason(e), Message: message(e), File: e.File, At: e.At.UTC()}
	if e.ActID != "" {
		out.ActID = &e.ActID
	}
	if e.Registry != "" {
		out.Registry = &e.Registry
	}
	return out
}

// Collect reads the events that happened since the last collection and,
// in the same transaction, creates a delivery and its job (inserted with
// jobs) per webhook and batch of at most BatchSize events of its scope. It
// returns how many events it read.
func (n *Notifier) Collect(ctx context.Context, jobs *river.Client[pgx.Tx]) (int, error) {
	count, err := n.Store.CollectNotifications(ctx, func(tx pgx.Tx, events []store.NotificationEvent, hooks []store.Webhook) error {
		for _, h := range hooks {
			var mine []store.NotificationEvent
			for _, e := range events {
				if e.Matches(h.HubID, h.Commune) {
					mine = append(mine, e)
				}
			}
			for len(mine) > 0 {
				chunk := mine[:min(len(mine), BatchSize)]
				mine = mine[len(chunk):]
				p := Payload{Events: make([]Event, len(chunk))}
				ids := make([]int64, len(chunk))
				for i, e := range chunk {
					p.Events[i], ids[i] = eventJSON(e), e.ID
				}
				body, err := json.Marshal(p)
				if err != nil {
					return err
				}
				id, err := store.CreateDeliveryTx(ctx, tx, store.NewDelivery{Channel: "webhook", WebhookID: h.ID, Events: ids, Payload: body})
				if err != nil {
					return err
				}
				if _, err := jobs.InsertTx(ctx, tx, DeliverArgs{DeliveryID: id}, nil); err != nil {
					return fmt.Errorf("file d'attente de la notification: %w", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("collecte des notifications: %w", err)
	}
	if count > 0 {
		n.logger().Info("notifications collectées", "events", count)
	}
	return count, nil
}
