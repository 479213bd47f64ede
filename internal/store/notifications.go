package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Webhook is a receiver of notifications about the acts of a scope: those
// uploaded by a hub, those of a commune (its COG chain), or both at once.
type Webhook struct {
	ID      string `json:"id"`
	HubID   string `json:"hub_id,omitempty"`
	Commune string `json:"commune,omitempty"`
	URL     string `json:"url"`
	// Secret is the HMAC key the receiver also holds; never listed.
	Secret     string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
}

// EmailSubscription is an address that receives the daily digest of a
// scope (hub and/or commune).
type EmailSubscription struct {
	ID         string     `json:"id"`
	HubID      string     `json:"hub_id,omitempty"`
	Commune    string     `json:"commune,omitempty"`
	Address    string     `json:"address"`
	CreatedAt  time.Time  `json:"created_at"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
	// LastEventID is the digest cursor: notification events up to it were
	// digested (or predate the subscription).
	LastEventID int64 `json:"last_event_id"`
	// DigestedAt is when the last digest was taken (the creation, before
	// the first).
	DigestedAt time.Time `json:"digested_at"`
}

// NotificationEvent is one thing to notify, as the collector read it from
// the audit log (or found in transmissions, for an overdue
// acknowledgement): facts only, the notify package words them.
type NotificationEvent struct {
	ID             int64
	Kind           string // rejected, stalled, refused, dead, overdue
	TransmissionID string
	LotID          string
	ActID          string
	EntryID        string
	BatchID        string
	HubID          string
	Commune        string
	CommuneName    string
	CommuneChain   []string
	Registry       string
	Reason         string
	// Detail is the rejection's French message, or what a stalled entry
	// was waiting for.
	Detail    string
	File      string
	ActKind   string
	ActYear   int
	ActNumber int
	At        time.Time
}

// Matches reports whether the event is in a scope: uploaded by hubID (if
// set) and of commune, or one of its predecessors (if set).
func (e NotificationEvent) Matches(hubID, commune string) bool {
	if hubID == "" && commune == "" {
		return false
	}
	if hubID != "" && e.HubID != hubID {
		return false
	}
	if commune == "" {
		return true
	}
	for _, c := range e.CommuneChain {
		if c == commune {
			return true
		}
	}
	return false
}

const notificationEventColumns = `n.id, n.kind, coalesce(n.transmission_id::text, ''), coalesce(n.lot_id::text, ''),
	coalesce(n.act_id::text, ''), coalesce(n.entry_id::text, ''), coalesce(n.batch_id::text, ''), coalesce(n.hub_id, ''),
	coalesce(n.commune, ''), coalesce((SELECT c.name FROM communes c WHERE c.code = n.commune ORDER BY c.type <> 'COM', c.type LIMIT 1), ''),
	n.commune_chain, coalesce(n.registry, ''), coalesce(n.reason, ''), coalesce(n.detail, ''), coalesce(n.file, ''),
	coalesce(n.act_kind, ''), coalesce(n.act_year, 0), coalesce(n.act_number, 0), n.at`

func scanNotificationEvent(r pgx.CollectableRow) (NotificationEvent, error) {
	var e NotificationEvent
	err := r.Scan(&e.ID, &e.Kind, &e.TransmissionID, &e.LotID, &e.ActID, &e.EntryID, &e.BatchID, &e.HubID,
		&e.Commune, &e.CommuneName, &e.CommuneChain, &e.Registry, &e.Reason, &e.Detail, &e.File,
		&e.ActKind, &e.ActYear, &e.ActNumber, &e.At)
	return e, err
}

func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// CreateWebhook records a webhook (its ID is set here) and returns it.
// ErrInvalid for an unknown hub or a scope-less webhook.
func (s *Store) CreateWebhook(ctx context.Context, actor Actor, w Webhook) (Webhook, error) {
	if w.HubID == "" && w.Commune == "" {
		return w, fmt.Errorf("un webhook a un périmètre (opérateur ou commune): %w", ErrInvalid)
	}
	w.ID = uuid.NewString()
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO webhooks (id, hub_id, commune, url, secret, created_by) VALUES ($1, nullif($2, ''), nullif($3, ''), $4, $5, $6)
			RETURNING created_at`, w.ID, w.HubID, w.Commune, w.URL, w.Secret, actor.Name).Scan(&w.CreatedAt)
		if isForeignKeyViolation(err) {
			return fmt.Errorf("opérateur %q inconnu: %w", w.HubID, ErrInvalid)
		}
		if err != nil {
			return fmt.Errorf("création du webhook: %w", err)
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "webhook.create",
			Data: map[string]any{"webhook": w.ID, "hub": w.HubID, "commune": w.Commune}})
	})
	return w, err
}

// Webhooks lists the webhooks, oldest first; disabled ones only if all.
func (s *Store) Webhooks(ctx context.Context, all bool) ([]Webhook, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, coalesce(hub_id, ''), coalesce(commune, ''), url, secret, created_at, disabled_at
		FROM webhooks WHERE $1 OR disabled_at IS NULL ORDER BY created_at, id`, all)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Webhook])
}

// DisableWebhook removes a webhook: it receives nothing more, and its
// pending deliveries are cancelled (they stay listed). ErrNotFound if no
// active webhook has that id.
func (s *Store) DisableWebhook(ctx context.Context, actor Actor, id string) error {
	if _, err := parseUUID(id); err != nil {
		return fmt.Errorf("webhook %q: %w", id, ErrNotFound)
	}
	return s.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE webhooks SET disabled_at = now() WHERE id = $1 AND disabled_at IS NULL`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("webhook %q: %w", id, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `UPDATE notification_deliveries SET state = 'cancelled', last_error = 'webhook supprimé', updated_at = now()
			WHERE webhook_id = $1 AND state = 'pending'`, id); err != nil {
			return err
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "webhook.remove", Data: map[string]any{"webhook": id}})
	})
}

// CreateEmailSubscription records a digest subscription (its ID is set
// here) and returns it. Its first digest covers what happens from now on.
func (s *Store) CreateEmailSubscription(ctx context.Context, actor Actor, e EmailSubscription) (EmailSubscription, error) {
	if e.HubID == "" && e.Commune == "" {
		return e, fmt.Errorf("un abonnement a un périmètre (opérateur ou commune): %w", ErrInvalid)
	}
	e.ID = uuid.NewString()
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO email_subscriptions (id, hub_id, commune, address, created_by, last_event_id)
			VALUES ($1, nullif($2, ''), nullif($3, ''), $4, $5, (SELECT coalesce(max(id), 0) FROM notification_events))
			RETURNING created_at, last_event_id, digested_at`, e.ID, e.HubID, e.Commune, e.Address, actor.Name).
			Scan(&e.CreatedAt, &e.LastEventID, &e.DigestedAt)
		if isForeignKeyViolation(err) {
			return fmt.Errorf("opérateur %q inconnu: %w", e.HubID, ErrInvalid)
		}
		if err != nil {
			return fmt.Errorf("création de l'abonnement: %w", err)
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "digest.create",
			Data: map[string]any{"subscription": e.ID, "hub": e.HubID, "commune": e.Commune}})
	})
	return e, err
}

const emailSubscriptionColumns = `id, coalesce(hub_id, ''), coalesce(commune, ''), address, created_at, disabled_at, last_event_id, digested_at`

// EmailSubscriptions lists the digest subscriptions, oldest first;
// disabled ones only if all.
func (s *Store) EmailSubscriptions(ctx context.Context, all bool) ([]EmailSubscription, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+emailSubscriptionColumns+` FROM email_subscriptions
		WHERE $1 OR disabled_at IS NULL ORDER BY created_at, id`, all)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[EmailSubscription])
}

// DisableEmailSubscription removes a digest subscription; its pending
// e-mails are cancelled. ErrNotFound if no active one has that id.
func (s *Store) DisableEmailSubscription(ctx context.Context, actor Actor, id string) error {
	if _, err := parseUUID(id); err != nil {
		return fmt.Errorf("abonnement %q: %w", id, ErrNotFound)
	}
	return s.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE email_subscriptions SET disabled_at = now() WHERE id = $1 AND disabled_at IS NULL`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("abonnement %q: %w", id, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `UPDATE notification_deliveries SET state = 'cancelled', last_error = 'abonnement supprimé', updated_at = now()
			WHERE subscription_id = $1 AND state = 'pending'`, id); err != nil {
			return err
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "digest.remove", Data: map[string]any{"subscription": id}})
	})
}

// collectFromAudit turns the audit events of transactions with xid in
// [$1, $2) into notification events: rejected or stalled entries,
// transmissions refused (by a registry, or locally) or abandoned, and
// every act of a lot refused or abandoned. A refused lot that released
// the acts its registry did not name notifies only those it kept.
const collectFromAudit = `WITH ev AS (
		SELECT id, action, at, entry_id, data FROM audit_events
		WHERE action IN ('entry.state', 'transmission.create', 'transmission.refused', 'transmission.dead', 'lot.refused', 'lot.dead')
		  AND xid >= $1 AND xid < $2
	)
	INSERT INTO notification_events (kind, audit_event_id, transmission_id, lot_id, act_id, entry_id, batch_id, hub_id,
		commune, commune_chain, registry, reason, detail, file, act_kind, act_year, act_number, at)
	SELECT * FROM (
		SELECT ev.data->>'state', ev.id, NULL::uuid, NULL::uuid, e.act_id, e.id, e.batch_id, b.hub_id,
			coalesce(a.commune, e.commune), coalesce(a.commune_chain, CASE WHEN e.commune IS NULL THEN '{}'::text[] ELSE ARRAY[e.commune] END),
			NULL, ev.data->>'reason', CASE WHEN ev.data->>'state' = 'rejected' THEN e.message ELSE ev.data->>'waiting' END,
			e.file, e.kind, e.year, e.number, ev.at
		FROM ev JOIN entries e ON e.id = ev.entry_id JOIN batches b ON b.id = e.batch_id LEFT JOIN acts a ON a.id = e.act_id
		WHERE ev.action = 'entry.state' AND ev.data->>'state' IN ('rejected', 'stalled')
		UNION ALL
		SELECT CASE WHEN ev.action = 'transmission.dead' THEN 'dead' ELSE 'refused' END, ev.id, t.id, NULL, t.act_id, e.id, e.batch_id, b.hub_id,
			a.commune, a.commune_chain, t.registry, coalesce(nullif(ev.data->>'reason', ''), t.reason), NULL,
			e.file, e.kind, e.year, e.number, ev.at
		FROM ev JOIN transmissions t ON t.id = (ev.data->>'transmission')::uuid OR (t.entry_id = ev.entry_id AND t.registry = ev.data->>'registry')
			JOIN entries e ON e.id = t.entry_id JOIN batches b ON b.id = e.batch_id JOIN acts a ON a.id = t.act_id
		WHERE ev.action IN ('transmission.refused', 'transmission.dead') OR (ev.action = 'transmission.create' AND ev.data->>'state' = 'refused')
		UNION ALL
		SELECT CASE WHEN ev.action = 'lot.dead' THEN 'dead' ELSE 'refused' END, ev.id, t.id, la.lot_id, t.act_id, e.id, e.batch_id, b.hub_id,
			a.commune, a.commune_chain, coalesce(ev.data->>'registry', t.registry), coalesce(nullif(t.reason, ''), ev.data->>'reason'), NULL,
			e.file, e.kind, e.year, e.number, ev.at
		FROM ev JOIN lot_acts la ON la.lot_id = (ev.data->>'lot')::uuid JOIN transmissions t ON t.id = la.transmission_id
			JOIN entries e ON e.id = t.entry_id JOIN batches b ON b.id = e.batch_id JOIN acts a ON a.id = t.act_id
		WHERE ev.action IN ('lot.refused', 'lot.dead')
		  AND (ev.action = 'lot.dead' OR coalesce((ev.data->>'released')::integer, 0) = 0 OR t.lot_id = la.lot_id)
	) x ORDER BY 2, 3
	ON CONFLICT DO NOTHING
	RETURNING id`

// collectOverdue records, once per transmission, an acknowledgement that
// did not come in time: no audit event says so (a sender marks the
// transmission overdue and sends it again at once), so it is found in
// transmissions changed since $1: overdue now, or an attempt after a
// "sent" one (only the acknowledgement deadline re-sends a sent message).
const collectOverdue = `INSERT INTO notification_events (kind, transmission_id, lot_id, act_id, entry_id, batch_id, hub_id,
		commune, commune_chain, registry, reason, detail, file, act_kind, act_year, act_number, at)
	SELECT 'overdue', t.id, t.lot_id, t.act_id, e.id, e.batch_id, b.hub_id, a.commune, a.commune_chain, t.registry,
		'ack_overdue', NULL, e.file, e.kind, e.year, e.number, t.updated_at
	FROM transmissions t JOIN entries e ON e.id = t.entry_id JOIN batches b ON b.id = e.batch_id JOIN acts a ON a.id = t.act_id
	WHERE t.updated_at >= $1
	  AND (t.state = 'overdue' OR EXISTS (SELECT 1 FROM transmission_attempts x WHERE x.transmission_id = t.id AND x.outcome = 'sent'
			AND EXISTS (SELECT 1 FROM transmission_attempts y WHERE y.transmission_id = t.id AND y.id > x.id)))
	  AND NOT EXISTS (SELECT 1 FROM notification_events n WHERE n.transmission_id = t.id AND n.kind = 'overdue')
	ORDER BY t.updated_at, t.id
	ON CONFLICT DO NOTHING
	RETURNING id`

// CollectNotifications reads what happened since the last collection
// into notification events, exactly once (under the cursor's row lock),
// and calls then in the same transaction with the new events, in order,
// and the active webhooks, so that deliveries and their jobs are created
// with the cursor's move or not at all. It returns how many events it
// collected.
func (s *Store) CollectNotifications(ctx context.Context, then func(tx pgx.Tx, events []NotificationEvent, hooks []Webhook) error) (int, error) {
	var n int
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		var from string
		var overdueSince time.Time
		if err := tx.QueryRow(ctx, `SELECT xid_from::text, overdue_since FROM notify_cursor FOR UPDATE`).Scan(&from, &overdueSince); err != nil {
			return fmt.Errorf("curseur des notifications: %w", err)
		}
		// Every transaction older than the snapshot's xmin has ended: its
		// events are all visible now, and none will appear below it later.
		var to string
		if err := tx.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&to); err != nil {
			return err
		}
		var ids []int64
		rows, err := tx.Query(ctx, collectFromAudit, from, to)
		if err != nil {
			return fmt.Errorf("lecture du journal d'audit: %w", err)
		}
		audited, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("lecture du journal d'audit: %w", err)
		}
		ids = append(ids, audited...)
		rows, err = tx.Query(ctx, collectOverdue, overdueSince)
		if err != nil {
			return fmt.Errorf("recherche des accusés en retard: %w", err)
		}
		overdue, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("recherche des accusés en retard: %w", err)
		}
		ids = append(ids, overdue...)
		// The next scan of transmissions starts an hour back: a change
		// committed late keeps its earlier updated_at.
		if _, err := tx.Exec(ctx, `UPDATE notify_cursor SET xid_from = greatest(xid_from, $1::text::xid8),
			overdue_since = now() - interval '1 hour', updated_at = now()`, to); err != nil {
			return err
		}
		n = len(ids)
		var events []NotificationEvent
		if n > 0 {
			rows, err := tx.Query(ctx, `SELECT `+notificationEventColumns+` FROM notification_events n WHERE n.id = ANY($1) ORDER BY n.id`, ids)
			if err != nil {
				return err
			}
			if events, err = pgx.CollectRows(rows, scanNotificationEvent); err != nil {
				return err
			}
		}
		rows, err = tx.Query(ctx, `SELECT id, coalesce(hub_id, ''), coalesce(commune, ''), url, secret, created_at, disabled_at
			FROM webhooks WHERE disabled_at IS NULL ORDER BY created_at, id`)
		if err != nil {
			return err
		}
		hooks, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Webhook])
		if err != nil {
			return err
		}
		return then(tx, events, hooks)
	})
	return n, err
}

// DueDigests lists the active subscriptions whose last digest was taken
// before before.
func (s *Store) DueDigests(ctx context.Context, before time.Time) ([]EmailSubscription, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+emailSubscriptionColumns+` FROM email_subscriptions
		WHERE disabled_at IS NULL AND digested_at < $1 ORDER BY created_at, id`, before)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[EmailSubscription])
}

// Digest is what a subscription's digest holds: the events of its scope
// since its last digest (at most the limit asked), and how many there
// were in all.
type Digest struct {
	Subscription EmailSubscription
	Events       []NotificationEvent
	Total        int
	// Since is when the previous digest was taken.
	Since time.Time
}

// TakeDigest takes subscription id's digest if it is still due (last
// taken before before, and not being taken by another worker): calls then
// in a transaction with the events of its scope since the last digest
// (at most limit of them), then moves its cursor past every event
// collected so far and records now as the digest's time. then creates the
// e-mail (or nothing, when there is nothing to say) in the same
// transaction. It reports whether the digest was taken.
func (s *Store) TakeDigest(ctx context.Context, id string, before, now time.Time, limit int, then func(tx pgx.Tx, d Digest) error) (bool, error) {
	taken := false
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+emailSubscriptionColumns+` FROM email_subscriptions
			WHERE id = $1 AND disabled_at IS NULL AND digested_at < $2 FOR UPDATE SKIP LOCKED`, id, before)
		if err != nil {
			return err
		}
		subs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[EmailSubscription])
		if err != nil || len(subs) == 0 {
			return err
		}
		d := Digest{Subscription: subs[0], Since: subs[0].DigestedAt}
		// Events are numbered in commit order (one collector at a time), so
		// the cursor may jump to the newest id seen now.
		var upTo int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM notification_events`).Scan(&upTo); err != nil {
			return err
		}
		const scope = ` FROM notification_events n WHERE n.id > $1 AND n.id <= $2
			AND ($3 = '' OR n.hub_id = $3) AND ($4 = '' OR n.commune_chain @> ARRAY[$4])`
		args := []any{d.Subscription.LastEventID, upTo, d.Subscription.HubID, d.Subscription.Commune}
		if err := tx.QueryRow(ctx, `SELECT count(*)`+scope, args...).Scan(&d.Total); err != nil {
			return err
		}
		if d.Total > 0 {
			rows, err := tx.Query(ctx, `SELECT `+notificationEventColumns+scope+` ORDER BY n.id LIMIT $5`, append(args, limit)...)
			if err != nil {
				return err
			}
			if d.Events, err = pgx.CollectRows(rows, scanNotificationEvent); err != nil {
				return err
			}
		}
		if err := then(tx, d); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE email_subscriptions SET last_event_id = greatest(last_event_id, $2), digested_at = $3 WHERE id = $1`,
			id, upTo, now); err != nil {
			return err
		}
		taken = true
		return nil
	})
	return taken, err
}

// NewDelivery is a notification to send: a webhook's JSON body, or an
// e-mail's text and subject.
type NewDelivery struct {
	Channel        string // webhook, email
	WebhookID      string
	SubscriptionID string
	Events         []int64
	Payload        []byte
	Subject        string
}

// CreateDeliveryTx records, in tx, a delivery to make and returns its
// id: the same at every attempt, so that a receiver can tell a resend.
func CreateDeliveryTx(ctx context.Context, tx pgx.Tx, d NewDelivery) (string, error) {
	id := uuid.NewString()
	if d.Events == nil {
		d.Events = []int64{}
	}
	_, err := tx.Exec(ctx, `INSERT INTO notification_deliveries (id, channel, webhook_id, subscription_id, events, payload, subject)
		VALUES ($1, $2, nullif($3, '')::uuid, nullif($4, '')::uuid, $5, $6, nullif($7, ''))`,
		id, d.Channel, d.WebhookID, d.SubscriptionID, d.Events, d.Payload, d.Subject)
	if err != nil {
		return "", fmt.Errorf("enregistrement de la notification: %w", err)
	}
	return id, nil
}

// Delivery is a notification as its sender needs it: what to send, and
// where (the webhook's URL and key, or the subscriber's address).
type Delivery struct {
	ID             string
	Channel        string
	State          string
	Attempts       int
	WebhookID      string
	SubscriptionID string
	URL            string
	Secret         string
	Address        string
	// TargetDisabled: the webhook or subscription was removed.
	TargetDisabled bool
	Payload        []byte
	Subject        string
	CreatedAt      time.Time
}

// Delivery loads one delivery with its target.
func (s *Store) Delivery(ctx context.Context, id string) (Delivery, error) {
	var d Delivery
	if _, err := parseUUID(id); err != nil {
		return d, fmt.Errorf("notification %q: %w", id, ErrNotFound)
	}
	err := s.Pool.QueryRow(ctx, `SELECT d.id, d.channel, d.state, d.attempts, coalesce(d.webhook_id::text, ''), coalesce(d.subscription_id::text, ''),
			coalesce(w.url, ''), coalesce(w.secret, ''), coalesce(es.address, ''), coalesce(w.disabled_at, es.disabled_at) IS NOT NULL,
			d.payload, coalesce(d.subject, ''), d.created_at
		FROM notification_deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id LEFT JOIN email_subscriptions es ON es.id = d.subscription_id
		WHERE d.id = $1`, id).
		Scan(&d.ID, &d.Channel, &d.State, &d.Attempts, &d.WebhookID, &d.SubscriptionID, &d.URL, &d.Secret, &d.Address, &d.TargetDisabled,
			&d.Payload, &d.Subject, &d.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("notification %q: %w", id, ErrNotFound)
	}
	return d, err
}

// DeliveryOutcome is what one attempt at a delivery gave.
type DeliveryOutcome struct {
	Delivered bool
	Status    int    // HTTP status, 0 if none
	Error     string // why it failed (never a secret)
	// Cancel ends the delivery without retry (its target was removed).
	Cancel bool
}

// RecordDelivery stores an attempt at a pending delivery: delivered,
// cancelled, failed for good once maxAttempts are spent, or still pending
// (to retry). then runs in the same transaction when the delivery is
// over (to complete its job). It returns the delivery's new state; a
// delivery no longer pending is left as it is.
func (s *Store) RecordDelivery(ctx context.Context, id string, o DeliveryOutcome, maxAttempts int, then func(pgx.Tx) error) (string, error) {
	var state string
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		var attempts int
		if err := tx.QueryRow(ctx, `SELECT state, attempts FROM notification_deliveries WHERE id = $1 FOR UPDATE`, id).Scan(&state, &attempts); err != nil {
			return err
		}
		if state != "pending" {
			return nil
		}
		attempts++
		switch {
		case o.Delivered:
			state = "delivered"
		case o.Cancel:
			state = "cancelled"
		case attempts >= maxAttempts:
			state = "failed"
		}
		var status any
		if o.Status != 0 {
			status = o.Status
		}
		if _, err := tx.Exec(ctx, `UPDATE notification_deliveries SET state = $2, attempts = $3, last_status = coalesce($4, last_status),
				last_error = CASE WHEN $2 = 'delivered' THEN NULL ELSE nullif($5, '') END, updated_at = now(),
				delivered_at = CASE WHEN $2 = 'delivered' THEN now() END
			WHERE id = $1`, id, state, attempts, status, o.Error); err != nil {
			return err
		}
		if state != "pending" && then != nil {
			return then(tx)
		}
		return nil
	})
	return state, err
}

// DeliveryItem is one delivery in a list.
type DeliveryItem struct {
	ID          string     `json:"id"`
	Channel     string     `json:"channel"`
	Target      string     `json:"target"` // the webhook's URL or the subscriber's address
	TargetID    string     `json:"target_id"`
	Events      int        `json:"events"`
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	LastStatus  *int       `json:"last_status"`
	LastError   *string    `json:"last_error"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	DeliveredAt *time.Time `json:"delivered_at"`
}

// Deliveries lists deliveries, newest first: all, or those in state.
func (s *Store) Deliveries(ctx context.Context, state string, limit int) ([]DeliveryItem, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.Pool.Query(ctx, `SELECT d.id, d.channel, coalesce(w.url, es.address, ''), coalesce(d.webhook_id, d.subscription_id)::text,
			cardinality(d.events), d.state, d.attempts, d.last_status, d.last_error, d.created_at, d.updated_at, d.delivered_at
		FROM notification_deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id LEFT JOIN email_subscriptions es ON es.id = d.subscription_id
		WHERE $1 = '' OR d.state = $1 ORDER BY d.created_at DESC, d.id LIMIT $2`, state, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[DeliveryItem])
}

// RetryDeliveries sends failed deliveries again with a fresh budget, the
// same payload and the same id: each goes back to pending and enqueue
// runs for it in the same transaction. Deliveries whose webhook or
// subscription was removed are not retried. It returns the ids retried;
// ErrNotFound if an id names no delivery.
func (s *Store) RetryDeliveries(ctx context.Context, actor Actor, ids []string, enqueue func(tx pgx.Tx, id string) error) ([]string, error) {
	var done []string
	for _, id := range ids {
		if _, err := parseUUID(id); err != nil {
			return nil, fmt.Errorf("notification %q: %w", id, ErrNotFound)
		}
	}
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		var known int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM notification_deliveries WHERE id::text = ANY($1)`, ids).Scan(&known); err != nil {
			return err
		}
		if known != len(ids) {
			return fmt.Errorf("notification inconnue parmi %v: %w", ids, ErrNotFound)
		}
		rows, err := tx.Query(ctx, `UPDATE notification_deliveries d SET state = 'pending', attempts = 0, updated_at = now()
			WHERE d.id::text = ANY($1) AND d.state = 'failed'
			  AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id AND w.disabled_at IS NOT NULL)
			  AND NOT EXISTS (SELECT 1 FROM email_subscriptions es WHERE es.id = d.subscription_id AND es.disabled_at IS NOT NULL)
			RETURNING d.id::text`, ids)
		if err != nil {
			return err
		}
		if done, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		for _, id := range done {
			if err := enqueue(tx, id); err != nil {
				return err
			}
			if err := audit(ctx, tx, Event{Actor: actor, Action: "notification.retry", Data: map[string]any{"delivery": id}}); err != nil {
				return err
			}
		}
		return nil
	})
	return done, err
}

// PruneNotifications deletes the notification events collected before
// before, and the deliveries delivered or cancelled before it: digests
// are daily and webhooks immediate, so old ones serve nobody. Failed and
// pending deliveries stay until they are dealt with.
func (s *Store) PruneNotifications(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM notification_deliveries WHERE state IN ('delivered', 'cancelled') AND updated_at < $1`, before)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `DELETE FROM notification_events WHERE created_at < $1`, before)
		n += tag.RowsAffected()
		return err
	})
	return n, err
}
