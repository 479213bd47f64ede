package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Routed is what routing needs of an archived version.
type Routed struct {
	Kind           string
	SansVie        bool
	CommuneChain   []string
	Flow           string
	Year           int
	Version        int
	RevisionReason string
}

// RoutingFacts reads, in tx, what routing needs of an entry.
func RoutingFacts(ctx context.Context, tx pgx.Tx, entryID string) (Routed, error) {
	var r Routed
	var sansVie *bool
	err := tx.QueryRow(ctx, `SELECT e.kind, (e.index_data->>'sans_vie')::boolean, a.commune_chain, coalesce(e.flow, 'reprise'), e.year, e.version,
			coalesce(e.revision_reason, '')
		FROM entries e JOIN acts a ON a.id = e.act_id WHERE e.id = $1`, entryID).
		Scan(&r.Kind, &sansVie, &r.CommuneChain, &r.Flow, &r.Year, &r.Version, &r.RevisionReason)
	r.SansVie = sansVie != nil && *sansVie
	return r, err
}

// TransmissionKey is the idempotency key of an act version's message to a
// registry: the same for every resend, different for anything else.
func TransmissionKey(registry, actID string, version int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "etatcivil-transmission-v1\n%s\n%s\n%d", registry, actID, version))
	return hex.EncodeToString(sum[:])
}

// Target is a registry a version is routed to.
type Target struct {
	Registry  string
	Connector string
	// Refusal, when set, refuses the transmission at once, locally: the
	// act lacks what this registry's message needs (a French message
	// saying what). Nothing is sent; the refusal is visible like a
	// registry's.
	Refusal string
}

// CreateTransmissions records, in tx (the archiving transaction), a
// pending transmission of the entry to each target (refused at once for a
// target with a Refusal). Creating one twice changes nothing. It returns
// the ids of the pending transmissions created.
func CreateTransmissions(ctx context.Context, tx pgx.Tx, w Work, targets []Target) ([]string, error) {
	var ids []string
	for _, t := range targets {
		id := uuid.NewString()
		state := "pending"
		if t.Refusal != "" {
			state = "refused"
		}
		tag, err := tx.Exec(ctx, `INSERT INTO transmissions (id, registry, connector, act_id, entry_id, version, idempotency_key, state, reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, nullif($9, '')) ON CONFLICT DO NOTHING`,
			id, t.Registry, t.Connector, w.ActID, w.EntryID, w.Version, TransmissionKey(t.Registry, w.ActID, w.Version), state, t.Refusal)
		if err != nil {
			return nil, fmt.Errorf("transmission vers %s: %w", t.Registry, err)
		}
		if tag.RowsAffected() == 0 {
			continue
		}
		if err := audit(ctx, tx, Event{Actor: System, Action: "transmission.create", ActID: w.ActID, EntryID: w.EntryID,
			Data: map[string]any{"registry": t.Registry, "version": w.Version, "state": state, "reason": t.Refusal}}); err != nil {
			return nil, err
		}
		if t.Refusal != "" {
			if _, err := tx.Exec(ctx, `INSERT INTO transmission_attempts (transmission_id, outcome, error) VALUES ($1, 'refused_locally', $2)`,
				id, t.Refusal); err != nil {
				return nil, err
			}
			continue
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// TransmissionView is one transmission in an act's JSON, with every
// attempt.
type TransmissionView struct {
	ID        string        `json:"id"`
	Registry  string        `json:"registry"`
	Version   int           `json:"version"`
	State     string        `json:"state"`
	Attempts  int           `json:"attempts"`
	AckID     *string       `json:"ack_id"`
	Reason    *string       `json:"reason"`
	Lot       *string       `json:"lot"`
	SentAt    *time.Time    `json:"sent_at"`
	AckedAt   *time.Time    `json:"acked_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	History   []AttemptView `json:"history"`
}

// AttemptView is one attempt at sending a transmission, as kept.
type AttemptView struct {
	At         time.Time `json:"at"`
	Outcome    string    `json:"outcome"` // acknowledged, sent, refused, refused_locally, failed
	HTTPStatus *int      `json:"http_status"`
	Error      *string   `json:"error"`
	DurationMS *int      `json:"duration_ms"`
	Lot        *string   `json:"lot"`
}

// actTransmissions lists an act's transmissions, each with its attempts.
func (s *Store) actTransmissions(ctx context.Context, actID string) ([]TransmissionView, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, registry, version, state, attempts, ack_id, reason, lot_id::text, sent_at, acked_at, updated_at
		FROM transmissions WHERE act_id = $1 ORDER BY version, registry`, actID)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TransmissionView, error) {
		var v TransmissionView
		err := r.Scan(&v.ID, &v.Registry, &v.Version, &v.State, &v.Attempts, &v.AckID, &v.Reason, &v.Lot, &v.SentAt, &v.AckedAt, &v.UpdatedAt)
		v.History = []AttemptView{}
		return v, err
	})
	if err != nil || len(list) == 0 {
		return list, err
	}
	index := map[string]int{}
	ids := make([]string, len(list))
	for i, v := range list {
		index[v.ID], ids[i] = i, v.ID
	}
	rows, err = s.Pool.Query(ctx, `SELECT transmission_id::text, at, outcome, http_status, error, duration_ms, lot_id::text
		FROM transmission_attempts WHERE transmission_id::text = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return nil, err
	}
	var tid string
	var a AttemptView
	_, err = pgx.ForEachRow(rows, []any{&tid, &a.At, &a.Outcome, &a.HTTPStatus, &a.Error, &a.DurationMS, &a.Lot}, func() error {
		i := index[tid]
		list[i].History = append(list[i].History, a)
		a = AttemptView{} // the next row's pointers must not alias this one's
		return nil
	})
	return list, err
}

// Transmission is what a sender needs.
type Transmission struct {
	ID           string
	Registry     string
	Connector    string
	ActID        string
	EntryID      string
	Version      int
	Key          string
	State        string
	Attempts     int
	Commune      string
	Year         int
	Kind         string
	Number       int
	SealedSHA256 string
	ObjectKey    string
	ArchivedAt   time.Time
}

// Transmission loads one transmission with its act's facts.
func (s *Store) Transmission(ctx context.Context, id string) (Transmission, error) {
	var t Transmission
	err := s.Pool.QueryRow(ctx, `SELECT t.id, t.registry, t.connector, t.act_id, t.entry_id, t.version, t.idempotency_key, t.state, t.attempts,
			e.commune, e.year, e.kind, e.number, e.sealed_sha256, e.object_key, e.archived_at
		FROM transmissions t JOIN entries e ON e.id = t.entry_id WHERE t.id = $1`, id).
		Scan(&t.ID, &t.Registry, &t.Connector, &t.ActID, &t.EntryID, &t.Version, &t.Key, &t.State, &t.Attempts,
			&t.Commune, &t.Year, &t.Kind, &t.Number, &t.SealedSHA256, &t.ObjectKey, &t.ArchivedAt)
	if err == pgx.ErrNoRows {
		return t, fmt.Errorf("transmission %s: %w", id, ErrNotFound)
	}
	return t, err
}

// Attempt is one try at sending a transmission.
type Attempt struct {
	Outcome    string // acknowledged, sent, refused, failed
	HTTPStatus int
	Error      string
	Duration   time.Duration
}

// moveTransmissions records an attempt's outcome on transmissions ($2
// state, $3 ack id, $4 reason); the caller adds which ones ($1).
const moveTransmissions = `UPDATE transmissions SET state = $2, attempts = attempts + 1, ack_id = coalesce(nullif($3, ''), ack_id),
		reason = nullif($4, ''), updated_at = now(),
		sent_at = CASE WHEN $2 IN ('sent', 'acknowledged') AND sent_at IS NULL THEN now() ELSE sent_at END,
		acked_at = CASE WHEN $2 = 'acknowledged' THEN now() ELSE acked_at END`

// status is the attempt's HTTP status for the database, NULL if none.
func (a Attempt) status() any {
	if a.HTTPStatus == 0 {
		return nil
	}
	return a.HTTPStatus
}

// lockedIn locks the row that query (with id as $1) selects the state of,
// and reports whether that state is one of from.
func lockedIn(ctx context.Context, tx pgx.Tx, query, id string, from []string) (bool, error) {
	var cur string
	if err := tx.QueryRow(ctx, query, id).Scan(&cur); err != nil {
		return false, err
	}
	return slices.Contains(from, cur), nil
}

// RecordAttempt stores an attempt and moves the transmission to state
// (with ack id or reason), guarded by its state being one of from; then
// runs in the same transaction. It reports false when the transmission
// had already moved on (another sender got there).
func (s *Store) RecordAttempt(ctx context.Context, t Transmission, from []string, state string, a Attempt, ackID, reason string, then func(pgx.Tx) error) (bool, error) {
	moved := false
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		var err error
		if moved, err = lockedIn(ctx, tx, `SELECT state FROM transmissions WHERE id = $1 FOR UPDATE`, t.ID, from); err != nil || !moved {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO transmission_attempts (transmission_id, outcome, http_status, error, duration_ms) VALUES ($1, $2, $3, nullif($4, ''), $5)`,
			t.ID, a.Outcome, a.status(), a.Error, a.Duration.Milliseconds()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, moveTransmissions+` WHERE id = $1`, t.ID, state, ackID, reason); err != nil {
			return err
		}
		if err := audit(ctx, tx, Event{Actor: System, Action: "transmission." + state, ActID: t.ActID, EntryID: t.EntryID,
			Data: map[string]any{"registry": t.Registry, "version": t.Version, "outcome": a.Outcome, "ack_id": ackID, "reason": reason}}); err != nil {
			return err
		}
		if then != nil {
			return then(tx)
		}
		return nil
	})
	return moved, err
}

// MarkOverdue moves a sent transmission whose acknowledgement did not
// come to overdue (it will be sent again under the same key).
func (s *Store) MarkOverdue(ctx context.Context, id string) (bool, error) {
	tag, err := s.Pool.Exec(ctx, `UPDATE transmissions SET state = 'overdue', updated_at = now() WHERE id = $1 AND state = 'sent'`, id)
	return tag.RowsAffected() == 1, err
}

// TransmissionItem is one transmission in a list.
type TransmissionItem struct {
	ID        string    `json:"id"`
	ActID     string    `json:"act_id"`
	Version   int       `json:"version"`
	Registry  string    `json:"registry"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	AckID     *string   `json:"ack_id"`
	Reason    *string   `json:"reason"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TransmissionFilter selects transmissions.
type TransmissionFilter struct {
	IDs      []string
	Registry string
	State    string
	Limit    int
}

const transmissionScope = `FROM transmissions t JOIN acts a ON a.id = t.act_id JOIN entries e ON e.id = t.entry_id JOIN batches b ON b.id = e.batch_id
	WHERE ($1::text[] IS NULL OR a.commune_chain && $1) AND ($2 = '' OR b.hub_id = $2)
	  AND ($3 = '' OR t.registry = $3) AND ($4 = '' OR t.state = $4) AND (cardinality($5::text[]) = 0 OR t.id::text = ANY($5))`

// Transmissions lists transmissions in scope, oldest change first.
func (s *Store) Transmissions(ctx context.Context, sc Scope, f TransmissionFilter) ([]TransmissionItem, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	ids := f.IDs
	if ids == nil {
		ids = []string{}
	}
	rows, err := s.Pool.Query(ctx, `SELECT t.id, t.act_id, t.version, t.registry, t.state, t.attempts, t.ack_id, t.reason, t.updated_at `+
		transmissionScope+` ORDER BY t.updated_at, t.id LIMIT $6`, sc.communeFilter(), sc.HubID, f.Registry, f.State, ids, f.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[TransmissionItem])
}

// Redrive enqueues, in the retry's transaction, what re-sends
// transmissions: a per-act send, a lot's send under its same key, or new
// lots for transmissions that left theirs.
type Redrive struct {
	Send    func(tx pgx.Tx, transmissionID string) error
	SendLot func(tx pgx.Tx, lotID string) error
	Rebuild func(tx pgx.Tx, registry string, transmissionIDs []string) error
}

// RetryTransmissions re-drives transmissions in scope that are dead,
// refused, overdue or retrying, with a fresh budget (their attempts stay
// in transmission_attempts), in one transaction:
//   - a per-act transmission goes back to pending and is sent again;
//   - a lot that was not refused (dead, overdue, retrying) is sent again,
//     whole, under its same key: the registry may have taken it without
//     our knowing, and only the same key lets it say so rather than take
//     it twice. Every transmission of the lot goes back to pending;
//   - a refused transmission of a lot leaves it (the registry took
//     nothing) and goes into a new lot, without the acts not re-driven.
func (s *Store) RetryTransmissions(ctx context.Context, actor Actor, sc Scope, f TransmissionFilter, r Redrive) ([]string, error) {
	var done []string
	ids := f.IDs
	if ids == nil {
		ids = []string{}
	}
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		// Lots before transmissions, in the order the senders lock them
		// (RecordLotAttempt, MarkLotOverdue): no deadlock with a send.
		if _, err := tx.Exec(ctx, `SELECT l.id FROM lots l WHERE l.id IN (SELECT t.lot_id `+transmissionScope+`
			AND t.state IN ('dead', 'refused', 'overdue', 'retrying')) ORDER BY l.id FOR UPDATE OF l`,
			sc.communeFilter(), sc.HubID, f.Registry, f.State, ids); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT t.id, t.connector, t.act_id, t.registry, t.state, coalesce(t.lot_id::text, '') `+transmissionScope+`
			AND t.state IN ('dead', 'refused', 'overdue', 'retrying')
			ORDER BY t.updated_at FOR UPDATE OF t`, sc.communeFilter(), sc.HubID, f.Registry, f.State, ids)
		if err != nil {
			return err
		}
		type row struct{ id, connector, act, registry, state, lot string }
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.id, &x.connector, &x.act, &x.registry, &x.state, &x.lot)
			return x, err
		})
		if err != nil {
			return err
		}
		rebuild := map[string][]string{}
		var registries, lots []string
		for _, x := range list {
			switch {
			case x.connector == "http":
				if _, err := tx.Exec(ctx, `UPDATE transmissions SET state = 'pending', attempts = 0, reason = NULL, updated_at = now() WHERE id = $1`, x.id); err != nil {
					return err
				}
				if err := r.Send(tx, x.id); err != nil {
					return err
				}
			case x.lot != "" && x.state != "refused":
				if !slices.Contains(lots, x.lot) {
					lots = append(lots, x.lot)
				}
			default:
				if _, err := tx.Exec(ctx, `UPDATE transmissions SET state = 'pending', attempts = 0, reason = NULL, lot_id = NULL, updated_at = now() WHERE id = $1`, x.id); err != nil {
					return err
				}
				if rebuild[x.registry] == nil {
					registries = append(registries, x.registry)
				}
				rebuild[x.registry] = append(rebuild[x.registry], x.id)
			}
			if err := audit(ctx, tx, Event{Actor: actor, Action: "transmission.retry", ActID: x.act,
				Data: map[string]any{"transmission": x.id, "registry": x.registry, "from": x.state, "lot": x.lot}}); err != nil {
				return err
			}
			done = append(done, x.id)
		}
		for _, lot := range lots {
			tag, err := tx.Exec(ctx, `UPDATE lots SET state = 'pending', attempts = 0, reason = NULL, updated_at = now()
				WHERE id = $1 AND state IN ('dead', 'overdue', 'retrying')`, lot)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				continue // the lot moved on meanwhile (acknowledged at last)
			}
			if _, err := tx.Exec(ctx, `UPDATE transmissions SET state = 'pending', attempts = 0, reason = NULL, updated_at = now() WHERE lot_id = $1`, lot); err != nil {
				return err
			}
			if err := r.SendLot(tx, lot); err != nil {
				return err
			}
		}
		for _, reg := range registries {
			if err := r.Rebuild(tx, reg, rebuild[reg]); err != nil {
				return err
			}
		}
		return nil
	})
	return done, err
}

// Unlotted is a transmission of a lot-based connector waiting for its lot.
type Unlotted struct {
	ID         string
	Registry   string
	Connector  string
	Commune    string
	Year       int
	Kind       string
	SansVie    bool
	Number     int
	ArchivedAt time.Time
}

// Unlotted lists transmissions of registry not yet in a lot (only those
// of ids, if any).
func (s *Store) Unlotted(ctx context.Context, registry string, ids []string, limit int) ([]Unlotted, error) {
	if ids == nil {
		ids = []string{}
	}
	rows, err := s.Pool.Query(ctx, `SELECT t.id, t.registry, t.connector, e.commune, e.year, e.kind,
			coalesce((e.index_data->>'sans_vie')::boolean, false), e.number, e.archived_at
		FROM transmissions t JOIN entries e ON e.id = t.entry_id
		WHERE t.registry = $1 AND t.lot_id IS NULL AND t.connector <> 'http' AND t.state = 'pending'
		  AND (cardinality($3::text[]) = 0 OR t.id::text = ANY($3))
		ORDER BY e.commune, e.year, e.kind, e.number LIMIT $2`, registry, limit, ids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Unlotted])
}

// ArchivedWithout lists archived versions with no transmission to
// registry yet, in entry id order after after (for backfill, page by page).
func (s *Store) ArchivedWithout(ctx context.Context, registry, after string, limit int) ([]Work, error) {
	rows, err := s.Pool.Query(ctx, `SELECT e.id, e.act_id, e.version FROM entries e
		WHERE e.is_version AND e.state = 'archived' AND e.id::text > $2
		  AND NOT EXISTS (SELECT 1 FROM transmissions t WHERE t.entry_id = e.id AND t.registry = $1)
		ORDER BY e.id::text LIMIT $3`, registry, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Work, error) {
		var w Work
		err := r.Scan(&w.EntryID, &w.ActID, &w.Version)
		return w, err
	})
}

// AuditSystem records an event by actor outside any other change.
func (s *Store) AuditSystem(ctx context.Context, actor Actor, action string, data map[string]any) error {
	return s.Transact(ctx, func(tx pgx.Tx) error { return audit(ctx, tx, Event{Actor: actor, Action: action, Data: data}) })
}

// RegistryStats is where one registry's transmissions stand, in scope.
type RegistryStats struct {
	Registry string         `json:"registry"`
	States   map[string]int `json:"states"`
	// OldestPending is the oldest change among transmissions still owed
	// (neither acknowledged, refused nor dead); nil if none.
	OldestPending *time.Time `json:"oldest_pending"`
	// Overdue lists the transmissions whose acknowledgement is late,
	// oldest first (at most 100).
	Overdue []TransmissionItem `json:"overdue"`
}

// RegistriesStats gives, per registry, the counts of transmissions in
// scope by state, the oldest still owed and the overdue list.
func (s *Store) RegistriesStats(ctx context.Context, sc Scope) ([]RegistryStats, error) {
	rows, err := s.Pool.Query(ctx, `SELECT t.registry, t.state, count(*),
			min(t.updated_at) FILTER (WHERE t.state NOT IN ('acknowledged', 'refused', 'dead')) `+
		transmissionScope+` GROUP BY t.registry, t.state ORDER BY t.registry, t.state`, sc.communeFilter(), sc.HubID, "", "", []string{})
	if err != nil {
		return nil, err
	}
	var out []RegistryStats
	index := map[string]int{}
	var reg, state string
	var n int
	var oldest *time.Time
	_, err = pgx.ForEachRow(rows, []any{&reg, &state, &n, &oldest}, func() error {
		i, ok := index[reg]
		if !ok {
			i = len(out)
			index[reg] = i
			out = append(out, RegistryStats{Registry: reg, States: map[string]int{}, Overdue: []TransmissionItem{}})
		}
		out[i].States[state] = n
		if oldest != nil && (out[i].OldestPending == nil || oldest.Before(*out[i].OldestPending)) {
			t := *oldest
			out[i].OldestPending = &t
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].States["overdue"] == 0 {
			continue
		}
		list, err := s.Transmissions(ctx, sc, TransmissionFilter{Registry: out[i].Registry, State: "overdue", Limit: 100})
		if err != nil {
			return nil, err
		}
		out[i].Overdue = list
	}
	return out, nil
}

// Depth is the number of transmissions per registry and state, for the
// queue-depth gauges (every tenant).
func (s *Store) Depth(ctx context.Context) (map[[2]string]int, error) {
	rows, err := s.Pool.Query(ctx, `SELECT registry, state, count(*) FROM transmissions GROUP BY registry, state`)
	if err != nil {
		return nil, err
	}
	out := map[[2]string]int{}
	var reg, state string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&reg, &state, &n}, func() error {
		out[[2]string{reg, state}] = n
		return nil
	})
	return out, err
}
