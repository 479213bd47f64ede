package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/model"
)

// Sealed is what the seal step committed: the sealed bytes in staging.
type Sealed struct {
	Key        string
	SHA256     string
	Size       int64
	CertSHA256 string
	Subject    string
	Level      string // PAdES level reached: B-B, B-T, B-LT or B-LTA
}

// MarkSealed records the sealed bytes, guarded by state validated, and
// runs then in the same transaction (next step's insert, job completion).
// It reports false when the entry had already moved on.
func (s *Store) MarkSealed(ctx context.Context, w Work, sl Sealed, then func(pgx.Tx) error) (bool, error) {
	return s.advance(ctx, w, model.StateValidated, model.StateSealed,
		`UPDATE entries SET sealed_key = $2, sealed_sha256 = $3, sealed_size = $4, seal_cert_sha256 = $5,
			seal_subject = $6, seal_level = nullif($7, ''), sealed_at = now(), infra_failures = 0, waiting = NULL WHERE id = $1`,
		[]any{sl.Key, sl.SHA256, sl.Size, sl.CertSHA256, sl.Subject, sl.Level}, then)
}

// MarkArchived records the archive object version, guarded by state
// sealed, and runs then in the same transaction.
func (s *Store) MarkArchived(ctx context.Context, w Work, key, versionID string, retainUntil time.Time, then func(pgx.Tx) error) (bool, error) {
	return s.advance(ctx, w, model.StateSealed, model.StateArchived,
		`UPDATE entries SET object_key = $2, version_id = $3, retain_until = $4, archived_at = now(),
			infra_failures = 0, waiting = NULL WHERE id = $1`,
		[]any{key, versionID, retainUntil}, then)
}

// StagingRemoved notes that an entry's staging objects are gone.
func (s *Store) StagingRemoved(ctx context.Context, entryID string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE entries SET staging_removed_at = now() WHERE id = $1`, entryID)
	return err
}

// StagingToRemove lists entries whose staging objects may go: archived
// ones, and rejected ones older than rejectedBefore.
func (s *Store) StagingToRemove(ctx context.Context, rejectedBefore time.Time, limit int) ([]Work, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id FROM entries
		WHERE staging_removed_at IS NULL AND (staged_key IS NOT NULL OR sealed_key IS NOT NULL)
		  AND (state = 'archived' OR (state = 'rejected' AND updated_at < $1))
		ORDER BY updated_at LIMIT $2`, rejectedBefore, limit)
	return s.works(ctx, rows, err)
}

// HubSeal is a hub's own seal configuration.
type HubSeal struct {
	CertPEM string
	KeyRef  string
}

// HubSeal returns the hub's own seal; ok is false when the hub uses the
// default seal.
func (s *Store) HubSeal(ctx context.Context, hubID string) (HubSeal, bool, error) {
	var h HubSeal
	err := s.Pool.QueryRow(ctx, `SELECT cert_pem, key_ref FROM hub_seals WHERE hub_id = $1`, hubID).Scan(&h.CertPEM, &h.KeyRef)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, false, nil
	}
	return h, err == nil, err
}

// SetHubSeal sets (or rotates) a hub's seal.
func (s *Store) SetHubSeal(ctx context.Context, actor Actor, hubID string, h HubSeal, certSHA256 string) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO hub_seals (hub_id, cert_pem, key_ref) SELECT id, $2, $3 FROM hubs WHERE id = $1
			ON CONFLICT (hub_id) DO UPDATE SET cert_pem = excluded.cert_pem, key_ref = excluded.key_ref, set_at = now()`, hubID, h.CertPEM, h.KeyRef)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("opérateur %q: %w", hubID, ErrNotFound)
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "hub.set_seal", Data: map[string]any{"hub": hubID, "cert_sha256": certSHA256}})
	})
}

// ArchivedVersion locates one archived version of an act in scope.
type ArchivedVersion struct {
	ActID     string
	Version   int
	Key       string
	VersionID string
	SHA256    string
	Size      int64
	Original  string // SHA-256 of the file as received
	OrigSize  int64
}

// ArchivedVersion returns version (0: the current one) of an act in sc,
// or ErrNotFound. A hub reaches only the versions it uploaded.
func (s *Store) ArchivedVersion(ctx context.Context, sc Scope, actID string, version int) (ArchivedVersion, error) {
	var v ArchivedVersion
	if _, err := parseUUID(actID); err != nil {
		return v, fmt.Errorf("acte %q: %w", actID, ErrNotFound)
	}
	err := s.Pool.QueryRow(ctx, `SELECT e.act_id, e.version, e.object_key, e.version_id, e.sealed_sha256, e.sealed_size, e.sha256, e.size
		FROM entries e JOIN acts a ON a.id = e.act_id
		WHERE e.act_id = $1 AND e.is_version AND e.state = 'archived' AND ($2 = 0 OR e.version = $2)
		  AND ($3::text[] IS NULL OR a.commune_chain && $3)
		  AND ($4 = '' OR EXISTS (SELECT 1 FROM batches b WHERE b.id = e.batch_id AND b.hub_id = $4))
		ORDER BY e.version DESC LIMIT 1`, actID, version, sc.communeFilter(), sc.HubID).
		Scan(&v.ActID, &v.Version, &v.Key, &v.VersionID, &v.SHA256, &v.Size, &v.Original, &v.OrigSize)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("acte %q (version archivée %d): %w", actID, version, ErrNotFound)
	}
	return v, err
}

// ManifestSHA256 returns the SHA-256 of a batch's manifest bytes.
func (s *Store) ManifestSHA256(ctx context.Context, batchID string) (string, error) {
	var sha string
	err := s.Pool.QueryRow(ctx, `SELECT manifest_sha256 FROM batches WHERE id = $1`, batchID).Scan(&sha)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("lot %q: %w", batchID, ErrNotFound)
	}
	return sha, err
}

// ReceiptLines returns every entry of a batch for its deposit receipt;
// ErrConflict while entries are still in progress.
func (s *Store) ReceiptLines(ctx context.Context, batchID string) ([]ReceiptLine, error) {
	rows, err := s.Pool.Query(ctx, `SELECT e.idx, e.file, coalesce(e.sha256, ''), coalesce(h.sealed_sha256, e.sealed_sha256, ''),
			coalesce(h.state, e.state), coalesce(h.reason, e.reason, ''), coalesce(h.archived_at, e.archived_at),
			coalesce(h.object_key, e.object_key, '')
		FROM entries e LEFT JOIN entries h ON h.id = e.matched_entry WHERE e.batch_id = $1 ORDER BY e.idx`, batchID)
	if err != nil {
		return nil, err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ReceiptLine])
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		if !model.State(l.State).Terminal() {
			return nil, fmt.Errorf("le lot n'est pas terminé (%s : %s) : %w", l.File, l.State, ErrConflict)
		}
	}
	return lines, nil
}

// ReceiptLine is one entry of a receipt.
type ReceiptLine struct {
	Index        int
	File         string
	SHA256       string
	SealedSHA256 string
	State        string
	Reason       string
	ArchivedAt   *time.Time
	ObjectKey    string
}

// HubSealLevel is the PAdES level a hub's acts are sealed at.
func (s *Store) HubSealLevel(ctx context.Context, hubID string) (string, error) {
	var level string
	err := s.Pool.QueryRow(ctx, `SELECT seal_level FROM hubs WHERE id = $1`, hubID).Scan(&level)
	return level, err
}

// SetHubSealLevel sets the PAdES level of a hub's future seals.
func (s *Store) SetHubSealLevel(ctx context.Context, actor Actor, hubID, level string) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE hubs SET seal_level = $2 WHERE id = $1`, hubID, level)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("opérateur %q: %w", hubID, ErrNotFound)
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "hub.seal_level", Data: map[string]any{"hub": hubID, "level": level}})
	})
}

// LeaseArchive takes the entry's archive lease for d (migration 014):
// false if another run holds an unexpired one, or the entry is no longer
// sealed. No connection is held while the lease lasts.
func (s *Store) LeaseArchive(ctx context.Context, entryID string, d time.Duration) (bool, error) {
	tag, err := s.Pool.Exec(ctx, `UPDATE entries SET archiving_until = now() + make_interval(secs => $2)
		WHERE id = $1 AND state = 'sealed' AND (archiving_until IS NULL OR archiving_until < now())`, entryID, d.Seconds())
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseArchive gives the lease back (best effort: it expires anyway).
func (s *Store) ReleaseArchive(ctx context.Context, entryID string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _ = s.Pool.Exec(ctx, `UPDATE entries SET archiving_until = NULL WHERE id = $1 AND archiving_until IS NOT NULL`, entryID)
}
