package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// RetimestampTarget is an act's current archived version a
// re-timestamping campaign looks at.
type RetimestampTarget struct {
	EntryID   string
	ActID     string
	HubID     string
	Commune   string
	Year      int
	Kind      string
	Number    int
	Version   int
	Key       string
	VersionID string
	SHA256    string // sealed
	Size      int64  // sealed
	Level     string
	ExpiresAt *time.Time
}

// RetimestampDue returns up to n acts' current archived versions sealed
// with a timestamp whose TSA certificate expires before notAfter, or not
// looked at yet (first), oldest expiry first.
func (s *Store) RetimestampDue(ctx context.Context, n int, notAfter time.Time) ([]RetimestampTarget, error) {
	rows, err := s.Pool.Query(ctx, `SELECT e.id::text, e.act_id::text, b.hub_id, a.commune, a.year, a.kind, a.number, e.version,
			e.object_key, e.version_id, e.sealed_sha256, e.sealed_size, coalesce(e.seal_level, 'B-T'), e.ts_expires_at
		FROM entries e JOIN acts a ON a.id = e.act_id JOIN batches b ON b.id = e.batch_id
		WHERE e.is_version AND e.state = 'archived' AND e.seal_level IS DISTINCT FROM 'B-B'
		  AND (e.ts_expires_at IS NULL OR e.ts_expires_at < $2)
		  AND NOT EXISTS (SELECT 1 FROM entries x WHERE x.act_id = e.act_id AND x.is_version AND x.state <> 'rejected' AND x.version > e.version)
		ORDER BY e.ts_expires_at NULLS FIRST, e.id LIMIT $1`, n, notAfter)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[RetimestampTarget])
}

// SetTimestampExpiry records when the certificate of the TSA of a
// version's newest timestamp expires.
func (s *Store) SetTimestampExpiry(ctx context.Context, entryID string, at time.Time) error {
	_, err := s.Pool.Exec(ctx, `UPDATE entries SET ts_expires_at = $2 WHERE id = $1`, entryID, at)
	return err
}

// Retimestamped is a re-timestamped version as archived.
type Retimestamped struct {
	Key, VersionID, SHA256 string
	Size                   int64
	RetainUntil            time.Time
	ExpiresAt              time.Time
}

// AddRetimestampedVersion records a re-timestamped object as the act's
// next version, archived, revision_reason "retimestamp" (the system's
// reason: nothing is sent to the registries for it), in the hub's system
// batch of the day, with an audit event. It returns the new version, or
// ErrConflict if the act got another version meanwhile.
func (s *Store) AddRetimestampedVersion(ctx context.Context, t RetimestampTarget, r Retimestamped) (int, error) {
	var version int
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		var latest int
		if err := tx.QueryRow(ctx, `SELECT max(version) FROM entries WHERE act_id = $1 AND is_version AND state <> 'rejected'`,
			t.ActID).Scan(&latest); err != nil {
			return err
		}
		if latest != t.Version {
			return fmt.Errorf("acte %s : version %d, plus la %d : %w", t.ActID, latest, t.Version, ErrConflict)
		}
		version = latest + 1
		day := time.Now().UTC().Format(time.DateOnly)
		var batchID string
		err := tx.QueryRow(ctx, `INSERT INTO batches (id, hub_id, idempotency_key, format, manifest_sha256, entry_count, created_by, submitted_at, system)
			VALUES ($1, $2, $3, 'json', '', 0, 'système (ré-horodatage)', now(), true)
			ON CONFLICT (hub_id, idempotency_key) DO UPDATE SET entry_count = batches.entry_count
			RETURNING id::text`, uuid.NewString(), t.HubID, "retimestamp-"+day).Scan(&batchID)
		if err != nil {
			return err
		}
		var idx int
		if err := tx.QueryRow(ctx, `UPDATE batches SET entry_count = entry_count + 1 WHERE id = $1 RETURNING entry_count - 1`,
			batchID).Scan(&idx); err != nil {
			return err
		}
		id := uuid.NewString()
		tag, err := tx.Exec(ctx, `INSERT INTO entries (id, batch_id, idx, file, size, sha256, commune, kind, year, number, flow, index_data,
				index_digest, revision_reason, act_id, version, is_version, state, received_size, received_sha256, received_at, pages,
				pdf_version, pdfa, sealed_sha256, sealed_size, seal_cert_sha256, seal_subject, sealed_at, object_key, version_id,
				archived_at, retain_until, seal_level, ts_expires_at, staging_removed_at)
			SELECT $2, $3, $4, p.file, p.size, p.sha256, p.commune, p.kind, p.year, p.number, p.flow, p.index_data,
				p.index_digest, 'retimestamp', p.act_id, $5, true, 'archived', p.received_size, p.received_sha256, p.received_at, p.pages,
				p.pdf_version, p.pdfa, $6, $7, p.seal_cert_sha256, p.seal_subject, p.sealed_at, $8, $9,
				now(), $10, 'B-LTA', $11, now()
			FROM entries p WHERE p.id = $1`, t.EntryID, id, batchID, idx, version, r.SHA256, r.Size, r.Key, r.VersionID, r.RetainUntil, r.ExpiresAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("version %s : %w", t.EntryID, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO entry_history (entry_id, state) VALUES ($1, 'archived')`, id); err != nil {
			return err
		}
		return audit(ctx, tx, Event{Actor: System, Action: "act.retimestamped", ActID: t.ActID, EntryID: id, BatchID: batchID,
			Data: map[string]any{"version": version, "previous": t.Version, "key": r.Key, "version_id": r.VersionID,
				"sealed_sha256": r.SHA256, "tsa_expires_at": r.ExpiresAt}})
	})
	return version, err
}
