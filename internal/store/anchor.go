package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ChainCommitted chains every audit event committed before it was called:
// it waits (polling, within ctx) until every transaction running at that
// moment has ended, chaining as the horizon moves, then chains what
// remains. audit checkpoint starts with it.
func (s *Store) ChainCommitted(ctx context.Context) (int, error) {
	var target string
	if err := s.Pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text`).Scan(&target); err != nil {
		return 0, err
	}
	total := 0
	for {
		n, err := s.ChainAudit(ctx, 5000)
		total += n
		if err != nil {
			return total, err
		}
		if n == 5000 {
			continue
		}
		var reached bool
		if err := s.Pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::xid8`, target).Scan(&reached); err != nil {
			return total, err
		}
		if reached {
			// Every transaction of before has ended: one last round takes
			// what they committed.
			n, err := s.ChainAudit(ctx, 5000)
			total += n
			if err != nil || n < 5000 {
				return total, err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return total, fmt.Errorf("chaînage : une transaction plus ancienne reste ouverte sur le serveur PostgreSQL : %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Checkpoint is one anchor of the audit chain as indexed in the database
// (the archive bucket holds the evidence).
type Checkpoint struct {
	Number    int64
	FirstSeq  int64
	LastSeq   int64
	Root      []byte
	ChainHead []byte
	Document  []byte
	Signature []byte
	CreatedAt time.Time
}

// MaxCheckpointEvents bounds one checkpoint (its leaves object is 32 bytes
// per event); a longer backlog is anchored by several.
const MaxCheckpointEvents = 1 << 20

// checkpointLock serialises checkpoint builders (any process).
const checkpointLock = chainLock + 1

// Pending is what a new checkpoint would anchor: the events chained since
// the last checkpoint, their digests in seq order, and the chain's hash at
// the last one.
type Pending struct {
	Last      *Checkpoint // nil before the first
	FirstSeq  int64
	LastSeq   int64
	Digests   [][]byte
	ChainHead []byte
}

// WithCheckpointLock runs fn with the checkpoint builders' lock held (a
// session advisory lock on one connection, not a transaction: fn talks to
// S3 and to the TSA and must not hold back the chain's horizon), after
// reading what the next checkpoint would anchor.
func (s *Store) WithCheckpointLock(ctx context.Context, fn func(p Pending) error) error {
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, checkpointLock); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, checkpointLock) //nolint:errcheck
	var p Pending
	last, err := s.LastCheckpoint(ctx)
	if err != nil {
		return err
	}
	p.Last = last
	p.FirstSeq = 1
	if last != nil {
		p.FirstSeq = last.LastSeq + 1
	}
	rows, err := conn.Query(ctx, `SELECT e.seq, audit_event_digest(e), e.hash FROM audit_events e
		WHERE e.seq >= $1 ORDER BY e.seq LIMIT $2`, p.FirstSeq, MaxCheckpointEvents)
	if err != nil {
		return err
	}
	var seq int64
	var d, h []byte
	want := p.FirstSeq
	_, err = pgx.ForEachRow(rows, []any{&seq, &d, &h}, func() error {
		if seq != want {
			return fmt.Errorf("chaîne : événement n° %d absent, la chaîne doit être vérifiée avant d'être ancrée", want)
		}
		want++
		p.Digests = append(p.Digests, append([]byte(nil), d...))
		p.ChainHead = append(p.ChainHead[:0], h...)
		p.LastSeq = seq
		return nil
	})
	if err != nil {
		return err
	}
	return fn(p)
}

// SaveCheckpoint indexes a checkpoint written to the bucket. It is not an
// audit event: the checkpoint in the bucket is its own record (an event
// would leave one new event to anchor after every checkpoint).
func (s *Store) SaveCheckpoint(ctx context.Context, c Checkpoint) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO audit_checkpoints (number, first_seq, last_seq, root, chain_head, document, signature)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (number) DO NOTHING`,
		c.Number, c.FirstSeq, c.LastSeq, c.Root, c.ChainHead, c.Document, c.Signature)
	return err
}

// LastCheckpoint returns the newest indexed checkpoint, nil if none.
func (s *Store) LastCheckpoint(ctx context.Context) (*Checkpoint, error) {
	cs, err := s.checkpoints(ctx, `ORDER BY number DESC LIMIT 1`)
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	return &cs[0], nil
}

// Checkpoints returns every indexed checkpoint, oldest first.
func (s *Store) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	return s.checkpoints(ctx, `ORDER BY number`)
}

func (s *Store) checkpoints(ctx context.Context, tail string) ([]Checkpoint, error) {
	rows, err := s.Pool.Query(ctx, `SELECT number, first_seq, last_seq, root, chain_head, document, signature, created_at
		FROM audit_checkpoints `+tail)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Checkpoint])
}

// SeqDigest is one chained event's number, digest and chained hash as
// stored now.
type SeqDigest struct {
	Seq    int64
	Digest []byte
	Hash   []byte
}

// ChainedDigests returns the events numbered from..to (inclusive) as
// stored, in seq order; missing numbers are simply absent.
func (s *Store) ChainedDigests(ctx context.Context, from, to int64) ([]SeqDigest, error) {
	rows, err := s.Pool.Query(ctx, `SELECT e.seq, audit_event_digest(e), e.hash FROM audit_events e
		WHERE e.seq BETWEEN $1 AND $2 ORDER BY e.seq`, from, to)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[SeqDigest])
}

// ExportEvent is an anchored event as an export carries it: its fields,
// and the exact text whose SHA-256 is its digest.
type ExportEvent struct {
	Seq      int64          `json:"seq"`
	ID       int64          `json:"id"`
	At       time.Time      `json:"at"`
	Actor    string         `json:"actor"`
	Name     string         `json:"actor_name"`
	Action   string         `json:"action"`
	BatchID  *string        `json:"batch_id"`
	ActID    *string        `json:"act_id"`
	EntryID  *string        `json:"entry_id"`
	Purpose  *string        `json:"purpose"`
	Data     map[string]any `json:"data"`
	Encoding string         `json:"encoding"`
}

// ActEvents returns the chained events about the given acts, up to seq
// upTo, in seq order.
func (s *Store) ActEvents(ctx context.Context, actIDs []string, upTo int64) ([]ExportEvent, error) {
	rows, err := s.Pool.Query(ctx, `SELECT e.seq, e.id, e.at, e.actor, e.actor_name, e.action, e.batch_id::text, e.act_id::text,
			e.entry_id::text, e.purpose, e.data, audit_event_encoding(e)
		FROM audit_events e WHERE e.act_id = ANY($1::uuid[]) AND e.seq IS NOT NULL AND e.seq <= $2 ORDER BY e.seq`, actIDs, upTo)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ExportEvent])
}

// ErrNoSeal: checkpoints and exports are sealed with the server's default
// seal, and none is configured.
var ErrNoSeal = errors.New("aucun cachet par défaut (ETATCIVIL_SEAL_CERT/ETATCIVIL_SEAL_KEY) : les points d'ancrage et les exports sont scellés avec lui")

// CountUnanchored counts the events not chained, or chained after seq
// anchoredThrough.
func (s *Store) CountUnanchored(ctx context.Context, anchoredThrough int64) (int64, error) {
	var n int64
	err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE seq IS NULL OR seq > $1`, anchoredThrough).Scan(&n)
	return n, err
}

// ExportVersion is an archived act version an export carries.
type ExportVersion struct {
	ActID     string `json:"act_id"`
	Commune   string `json:"commune"`
	Year      int    `json:"year"`
	Kind      string `json:"kind"`
	Number    int    `json:"number"`
	Version   int    `json:"version"`
	Key       string `json:"-"`
	VersionID string `json:"-"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
}

// ExportVersions returns every archived version of the acts of a commune
// (its register, or a predecessor's: the commune chain, as scopes see it)
// and year, in register order.
func (s *Store) ExportVersions(ctx context.Context, commune string, year int) ([]ExportVersion, error) {
	rows, err := s.Pool.Query(ctx, `SELECT a.id::text, a.commune, a.year, a.kind, a.number, e.version, e.object_key, e.version_id,
			e.sealed_sha256, e.sealed_size
		FROM acts a JOIN entries e ON e.act_id = a.id AND e.is_version AND e.state = 'archived'
		WHERE $1 = ANY(a.commune_chain) AND a.year = $2
		ORDER BY a.commune, a.kind, a.number, e.version`, commune, year)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ExportVersion])
}

// CountActEventsAfter counts the events about the acts not yet anchored
// (not chained, or chained after seq anchored).
func (s *Store) CountActEventsAfter(ctx context.Context, actIDs []string, anchored int64) (int, error) {
	var n int
	err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE act_id = ANY($1::uuid[]) AND (seq IS NULL OR seq > $2)`,
		actIDs, anchored).Scan(&n)
	return n, err
}

// RecordExport records an export's reads, one act.read_pdf event per act
// version with the purpose, and the export itself, in one transaction.
func (s *Store) RecordExport(ctx context.Context, actor Actor, purpose, reason, commune string, year int, versions []ExportVersion) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		for _, v := range versions {
			if err := audit(ctx, tx, Event{Actor: actor, Action: "act.read_pdf", ActID: v.ActID, Purpose: purpose, Reason: reason,
				Data: map[string]any{"version": v.Version, "channel": "export"}}); err != nil {
				return err
			}
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "audit.export", Purpose: purpose, Reason: reason,
			Data: map[string]any{"commune": commune, "year": year, "versions": len(versions)}})
	})
}

// ActChainLink is one chained event about an act, with what checks its
// place: its digest and hash as stored, and the previous event's hash.
type ActChainLink struct {
	Seq    int64
	Digest []byte
	Hash   []byte
	Prev   []byte // nil: the previous event is missing (or seq is 1)
}

// ActChain returns the chained events about an act, in seq order.
func (s *Store) ActChain(ctx context.Context, actID string) ([]ActChainLink, error) {
	rows, err := s.Pool.Query(ctx, `SELECT e.seq, audit_event_digest(e), e.hash, p.hash
		FROM audit_events e LEFT JOIN audit_events p ON p.seq = e.seq - 1
		WHERE e.act_id = $1 AND e.seq IS NOT NULL ORDER BY e.seq`, actID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ActChainLink])
}
