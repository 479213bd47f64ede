package notify

import (
	"context"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Paris without the host's zoneinfo

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/etatcivil/etatcivil/internal/store"
)

var paris = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err) // embedded by time/tzdata: cannot fail
	}
	return loc
}()

// DigestArgs is the periodic check for digests due.
type DigestArgs struct{}

// Kind implements river.JobArgs.
func (DigestArgs) Kind() string { return "notify_digest" }

// DigestWorker runs Digest.
type DigestWorker struct {
	river.WorkerDefaults[DigestArgs]
	n *Notifier
}

// Timeout bounds one round of digests.
func (w *DigestWorker) Timeout(*river.Job[DigestArgs]) time.Duration { return 10 * time.Minute }

// Work implements river.Worker: the digests due, then the pruning of
// what is older than Retention.
func (w *DigestWorker) Work(ctx context.Context, job *river.Job[DigestArgs]) error {
	now := w.n.now()
	if _, err := w.n.Digest(ctx, river.ClientFromContext[pgx.Tx](ctx), now); err != nil {
		return err
	}
	if _, err := w.n.Store.PruneNotifications(ctx, now.Add(-Retention)); err != nil {
		return fmt.Errorf("purge des notifications : %w", err)
	}
	return nil
}

// DigestDue is when the digest sent at or after now's day's 07:00 (Paris)
// became due: the last 07:00 in Europe/Paris at or before now.
func DigestDue(now time.Time) time.Time {
	t := now.In(paris)
	due := time.Date(t.Year(), t.Month(), t.Day(), DigestHour, 0, 0, 0, paris)
	if due.After(now) {
		due = due.AddDate(0, 0, -1)
	}
	return due
}

// Digest takes, for every subscription whose last digest predates the
// last 07:00 (Paris) before now, the events of its scope since then: an
// e-mail (a delivery, and its job inserted with jobs, in the same
// transaction as the subscription's cursor) if there are any, nothing
// otherwise. It returns how many e-mails it queued. Without an SMTP
// server it does nothing (and says so once).
func (n *Notifier) Digest(ctx context.Context, jobs *river.Client[pgx.Tx], now time.Time) (int, error) {
	if !n.SMTP.Enabled() {
		n.disabledOnce.Do(func() {
			n.logger().Info("résumés quotidiens désactivés : ETATCIVIL_SMTP_ADDR n'est pas défini")
		})
		return 0, nil
	}
	due := DigestDue(now)
	subs, err := n.Store.DueDigests(ctx, due)
	if err != nil {
		return 0, fmt.Errorf("abonnements aux résumés : %w", err)
	}
	sent := 0
	for _, sub := range subs {
		_, err := n.Store.TakeDigest(ctx, sub.ID, due, now, DigestLimit, func(tx pgx.Tx, d store.Digest) error {
			if len(d.Events) == 0 {
				return nil // nothing to say: no e-mail
			}
			subject, body := digestText(d, now)
			ids := make([]int64, len(d.Events))
			for i, e := range d.Events {
				ids[i] = e.ID
			}
			id, err := store.CreateDeliveryTx(ctx, tx, store.NewDelivery{Channel: "email", SubscriptionID: d.Subscription.ID,
				Events: ids, Payload: []byte(body), Subject: subject})
			if err != nil {
				return err
			}
			if _, err := jobs.InsertTx(ctx, tx, DeliverArgs{DeliveryID: id}, nil); err != nil {
				return err
			}
			sent++
			return nil
		})
		if err != nil {
			return sent, fmt.Errorf("résumé de l'abonnement %s : %w", sub.ID, err)
		}
	}
	if sent > 0 {
		n.logger().Info("résumés quotidiens en file", "emails", sent)
	}
	return sent, nil
}

// frDate writes t as "14/05/2025 à 10:32", Paris time.
func frDate(t time.Time) string { return t.In(paris).Format("02/01/2006 à 15:04") }

// digestText writes a digest's subject and plain-text body, in French.
func digestText(d store.Digest, now time.Time) (subject, body string) {
	plural := func(n int, one, many string) string {
		if n > 1 {
			return fmt.Sprintf("%d %s", n, many)
		}
		return fmt.Sprintf("%d %s", n, one)
	}
	sub := d.Subscription
	subject = fmt.Sprintf("État civil : %s pour %s (%s)", plural(d.Total, "signalement", "signalements"),
		scopeLabel(sub.HubID, sub.Commune), now.In(paris).Format("02/01/2006"))
	var b strings.Builder
	fmt.Fprintf(&b, "Bonjour,\n\nVoici les signalements d'etatcivil pour %s depuis le %s (heure de Paris).\n",
		scopeLabel(sub.HubID, sub.Commune), frDate(d.Since))
	byKind := map[string][]store.NotificationEvent{}
	for _, e := range d.Events {
		byKind[e.Kind] = append(byKind[e.Kind], e)
	}
	for _, k := range kinds {
		list := byKind[k.kind]
		if len(list) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s (%d)\n\n", k.heading, len(list))
		for _, e := range list {
			fmt.Fprintf(&b, "- %s, le %s\n", actLabel(e), frDate(e.At))
			if r := reason(e); r != "" && (e.Kind == KindRejected || e.Kind == KindStalled) {
				fmt.Fprintf(&b, "  Motif : %s\n", r)
			}
			fmt.Fprintf(&b, "  %s\n", message(e))
			if e.ActID != "" {
				fmt.Fprintf(&b, "  Identifiant de l'acte : %s\n", e.ActID)
			} else if e.BatchID != "" {
				fmt.Fprintf(&b, "  Lot de dépôt : %s\n", e.BatchID)
			}
		}
	}
	if d.Total > len(d.Events) {
		fmt.Fprintf(&b, "\nListe limitée aux %d premiers signalements sur %d.\n", len(d.Events), d.Total)
	}
	b.WriteString("\nLe détail de chaque acte : « etatcivil act show IDENTIFIANT ».\n\n-- \nMessage automatique d'etatcivil, merci de ne pas y répondre.\n")
	return subject, b.String()
}
