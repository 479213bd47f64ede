package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/model"
)

// NewEntry is one manifest entry as the API hands it to CreateBatch, with
// the problem found by parsing and checking, if any.
type NewEntry struct {
	File           string
	Size           int64
	SHA256         string
	Commune        string
	Kind           string
	Year           int
	Number         int
	Flow           string
	IndexData      []byte // canonical JSON of the index data
	IndexDigest    string
	Replaces       string
	RevisionReason string
	CommuneChain   []string // the commune then its COG ancestors
	Problem        *model.Rejection
}

// NewBatch is a manifest accepted for a hub.
type NewBatch struct {
	HubID          string
	IdempotencyKey string
	Format         string
	ManifestSHA256 string
	Entries        []NewEntry
}

// StagedKey is the staging-bucket key of a batch entry's file.
func StagedKey(batchID string, idx int) string {
	return fmt.Sprintf("incoming/%s/%06d.pdf", batchID, idx)
}

// CreateBatch records a manifest and judges every entry's identity, in
// manifest order, in one transaction. It returns the batch id and whether
// it was created (false: the idempotency key named an existing batch).
func (s *Store) CreateBatch(ctx context.Context, actor Actor, nb NewBatch) (string, bool, error) {
	var id string
	created := false
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		id, created = uuid.NewString(), true
		tag, err := tx.Exec(ctx, `INSERT INTO batches (id, hub_id, idempotency_key, format, manifest_sha256, entry_count, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hub_id, idempotency_key) DO NOTHING`,
			id, nb.HubID, nb.IdempotencyKey, nb.Format, nb.ManifestSHA256, len(nb.Entries), actor.ID)
		if err != nil {
			return fmt.Errorf("création du lot: %w", err)
		}
		if tag.RowsAffected() == 0 {
			created = false
			return tx.QueryRow(ctx, `SELECT id FROM batches WHERE hub_id = $1 AND idempotency_key = $2`, nb.HubID, nb.IdempotencyKey).Scan(&id)
		}
		if err := audit(ctx, tx, Event{Actor: actor, Action: "batch.create", BatchID: id,
			Data: map[string]any{"hub": nb.HubID, "entries": len(nb.Entries), "manifest_sha256": nb.ManifestSHA256}}); err != nil {
			return err
		}
		for i := range nb.Entries {
			if err := insertEntry(ctx, tx, actor, id, i, &nb.Entries[i]); err != nil {
				return fmt.Errorf("entrée %d (%s): %w", i, nb.Entries[i].File, err)
			}
		}
		return nil
	})
	return id, created, err
}

// holder is the live version of an act: the one that holds its key.
type holder struct {
	entryID string
	version int
	sha256  string
	digest  string
}

func insertEntry(ctx context.Context, tx pgx.Tx, actor Actor, batchID string, idx int, e *NewEntry) error {
	entryID := uuid.NewString()
	var actID any
	version, isVersion, matched := 0, false, ""
	state, problem := model.StateExpected, e.Problem

	if problem == nil {
		var aid string
		// Insert-or-lock the act row: concurrent batches with the same key
		// queue on this lock, so each is judged against the other's outcome.
		err := tx.QueryRow(ctx, `INSERT INTO acts (id, commune, year, kind, number, commune_chain)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (commune, year, kind, number) DO UPDATE SET commune = excluded.commune
			RETURNING id`, uuid.NewString(), e.Commune, e.Year, e.Kind, e.Number, e.CommuneChain).Scan(&aid)
		if err != nil {
			return fmt.Errorf("acte: %w", err)
		}
		actID = aid
		var h holder
		err = tx.QueryRow(ctx, `SELECT id, version, sha256, index_digest FROM entries
			WHERE act_id = $1 AND is_version AND state <> 'rejected' ORDER BY version DESC LIMIT 1`, aid).
			Scan(&h.entryID, &h.version, &h.sha256, &h.digest)
		hasHolder := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		switch {
		case !hasHolder && e.Replaces != "":
			problem = model.Reject(model.ReasonRevisionConflict, "Aucune version de cet acte n'est enregistrée.")
		case !hasHolder:
			version, isVersion = 1, true
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) + 1 FROM entries WHERE act_id = $1 AND is_version AND state <> 'rejected'`, aid).Scan(&version); err != nil {
				return err
			}
		case e.SHA256 == h.sha256 && e.IndexDigest == h.digest:
			matched, version = h.entryID, h.version
		case e.Replaces != "" && e.Replaces != h.sha256:
			problem = model.Reject(model.ReasonRevisionConflict, fmt.Sprintf("La version actuelle (v%d) a pour empreinte %s.", h.version, h.sha256))
		case e.SHA256 == h.sha256 && e.RevisionReason != string(model.RevisionCorrectionIndex):
			problem = model.Reject(model.ReasonIndexConflict, "")
		case e.SHA256 != h.sha256 && e.Replaces == "":
			problem = model.Reject(model.ReasonDuplicateAct, fmt.Sprintf("Version enregistrée : v%d.", h.version))
		default: // replaces names the live version: a new version
			version, isVersion = h.version+1, true
		}
	}
	var reason, message any
	if problem != nil {
		state, reason, message = model.StateRejected, string(problem.Reason), problem.Message
	}
	var staged any
	if isVersion {
		staged = StagedKey(batchID, idx)
	}
	var size any
	if e.Size > 0 || (e.SHA256 != "" && problem == nil) {
		size = e.Size
	}
	stateVal := string(state)
	if matched != "" {
		// An unchanged resubmission has no state of its own: it shows the
		// version it matched. Store "received" to satisfy the column and
		// read the holder's through matched_entry.
		stateVal = string(model.StateReceived)
	}
	_, err := tx.Exec(ctx, `INSERT INTO entries (id, batch_id, idx, file, size, sha256, commune, kind, year, number, flow,
			index_data, index_digest, replaces, revision_reason, act_id, version, is_version, matched_entry, state, reason, message, staged_key)
		VALUES ($1, $2, $3, $4, $5, nullif($6, ''), nullif($7, ''), nullif($8, ''), nullif($9, 0), nullif($10, 0), nullif($11, ''),
			$12, nullif($13, ''), nullif($14, ''), nullif($15, ''), $16, nullif($17, 0), $18, $19, $20, $21, $22, $23)`,
		entryID, batchID, idx, e.File, size, e.SHA256, e.Commune, e.Kind, e.Year, e.Number, e.Flow,
		jsonOrNil(e.IndexData), e.IndexDigest, e.Replaces, e.RevisionReason, actID, version, isVersion, nullUUID(matched), stateVal, reason, message, staged)
	if err != nil {
		return err
	}
	if matched != "" {
		return audit(ctx, tx, Event{Actor: actor, Action: "entry.unchanged", BatchID: batchID, EntryID: entryID,
			ActID: fmt.Sprint(actID), Data: map[string]any{"version": version}})
	}
	return recordState(ctx, tx, actor, entryID, batchID, actIDString(actID), state, reason, nil)
}

func jsonOrNil(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

func actIDString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

// recordState appends the entry's new state to its history and the audit log.
func recordState(ctx context.Context, tx pgx.Tx, actor Actor, entryID, batchID, actID string, state model.State, reason, waiting any) error {
	if _, err := tx.Exec(ctx, `INSERT INTO entry_history (entry_id, state, reason, waiting) VALUES ($1, $2, $3, $4)`,
		entryID, string(state), reason, waiting); err != nil {
		return err
	}
	data := map[string]any{"state": string(state)}
	if reason != nil {
		data["reason"] = reason
	}
	if waiting != nil {
		data["waiting"] = waiting
	}
	return audit(ctx, tx, Event{Actor: actor, Action: "entry.state", BatchID: batchID, ActID: actID, EntryID: entryID, Data: data})
}

// Upload is a file slot of a batch that may receive bytes.
type Upload struct {
	EntryID   string
	BatchID   string
	HubID     string
	Idx       int
	Size      int64
	SHA256    string
	StagedKey string
	State     model.State
	Received  bool // bytes matching the manifest already arrived
	Submitted bool
}

// UploadSlot finds the entry of batchID that waits for file. ErrNotFound
// if the manifest does not name file, ErrConflict if the entry does not
// take a file (rejected, unchanged, or the batch was submitted).
func (s *Store) UploadSlot(ctx context.Context, batchID, file string) (Upload, error) {
	var u Upload
	var size *int64
	var sha, staged *string
	var submitted *time.Time
	err := s.Pool.QueryRow(ctx, `SELECT e.id, e.batch_id, b.hub_id, e.idx, e.size, e.sha256, e.staged_key, e.state,
			e.received_sha256 IS NOT NULL AND e.received_sha256 = e.sha256 AND e.received_size = e.size, b.submitted_at
		FROM entries e JOIN batches b ON b.id = e.batch_id
		WHERE e.batch_id = $1 AND e.file = $2 ORDER BY (e.staged_key IS NULL), e.idx LIMIT 1`, batchID, file).
		Scan(&u.EntryID, &u.BatchID, &u.HubID, &u.Idx, &size, &sha, &staged, &u.State, &u.Received, &submitted)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("fichier %q absent du manifeste: %w", file, ErrNotFound)
	}
	if err != nil {
		return u, err
	}
	u.Submitted = submitted != nil
	if size != nil {
		u.Size = *size
	}
	if sha != nil {
		u.SHA256 = *sha
	}
	if staged == nil {
		return u, fmt.Errorf("l'entrée %q n'attend pas de fichier (état %s): %w", file, u.State, ErrConflict)
	}
	u.StagedKey = *staged
	return u, nil
}

// FileReceived records what arrived for an entry. When size and SHA-256
// match the manifest, the entry becomes "received" and onReceived runs in
// the same transaction (to enqueue validation); otherwise it stays
// expected and the mismatch is remembered for submit. It returns whether
// the bytes matched.
func (s *Store) FileReceived(ctx context.Context, actor Actor, u Upload, size int64, sha string, onReceived func(pgx.Tx) error) (bool, error) {
	match := size == u.Size && sha == u.SHA256
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		var actID string
		var state model.State
		err := tx.QueryRow(ctx, `SELECT act_id::text, state FROM entries WHERE id = $1 FOR UPDATE`, u.EntryID).Scan(&actID, &state)
		if err != nil {
			return err
		}
		if state != model.StateExpected {
			if match && state != model.StateRejected {
				return nil // the same bytes again: nothing to do
			}
			return fmt.Errorf("l'entrée est déjà %s: %w", state, ErrConflict)
		}
		_, err = tx.Exec(ctx, `UPDATE entries SET received_size = $2, received_sha256 = $3, received_at = now(), updated_at = now() WHERE id = $1`,
			u.EntryID, size, sha)
		if err != nil || !match {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE entries SET state = 'received' WHERE id = $1`, u.EntryID); err != nil {
			return err
		}
		if err := recordState(ctx, tx, actor, u.EntryID, u.BatchID, actID, model.StateReceived, nil, nil); err != nil {
			return err
		}
		return onReceived(tx)
	})
	return match, err
}

// Submit closes a batch for uploads: entries whose file never arrived end
// file_missing, those whose bytes differed end checksum_mismatch.
// Submitting twice changes nothing.
func (s *Store) Submit(ctx context.Context, actor Actor, batchID string) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE batches SET submitted_at = now() WHERE id = $1 AND submitted_at IS NULL`, batchID)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		if err := audit(ctx, tx, Event{Actor: actor, Action: "batch.submit", BatchID: batchID}); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, act_id::text, received_sha256 IS NOT NULL FROM entries
			WHERE batch_id = $1 AND state = 'expected' ORDER BY idx FOR UPDATE`, batchID)
		if err != nil {
			return err
		}
		type pending struct {
			id, act string
			got     bool
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pending, error) {
			var p pending
			var act *string
			err := r.Scan(&p.id, &act, &p.got)
			if act != nil {
				p.act = *act
			}
			return p, err
		})
		if err != nil {
			return err
		}
		for _, p := range list {
			rej := model.Reject(model.ReasonFileMissing, "")
			if p.got {
				rej = model.Reject(model.ReasonChecksumMismatch, "")
			}
			if err := setState(ctx, tx, actor, p.id, batchID, p.act, model.StateRejected, rej, ""); err != nil {
				return err
			}
		}
		return nil
	})
}

// setState moves an entry to state and records it.
func setState(ctx context.Context, tx pgx.Tx, actor Actor, entryID, batchID, actID string, state model.State, rej *model.Rejection, waiting string) error {
	var reason, message any
	if rej != nil {
		reason, message = string(rej.Reason), rej.Message
	}
	_, err := tx.Exec(ctx, `UPDATE entries SET state = $2, reason = $3, message = $4, waiting = nullif($5, ''), updated_at = now() WHERE id = $1`,
		entryID, string(state), reason, message, waiting)
	if err != nil {
		return fmt.Errorf("état %s: %w", state, err)
	}
	return recordState(ctx, tx, actor, entryID, batchID, actID, state, reason, nullStr(waiting))
}
