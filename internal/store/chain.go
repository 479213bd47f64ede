package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// chainLock is the advisory lock key of the audit chainer.
const chainLock = 0x65746174636976 // "etatciv"

// ChainAudit chains the audit events whose transactions are older than
// every running one (so no event can later appear before them), in
// transaction then id order, at most limit per call; it returns how many
// it chained. One chainer at a time (an advisory lock); the others wait.
func (s *Store) ChainAudit(ctx context.Context, limit int) (int, error) {
	n := 0
	err := s.Transact(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, chainLock); err != nil {
			return err
		}
		var seq int64
		var prev []byte
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
		if err == pgx.ErrNoRows {
			seq, prev = 0, make([]byte, sha256.Size)
		} else if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id FROM audit_events
			WHERE seq IS NULL AND xid < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY xid, id LIMIT $1`, limit)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		for _, id := range ids {
			seq++
			// The digest covers seq: set it first, then hash the row as stored.
			var d []byte
			if err := tx.QueryRow(ctx, `UPDATE audit_events e SET seq = $2 WHERE id = $1 RETURNING audit_event_digest(e)`, id, seq).Scan(&d); err != nil {
				return fmt.Errorf("chaînage de l'événement %d : %w", id, err)
			}
			h := chainHash(prev, d)
			if _, err := tx.Exec(ctx, `UPDATE audit_events SET hash = $2 WHERE id = $1`, id, h); err != nil {
				return err
			}
			prev = h
			n++
		}
		return nil
	})
	return n, err
}

func chainHash(prev, digest []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(digest)
	return h.Sum(nil)
}

// ChainProblem is one event whose place in the chain does not hold.
type ChainProblem struct {
	Seq     int64  `json:"seq"`
	Problem string `json:"problem"`
}

// ChainReport is what VerifyChain found.
type ChainReport struct {
	OK         bool           `json:"ok"`
	Chained    int64          `json:"chained"`
	Unanchored int64          `json:"unanchored"`
	Failures   []ChainProblem `json:"failures"`
}

// VerifyChain recomputes the chain from the first event: every sequence
// number present once, every event's digest and chained hash as stored.
// An edited event fails at its own number (the next ones are checked
// against the stored hashes, so one edit is one failure); a deleted one
// is a missing number; an inserted one breaks the numbering or its hash.
// Unanchored counts the events not yet chained.
func (s *Store) VerifyChain(ctx context.Context) (ChainReport, error) {
	r := ChainReport{Failures: []ChainProblem{}}
	rows, err := s.Pool.Query(ctx, `SELECT e.seq, e.hash, audit_event_digest(e) FROM audit_events e WHERE e.seq IS NOT NULL ORDER BY e.seq`)
	if err != nil {
		return r, err
	}
	prev := make([]byte, sha256.Size)
	var want int64 = 1
	var seq int64
	var stored, d []byte
	_, err = pgx.ForEachRow(rows, []any{&seq, &stored, &d}, func() error {
		gap := want < seq
		for ; want < seq; want++ {
			r.Failures = append(r.Failures, ChainProblem{Seq: want, Problem: "événement absent (supprimé)"})
		}
		// After a gap the previous hash is unknown: the next event's link
		// cannot be checked (the gap is the failure).
		if seq < want {
			r.Failures = append(r.Failures, ChainProblem{Seq: seq, Problem: "numéro en double"})
		} else if h := chainHash(prev, d); !gap && !bytes.Equal(h, stored) {
			r.Failures = append(r.Failures, ChainProblem{Seq: seq, Problem: "contenu modifié ou événement inséré : l'empreinte chaînée ne correspond pas"})
		}
		prev = append(prev[:0], stored...)
		want = seq + 1
		r.Chained++
		return nil
	})
	if err != nil {
		return r, err
	}
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE seq IS NULL`).Scan(&r.Unanchored); err != nil {
		return r, err
	}
	r.OK = len(r.Failures) == 0
	return r, nil
}
