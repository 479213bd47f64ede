package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Lot is a lot and what a sender needs of it.
type Lot struct {
	ID        string
	Registry  string
	Connector string
	GroupKey  string
	Commune   string
	State     string
	Attempts  int
}

// LotAct is one act version of a lot.
type LotAct struct {
	TransmissionID string
	ActID          string
	Version        int
	Commune        string
	Year           int
	Kind           string
	SansVie        bool
	Number         int
	ActDate        string
	SealedSHA256   string
	SealedSize     int64
	ObjectKey      string
	VersionID      string
	Persons        []LotPerson
}

// LotPerson is a person of an act, from its index data.
type LotPerson struct {
	Role       string   `json:"role"`
	Surname    string   `json:"surname"`
	GivenNames []string `json:"given_names"`
}

// Lot loads a lot and its acts, in register order.
func (s *Store) Lot(ctx context.Context, id string) (Lot, []LotAct, error) {
	var l Lot
	err := s.Pool.QueryRow(ctx, `SELECT id, registry, connector, group_key, commune, state, attempts FROM lots WHERE id = $1`, id).
		Scan(&l.ID, &l.Registry, &l.Connector, &l.GroupKey, &l.Commune, &l.State, &l.Attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, nil, fmt.Errorf("lot %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return l, nil, err
	}
	rows, err := s.Pool.Query(ctx, `SELECT t.id, t.act_id, t.version, e.commune, e.year, e.kind,
			coalesce((e.index_data->>'sans_vie')::boolean, false), e.number, coalesce(e.index_data->>'act_date', ''),
			e.sealed_sha256, e.sealed_size, e.object_key, e.version_id, coalesce(e.index_data->'persons', '[]')
		FROM transmissions t JOIN entries e ON e.id = t.entry_id WHERE t.lot_id = $1 ORDER BY e.number, t.version`, id)
	if err != nil {
		return l, nil, err
	}
	acts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LotAct, error) {
		var a LotAct
		var persons []byte
		err := r.Scan(&a.TransmissionID, &a.ActID, &a.Version, &a.Commune, &a.Year, &a.Kind, &a.SansVie, &a.Number, &a.ActDate,
			&a.SealedSHA256, &a.SealedSize, &a.ObjectKey, &a.VersionID, &persons)
		if err == nil {
			err = json.Unmarshal(persons, &a.Persons)
		}
		return a, err
	})
	return l, acts, err
}

// RecordLotAttempt stores one attempt at sending a lot and moves the lot
// and every transmission in it to state together, guarded by the lot's
// state being one of from; then runs in the same transaction.
func (s *Store) RecordLotAttempt(ctx context.Context, l Lot, from []string, state string, a Attempt, ackID, reason string, then func(pgx.Tx) error) (bool, error) {
	moved := false
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		var err error
		if moved, err = lockedIn(ctx, tx, `SELECT state FROM lots WHERE id = $1 FOR UPDATE`, l.ID, from); err != nil || !moved {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE lots SET state = $2, attempts = attempts + 1, ack_id = coalesce(nullif($3, ''), ack_id),
				reason = nullif($4, ''), updated_at = now() WHERE id = $1`, l.ID, state, ackID, reason); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO transmission_attempts (transmission_id, outcome, http_status, error, duration_ms)
			SELECT id, $2, $3, nullif($4, ''), $5 FROM transmissions WHERE lot_id = $1`,
			l.ID, a.Outcome, a.status(), a.Error, a.Duration.Milliseconds()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, moveTransmissions+` WHERE lot_id = $1`, l.ID, state, ackID, reason); err != nil {
			return err
		}
		if err := audit(ctx, tx, Event{Actor: System, Action: "lot." + state,
			Data: map[string]any{"lot": l.ID, "registry": l.Registry, "outcome": a.Outcome, "ack_id": ackID, "reason": reason}}); err != nil {
			return err
		}
		if then != nil {
			return then(tx)
		}
		return nil
	})
	return moved, err
}

// MarkLotOverdue moves a sent lot without acknowledgement to overdue.
func (s *Store) MarkLotOverdue(ctx context.Context, id string) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE lots SET state = 'overdue', updated_at = now() WHERE id = $1 AND state = 'sent'`, id)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE transmissions SET state = 'overdue', updated_at = now() WHERE lot_id = $1 AND state = 'sent'`, id)
		return err
	})
}
