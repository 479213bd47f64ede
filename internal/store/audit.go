package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Event is one audit record: a state change, a token created or revoked,
// or a read of personal data with its purpose.
type Event struct {
	Actor   Actor
	Action  string
	BatchID string
	ActID   string
	EntryID string
	Purpose string
	Reason  string // free text of a read; may be pruned later, its digest stays
	Data    map[string]any
}

// execer is a transaction or the pool (a statement of its own).
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// audit inserts e in tx, the transaction of the change or read it records.
func audit(ctx context.Context, tx execer, e Event) error {
	var reasonSum any
	var reason any
	if e.Reason != "" {
		sum := sha256.Sum256([]byte(e.Reason))
		reasonSum, reason = hex.EncodeToString(sum[:]), e.Reason
	}
	data := e.Data
	if data == nil {
		data = map[string]any{}
	}
	_, err := tx.Exec(ctx, `INSERT INTO audit_events (actor, actor_name, action, batch_id, act_id, entry_id, purpose, reason, reason_sha256, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.Actor.ID, e.Actor.Name, e.Action, nullUUID(e.BatchID), nullUUID(e.ActID), nullUUID(e.EntryID), nullStr(e.Purpose), reason, reasonSum, data)
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// AuditTx records e in tx, a transaction of the caller's.
func AuditTx(ctx context.Context, tx pgx.Tx, e Event) error { return audit(ctx, tx, e) }

// Audit records e in a statement of its own (for reads, which change
// nothing else): one round trip, committed when it returns.
func (s *Store) Audit(ctx context.Context, e Event) error { return audit(ctx, s.Pool, e) }

// AuditEvent is an audit record as read back. Reason is the free text of
// a read's reason, null once pruned (its SHA-256 stays).
type AuditEvent struct {
	ID           int64          `json:"id"`
	Seq          *int64         `json:"seq"`
	At           time.Time      `json:"at"`
	Actor        string         `json:"actor"`
	Name         string         `json:"actor_name"`
	Action       string         `json:"action"`
	BatchID      *string        `json:"batch_id"`
	ActID        *string        `json:"act_id"`
	EntryID      *string        `json:"entry_id"`
	Purpose      *string        `json:"purpose"`
	Reason       *string        `json:"reason"`
	ReasonSHA256 *string        `json:"reason_sha256"`
	Data         map[string]any `json:"data"`
}

// AuditFilter selects audit events: about an act, by an actor (a token
// id), within [From, To), after the cursor After (an event id).
type AuditFilter struct {
	ActID    string
	Actor    string
	From, To time.Time
	After    int64
	Limit    int
}

// AuditEvents returns the events f selects, oldest first, at most
// f.Limit; next is the cursor of the following page (0: none).
func (s *Store) AuditEvents(ctx context.Context, f AuditFilter) (events []AuditEvent, next int64, err error) {
	if f.ActID != "" {
		if _, err := parseUUID(f.ActID); err != nil {
			return []AuditEvent{}, 0, nil // no event is about an act that cannot exist
		}
	}
	var from, to any
	if !f.From.IsZero() {
		from = f.From
	}
	if !f.To.IsZero() {
		to = f.To
	}
	rows, err := s.Pool.Query(ctx, `SELECT id, seq, at, actor, actor_name, action, batch_id::text, act_id::text, entry_id::text,
			purpose, reason, reason_sha256, data
		FROM audit_events
		WHERE ($1 = '' OR act_id = nullif($1, '')::uuid) AND ($2 = '' OR actor = $2)
		  AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4) AND id > $5
		ORDER BY id LIMIT $6`, f.ActID, f.Actor, from, to, f.After, f.Limit+1)
	if err != nil {
		return nil, 0, err
	}
	events, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEvent, error) {
		var e AuditEvent
		err := r.Scan(&e.ID, &e.Seq, &e.At, &e.Actor, &e.Name, &e.Action, &e.BatchID, &e.ActID, &e.EntryID,
			&e.Purpose, &e.Reason, &e.ReasonSHA256, &e.Data)
		return e, err
	})
	if err != nil {
		return nil, 0, err
	}
	if len(events) > f.Limit {
		events = events[:f.Limit]
		next = events[len(events)-1].ID
	}
	return events, next, nil
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullUUID(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// PruneReadReasons erases the free text of the reasons given for reads
// recorded before before (ETATCIVIL_READ_LOG_RETENTION); each event keeps
// the reason's SHA-256, which the chain covers, and its purpose.
func (s *Store) PruneReadReasons(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.Pool.Exec(ctx, `UPDATE audit_events SET reason = NULL WHERE reason IS NOT NULL AND at < $1`, before)
	return tag.RowsAffected(), err
}
