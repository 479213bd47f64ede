package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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

// audit inserts e in tx, the transaction of the change or read it records.
func audit(ctx context.Context, tx pgx.Tx, e Event) error {
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

// Audit records e in its own transaction (for reads, which change nothing else).
func (s *Store) Audit(ctx context.Context, e Event) error {
	return s.Transact(ctx, func(tx pgx.Tx) error { return audit(ctx, tx, e) })
}

// AuditEvent is an audit record as read back.
type AuditEvent struct {
	ID      int64          `json:"id"`
	At      time.Time      `json:"at"`
	Actor   string         `json:"actor"`
	Name    string         `json:"actor_name"`
	Action  string         `json:"action"`
	ActID   *string        `json:"act_id"`
	EntryID *string        `json:"entry_id"`
	Purpose *string        `json:"purpose"`
	Data    map[string]any `json:"data"`
}

// AuditEvents returns events about an act (if actID is set) or by an actor.
func (s *Store) AuditEvents(ctx context.Context, actID, actor string, limit int) ([]AuditEvent, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, at, actor, actor_name, action, act_id::text, entry_id::text, purpose, data
		FROM audit_events WHERE ($1 = '' OR act_id = nullif($1, '')::uuid) AND ($2 = '' OR actor = $2) ORDER BY id LIMIT $3`, actID, actor, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEvent, error) {
		var e AuditEvent
		err := r.Scan(&e.ID, &e.At, &e.Actor, &e.Name, &e.Action, &e.ActID, &e.EntryID, &e.Purpose, &e.Data)
		return e, err
	})
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
