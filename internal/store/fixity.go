package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// FixityTarget is one archived object version a fixity audit re-reads.
type FixityTarget struct {
	EntryID   string
	ActID     string
	Version   int
	Key       string
	VersionID string
	SHA256    string
	Size      int64
}

// ArchivedVersionCount counts the archived object versions (the size of a
// full fixity pass).
func (s *Store) ArchivedVersionCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM entries WHERE is_version AND state = 'archived'`).Scan(&n)
	return n, err
}

// FixityDue returns the n archived versions checked longest ago (never
// checked first) and last checked before notAfter.
func (s *Store) FixityDue(ctx context.Context, n int, notAfter time.Time) ([]FixityTarget, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id::text, act_id::text, version, object_key, version_id, sealed_sha256, sealed_size
		FROM entries WHERE is_version AND state = 'archived' AND (fixity_at IS NULL OR fixity_at < $2)
		ORDER BY fixity_at NULLS FIRST, id LIMIT $1`, n, notAfter)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[FixityTarget])
}

// FixityResult is the verdict of one check: "ok", "missing" or "altered".
type FixityResult struct {
	Outcome string
	Size    int64
	SHA256  string
	Detail  string
}

// RecordFixity keeps one check and flags the version with its outcome; a
// missing or altered object is also an audit event on its act.
func (s *Store) RecordFixity(ctx context.Context, t FixityTarget, r FixityResult) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		var size, sum any
		if r.Outcome != "missing" {
			size, sum = r.Size, r.SHA256
		}
		if _, err := tx.Exec(ctx, `INSERT INTO fixity_checks (entry_id, outcome, size, sha256, detail) VALUES ($1, $2, $3, $4, $5)`,
			t.EntryID, r.Outcome, size, sum, r.Detail); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE entries SET fixity_at = now(), fixity_outcome = $2 WHERE id = $1`, t.EntryID, r.Outcome); err != nil {
			return err
		}
		if r.Outcome == "ok" {
			return nil
		}
		return audit(ctx, tx, Event{Actor: System, Action: "fixity.failed", ActID: t.ActID, EntryID: t.EntryID,
			Data: map[string]any{"version": t.Version, "outcome": r.Outcome, "key": t.Key, "version_id": t.VersionID, "detail": r.Detail}})
	})
}

// FixityProblem is an archived version whose last fixity check failed.
type FixityProblem struct {
	ActID     string    `json:"act_id"`
	Commune   string    `json:"commune"`
	Year      int       `json:"year"`
	Kind      string    `json:"kind"`
	Number    int       `json:"number"`
	Version   int       `json:"version"`
	Key       string    `json:"key"`
	VersionID string    `json:"version_id"`
	Outcome   string    `json:"outcome"`
	Detail    string    `json:"detail"`
	At        time.Time `json:"at"`
}

// FixityReport sums up the fixity audits: how many archived versions,
// how many checked within the period, the verdicts, and every version
// whose last check failed.
type FixityReport struct {
	Versions      int64           `json:"versions"`
	CheckedWithin int64           `json:"checked_within_period"`
	Period        string          `json:"period"`
	NeverChecked  int64           `json:"never_checked"`
	OK            int64           `json:"ok"`
	Missing       int64           `json:"missing"`
	Altered       int64           `json:"altered"`
	LastCheck     *time.Time      `json:"last_check"`
	Problems      []FixityProblem `json:"problems"`
}

// Fixity returns the fixity report, period being a full pass's length.
func (s *Store) Fixity(ctx context.Context, period time.Duration) (FixityReport, error) {
	r := FixityReport{Period: period.String(), Problems: []FixityProblem{}}
	err := s.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE fixity_at >= now() - $1::interval),
			count(*) FILTER (WHERE fixity_at IS NULL), count(*) FILTER (WHERE fixity_outcome = 'ok'),
			count(*) FILTER (WHERE fixity_outcome = 'missing'), count(*) FILTER (WHERE fixity_outcome = 'altered'), max(fixity_at)
		FROM entries WHERE is_version AND state = 'archived'`, period).
		Scan(&r.Versions, &r.CheckedWithin, &r.NeverChecked, &r.OK, &r.Missing, &r.Altered, &r.LastCheck)
	if err != nil {
		return r, err
	}
	rows, err := s.Pool.Query(ctx, `SELECT a.id::text, a.commune, a.year, a.kind, a.number, e.version, e.object_key, e.version_id,
			e.fixity_outcome, coalesce(c.detail, ''), e.fixity_at
		FROM entries e JOIN acts a ON a.id = e.act_id
		LEFT JOIN LATERAL (SELECT detail FROM fixity_checks f WHERE f.entry_id = e.id ORDER BY f.at DESC LIMIT 1) c ON true
		WHERE e.is_version AND e.state = 'archived' AND e.fixity_outcome IS NOT NULL AND e.fixity_outcome <> 'ok'
		ORDER BY e.fixity_at DESC LIMIT 1000`)
	if err != nil {
		return r, err
	}
	r.Problems, err = pgx.CollectRows(rows, pgx.RowToStructByPos[FixityProblem])
	return r, err
}

// FixityCounts are the archived versions by last fixity verdict ("ok",
// "missing", "altered", "unchecked") and the last check's time, for the
// metrics: every process reports the ledger's figures.
func (s *Store) FixityCounts(ctx context.Context) (map[string]int64, *time.Time, error) {
	rows, err := s.Pool.Query(ctx, `SELECT coalesce(fixity_outcome, 'unchecked'), count(*), max(fixity_at)
		FROM entries WHERE is_version AND state = 'archived' GROUP BY 1`)
	if err != nil {
		return nil, nil, err
	}
	counts := map[string]int64{"ok": 0, "missing": 0, "altered": 0, "unchecked": 0}
	var last *time.Time
	var outcome string
	var n int64
	var at *time.Time
	_, err = pgx.ForEachRow(rows, []any{&outcome, &n, &at}, func() error {
		counts[outcome] = n
		if at != nil && (last == nil || at.After(*last)) {
			t := *at
			last = &t
		}
		return nil
	})
	return counts, last, err
}

// Pending counts the entries waiting on infrastructure (waiting set) and
// the stalled ones, each by state or cause (for /metrics).
func (s *Store) Pending(ctx context.Context) (waiting map[string]int64, stalled int64, err error) {
	rows, err := s.Pool.Query(ctx, `SELECT waiting, count(*) FROM entries WHERE waiting IS NOT NULL GROUP BY 1`)
	if err != nil {
		return nil, 0, err
	}
	waiting = map[string]int64{}
	var cause string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&cause, &n}, func() error { waiting[cause] = n; return nil }); err != nil {
		return nil, 0, err
	}
	err = s.Pool.QueryRow(ctx, `SELECT count(*) FROM entries WHERE state = 'stalled'`).Scan(&stalled)
	return waiting, stalled, err
}

// QueueDepth counts River's jobs not yet done, by kind and state; the
// pipeline's kinds are always there (0 rather than absent).
func (s *Store) QueueDepth(ctx context.Context) (map[[2]string]int64, error) {
	rows, err := s.Pool.Query(ctx, `SELECT kind, state::text, count(*) FROM river_job
		WHERE state IN ('available', 'scheduled', 'retryable', 'running', 'pending') GROUP BY 1, 2`)
	if err != nil {
		return nil, err
	}
	out := map[[2]string]int64{}
	for _, k := range []string{"validate", "seal", "archive", "send", "send_lot"} {
		for _, st := range []string{"available", "running", "retryable", "scheduled"} {
			out[[2]string{k, st}] = 0
		}
	}
	var kind, state string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&kind, &state, &n}, func() error { out[[2]string{kind, state}] = n; return nil })
	return out, err
}
