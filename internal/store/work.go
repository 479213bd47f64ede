package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/model"
)

// Work is what a worker needs to process one entry.
type Work struct {
	EntryID       string
	BatchID       string
	HubID         string
	ActID         string
	State         model.State
	StagedKey     string
	Size          int64
	SHA256        string
	InfraFailures int
	Commune       string
	Year          int
	Kind          string
	Number        int
	Version       int
	SealedKey     string
	SealedSHA256  string
	SealedSize    int64
	ObjectKey     string
}

// Work loads an entry for a job.
func (s *Store) Work(ctx context.Context, entryID string) (Work, error) {
	var w Work
	err := s.Pool.QueryRow(ctx, `SELECT e.id, e.batch_id, b.hub_id, coalesce(e.act_id::text, ''), e.state, coalesce(e.staged_key, ''),
			coalesce(e.received_size, 0), coalesce(e.sha256, ''), e.infra_failures, coalesce(e.commune, ''), coalesce(e.year, 0),
			coalesce(e.kind, ''), coalesce(e.number, 0), coalesce(e.version, 0), coalesce(e.sealed_key, ''), coalesce(e.sealed_sha256, ''),
			coalesce(e.sealed_size, 0), coalesce(e.object_key, '')
		FROM entries e JOIN batches b ON b.id = e.batch_id WHERE e.id = $1`, entryID).Scan(
		&w.EntryID, &w.BatchID, &w.HubID, &w.ActID, &w.State, &w.StagedKey, &w.Size, &w.SHA256, &w.InfraFailures,
		&w.Commune, &w.Year, &w.Kind, &w.Number, &w.Version, &w.SealedKey, &w.SealedSHA256, &w.SealedSize, &w.ObjectKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, fmt.Errorf("entrée %s: %w", entryID, ErrNotFound)
	}
	return w, err
}

// Validation is what the PDF check found in a valid file.
type Validation struct {
	Pages   int
	Version string
	PDFA    string
}

// transition moves w's entry from one of from to to, under a row lock, and
// reports whether it did (false: another worker or a retry got there first).
func (s *Store) transition(ctx context.Context, w Work, from []model.State, fn func(tx pgx.Tx) error) (bool, error) {
	moved := false
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		var cur model.State
		if err := tx.QueryRow(ctx, `SELECT state FROM entries WHERE id = $1 FOR UPDATE`, w.EntryID).Scan(&cur); err != nil {
			return err
		}
		for _, f := range from {
			if cur == f {
				moved = true
				return fn(tx)
			}
		}
		return nil
	})
	return moved, err
}

// MarkValidated records a valid PDF. then runs in the same transaction
// (to enqueue the next step).
func (s *Store) MarkValidated(ctx context.Context, w Work, v Validation, then func(pgx.Tx) error) (bool, error) {
	return s.advance(ctx, w, model.StateReceived, model.StateValidated,
		`UPDATE entries SET pages = $2, pdf_version = $3, pdfa = nullif($4, ''), infra_failures = 0, waiting = NULL WHERE id = $1`,
		[]any{v.Pages, v.Version, v.PDFA}, then)
}

// advance moves w's entry from one state to the next, guarded by from:
// it runs update (the entry id is $1, args follow), records the new
// state, then runs then, all in one transaction. It reports false when
// the entry had already moved on.
func (s *Store) advance(ctx context.Context, w Work, from, to model.State, update string, args []any, then func(pgx.Tx) error) (bool, error) {
	return s.transition(ctx, w, []model.State{from}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, update, append([]any{w.EntryID}, args...)...); err != nil {
			return err
		}
		if err := setState(ctx, tx, System, w.EntryID, w.BatchID, w.ActID, to, nil, ""); err != nil {
			return err
		}
		if then != nil {
			return then(tx)
		}
		return nil
	})
}

// MarkRejected ends an entry rejected with rej.
func (s *Store) MarkRejected(ctx context.Context, w Work, from model.State, rej *model.Rejection) (bool, error) {
	return s.transition(ctx, w, []model.State{from}, func(tx pgx.Tx) error {
		return setState(ctx, tx, System, w.EntryID, w.BatchID, w.ActID, model.StateRejected, rej, "")
	})
}

// MarkWaiting records an infrastructure failure: the entry keeps its state
// with waiting set to cause. Once failures exceed budget it becomes
// stalled. It returns the failure count and whether the entry stalled.
func (s *Store) MarkWaiting(ctx context.Context, w Work, from model.State, cause string, budget int) (int, bool, error) {
	var n int
	stalled := false
	_, err := s.transition(ctx, w, []model.State{from}, func(tx pgx.Tx) error {
		var prev *string
		err := tx.QueryRow(ctx, `UPDATE entries e SET infra_failures = infra_failures + 1, waiting = $2, updated_at = now()
			FROM (SELECT waiting FROM entries WHERE id = $1) old WHERE e.id = $1 RETURNING e.infra_failures, old.waiting`, w.EntryID, cause).Scan(&n, &prev)
		if err != nil {
			return err
		}
		if n > budget {
			stalled = true
			return setState(ctx, tx, System, w.EntryID, w.BatchID, w.ActID, model.StateStalled, nil, cause)
		}
		if prev == nil || *prev != cause {
			return recordState(ctx, tx, System, w.EntryID, w.BatchID, w.ActID, from, nil, cause)
		}
		return nil
	})
	return n, stalled, err
}

// ClearWaiting clears waiting once the dependency answers again.
func (s *Store) ClearWaiting(ctx context.Context, entryID string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE entries SET waiting = NULL WHERE id = $1 AND waiting IS NOT NULL`, entryID)
	return err
}

// RetryStalled moves stalled entries (all, or those of ids, which may be
// entry or act ids) back to the step they stalled in and calls enqueue for
// each in the same transaction. Entries in scope only.
func (s *Store) RetryStalled(ctx context.Context, actor Actor, sc Scope, ids []string, enqueue func(tx pgx.Tx, entryID string, state model.State) error) ([]string, error) {
	var done []string
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT e.id, e.batch_id, coalesce(e.act_id::text, ''),
				(SELECT h.state FROM entry_history h WHERE h.entry_id = e.id AND h.state <> 'stalled' ORDER BY h.id DESC LIMIT 1)
			FROM entries e JOIN acts a ON a.id = e.act_id JOIN batches b ON b.id = e.batch_id
			WHERE e.state = 'stalled' AND e.is_version
			  AND (cardinality($1::text[]) = 0 OR e.id::text = ANY($1) OR e.act_id::text = ANY($1))
			  AND ($2::text[] IS NULL OR a.commune_chain && $2)
			  AND ($3 = '' OR b.hub_id = $3)
			ORDER BY e.created_at FOR UPDATE OF e`, ids, sc.communeFilter(), sc.HubID)
		if err != nil {
			return err
		}
		type row struct {
			id, batch, act string
			prev           model.State
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.id, &x.batch, &x.act, &x.prev)
			return x, err
		})
		if err != nil {
			return err
		}
		for _, x := range list {
			if _, err := tx.Exec(ctx, `UPDATE entries SET infra_failures = 0 WHERE id = $1`, x.id); err != nil {
				return err
			}
			if err := setState(ctx, tx, actor, x.id, x.batch, x.act, x.prev, nil, ""); err != nil {
				return err
			}
			if err := enqueue(tx, x.id, x.prev); err != nil {
				return err
			}
			done = append(done, x.id)
		}
		return nil
	})
	return done, err
}

// Orphans lists entries left in a working state (received, validated,
// sealed) for longer than idle with no River job that would move them:
// after an upgrade that added a step, or a job lost by an operator. The
// caller re-enqueues them.
func (s *Store) Orphans(ctx context.Context, idle time.Duration, limit int) ([]Work, error) {
	rows, err := s.Pool.Query(ctx, `SELECT e.id FROM entries e
		WHERE e.state IN ('received', 'validated', 'sealed') AND e.is_version AND e.matched_entry IS NULL
		  AND e.updated_at < now() - make_interval(secs => $1)
		  AND NOT EXISTS (SELECT 1 FROM river_job j
			WHERE j.args @> jsonb_build_object('entry_id', e.id::text)
			  AND j.state IN ('available', 'running', 'retryable', 'scheduled', 'pending'))
		ORDER BY e.updated_at LIMIT $2`, idle.Seconds(), limit)
	return s.works(ctx, rows, err)
}

// works loads the Work of each entry id that rows yield.
func (s *Store) works(ctx context.Context, rows pgx.Rows, err error) ([]Work, error) {
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := make([]Work, 0, len(ids))
	for _, id := range ids {
		w, err := s.Work(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}
