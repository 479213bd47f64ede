package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Lot is a lot and what a sender needs of it.
type Lot struct {
	ID        string
	Key       string // idempotency key: LotKey(ID)
	Registry  string
	Connector string
	GroupKey  string
	Commune   string
	State     string
	Attempts  int
	CreatedAt time.Time
	Message   []byte // the exact message sent, once built (insee)
}

// LotAct is one act version of a lot, with its index data.
type LotAct struct {
	TransmissionID string
	ActID          string
	Version        int
	HubID          string
	Commune        string
	Year           int
	Kind           string
	SansVie        bool
	Number         int
	ActDate        string
	EventDate      string
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
	Sex        string   `json:"sex"`
	BirthDate  string   `json:"birth_date"`
	BirthPlace string   `json:"birth_place"`
}

// LotKey is a lot's idempotency key: 64 hex digits derived from its id,
// the same for every resend of the lot, different for any other lot.
func LotKey(lotID string) string {
	sum := sha256.Sum256([]byte("etatcivil-lot-v1\n" + lotID))
	return hex.EncodeToString(sum[:])
}

// actFacts selects what senders need of act versions; callers add FROM
// transmissions t ... WHERE.
const actFacts = `SELECT t.id, t.act_id, t.version, b.hub_id, e.commune, e.year, e.kind,
		coalesce((e.index_data->>'sans_vie')::boolean, false), e.number, coalesce(e.index_data->>'act_date', ''),
		coalesce(e.index_data->>'event_date', ''), coalesce(e.sealed_sha256, ''), coalesce(e.sealed_size, 0),
		coalesce(e.object_key, ''), coalesce(e.version_id, ''), coalesce(e.index_data->'persons', '[]')
	FROM transmissions t JOIN entries e ON e.id = t.entry_id JOIN batches b ON b.id = e.batch_id `

func collectActs(rows pgx.Rows) ([]LotAct, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (LotAct, error) {
		var a LotAct
		var persons []byte
		err := r.Scan(&a.TransmissionID, &a.ActID, &a.Version, &a.HubID, &a.Commune, &a.Year, &a.Kind, &a.SansVie, &a.Number, &a.ActDate,
			&a.EventDate, &a.SealedSHA256, &a.SealedSize, &a.ObjectKey, &a.VersionID, &persons)
		if err == nil {
			err = json.Unmarshal(persons, &a.Persons)
		}
		return a, err
	})
}

// Lot loads a lot and its act set (as committed), in register order.
func (s *Store) Lot(ctx context.Context, id string) (Lot, []LotAct, error) {
	var l Lot
	err := s.Pool.QueryRow(ctx, `SELECT id, idempotency_key, registry, connector, group_key, commune, state, attempts, created_at, message
		FROM lots WHERE id = $1`, id).
		Scan(&l.ID, &l.Key, &l.Registry, &l.Connector, &l.GroupKey, &l.Commune, &l.State, &l.Attempts, &l.CreatedAt, &l.Message)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, nil, fmt.Errorf("lot %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return l, nil, err
	}
	rows, err := s.Pool.Query(ctx, actFacts+`JOIN lot_acts la ON la.transmission_id = t.id WHERE la.lot_id = $1 ORDER BY e.number, t.version`, id)
	if err != nil {
		return l, nil, err
	}
	acts, err := collectActs(rows)
	return l, acts, err
}

// LotActsOf loads the facts of transmissions (for checks before a lot is
// committed), in register order.
func (s *Store) LotActsOf(ctx context.Context, transmissionIDs []string) ([]LotAct, error) {
	rows, err := s.Pool.Query(ctx, actFacts+`WHERE t.id = ANY($1) ORDER BY e.number, t.version`, transmissionIDs)
	if err != nil {
		return nil, err
	}
	return collectActs(rows)
}

// SetLotMessage stores the message of a lot the first time it is built
// and returns the message stored: a later build (another worker, a
// resend) gets the first one, so every send of a lot is byte-identical.
func (s *Store) SetLotMessage(ctx context.Context, id string, msg []byte) ([]byte, error) {
	sum := sha256.Sum256(msg)
	if _, err := s.Pool.Exec(ctx, `UPDATE lots SET message = $2, message_sha256 = $3 WHERE id = $1 AND message IS NULL`,
		id, msg, hex.EncodeToString(sum[:])); err != nil {
		return nil, err
	}
	var stored []byte
	err := s.Pool.QueryRow(ctx, `SELECT message FROM lots WHERE id = $1`, id).Scan(&stored)
	return stored, err
}

// CreateLot commits a lot's act set: the lot row, its lot_acts and its
// transmissions' link, in one transaction, only for transmissions still
// unlotted and pending (a concurrent builder cannot put one act in two
// lots). then runs in the same transaction (to enqueue the send). It
// returns the lot id, or "" when none of the transmissions was still free.
func (s *Store) CreateLot(ctx context.Context, registry, connector, groupKey, commune string, transmissionIDs []string, then func(tx pgx.Tx, lotID string) error) (string, error) {
	lotID := uuid.NewString()
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO lots (id, idempotency_key, registry, connector, group_key, commune, acts) VALUES ($1, $2, $3, $4, $5, $6, 0)`,
			lotID, LotKey(lotID), registry, connector, groupKey, commune); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `WITH taken AS (
				UPDATE transmissions SET lot_id = $1, updated_at = now()
				WHERE id = ANY($2) AND lot_id IS NULL AND state = 'pending' RETURNING id)
			INSERT INTO lot_acts (lot_id, transmission_id) SELECT $1, id FROM taken`, lotID, transmissionIDs)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errNothingToLot
		}
		if _, err := tx.Exec(ctx, `UPDATE lots SET acts = $2 WHERE id = $1`, lotID, tag.RowsAffected()); err != nil {
			return err
		}
		if err := audit(ctx, tx, Event{Actor: System, Action: "lot.create",
			Data: map[string]any{"lot": lotID, "registry": registry, "group": groupKey, "acts": tag.RowsAffected()}}); err != nil {
			return err
		}
		if then != nil {
			return then(tx, lotID)
		}
		return nil
	})
	if errors.Is(err, errNothingToLot) {
		return "", nil
	}
	return lotID, err
}

var errNothingToLot = errors.New("aucune transmission libre pour ce lot")

// LotOutcome is what one send of a lot does to it and its transmissions.
type LotOutcome struct {
	State   string // the lot's new state, and its transmissions'
	Attempt Attempt
	AckID   string
	Reason  string
	// Refused: transmissions the registry named, with their own reason.
	Refused map[string]string
	// Released: transmissions of a refused lot that the registry did not
	// name. They leave the lot, pending, to go into a new one.
	Released []string
}

// RecordLotAttempt stores one attempt at sending a lot and moves the lot
// and every transmission still in it to o.State together, guarded by the
// lot's state being one of from; then runs in the same transaction.
func (s *Store) RecordLotAttempt(ctx context.Context, l Lot, from []string, o LotOutcome, then func(pgx.Tx) error) (bool, error) {
	moved := false
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		var err error
		if moved, err = lockedIn(ctx, tx, `SELECT state FROM lots WHERE id = $1 FOR UPDATE`, l.ID, from); err != nil || !moved {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE lots SET state = $2, attempts = attempts + 1, ack_id = coalesce(nullif($3, ''), ack_id),
				reason = nullif($4, ''), updated_at = now() WHERE id = $1`, l.ID, o.State, o.AckID, o.Reason); err != nil {
			return err
		}
		a := o.Attempt
		if _, err := tx.Exec(ctx, `INSERT INTO transmission_attempts (transmission_id, lot_id, outcome, http_status, error, duration_ms)
			SELECT id, $1, $2, $3, nullif($4, ''), $5 FROM transmissions WHERE lot_id = $1`,
			l.ID, a.Outcome, a.status(), a.Error, a.Duration.Milliseconds()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, moveTransmissions+` WHERE lot_id = $1`, l.ID, o.State, o.AckID, o.Reason); err != nil {
			return err
		}
		for id, why := range o.Refused {
			if _, err := tx.Exec(ctx, `UPDATE transmissions SET reason = $3 WHERE id = $1 AND lot_id = $2`, id, l.ID, why); err != nil {
				return err
			}
		}
		if len(o.Released) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE transmissions SET state = 'pending', lot_id = NULL, reason = NULL, updated_at = now()
				WHERE id = ANY($1) AND lot_id = $2`, o.Released, l.ID); err != nil {
				return err
			}
		}
		if err := audit(ctx, tx, Event{Actor: System, Action: "lot." + o.State,
			Data: map[string]any{"lot": l.ID, "registry": l.Registry, "outcome": a.Outcome, "ack_id": o.AckID, "reason": o.Reason,
				"refused": len(o.Refused), "released": len(o.Released)}}); err != nil {
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

// IndexFacts reads, in tx, an entry's index data as senders see it (no
// transmission fields), for checks made when the version is routed.
func IndexFacts(ctx context.Context, tx pgx.Tx, entryID string) (LotAct, error) {
	var a LotAct
	var persons []byte
	err := tx.QueryRow(ctx, `SELECT e.act_id, e.version, e.commune, e.year, e.kind, coalesce((e.index_data->>'sans_vie')::boolean, false),
			e.number, coalesce(e.index_data->>'act_date', ''), coalesce(e.index_data->>'event_date', ''), coalesce(e.index_data->'persons', '[]')
		FROM entries e WHERE e.id = $1`, entryID).
		Scan(&a.ActID, &a.Version, &a.Commune, &a.Year, &a.Kind, &a.SansVie, &a.Number, &a.ActDate, &a.EventDate, &persons)
	if err == nil {
		err = json.Unmarshal(persons, &a.Persons)
	}
	return a, err
}

// RefuseLocally refuses pending, unlotted transmissions that cannot be
// sent (the act lacks what the message needs), each with its French
// reason and an attempt "refused_locally": nothing was sent.
func (s *Store) RefuseLocally(ctx context.Context, reasons map[string]string) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		for id, why := range reasons {
			var act string
			err := tx.QueryRow(ctx, `UPDATE transmissions SET state = 'refused', reason = $2, updated_at = now()
				WHERE id = $1 AND state = 'pending' AND lot_id IS NULL RETURNING act_id::text`, id, why).Scan(&act)
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO transmission_attempts (transmission_id, outcome, error) VALUES ($1, 'refused_locally', $2)`, id, why); err != nil {
				return err
			}
			if err := audit(ctx, tx, Event{Actor: System, Action: "transmission.refused", ActID: act,
				Data: map[string]any{"transmission": id, "reason": why, "local": true}}); err != nil {
				return err
			}
		}
		return nil
	})
}
