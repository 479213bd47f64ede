package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
}

// CreateTransmissions records, in tx (the archiving transaction), a
// pending transmission of the entry to each target. Creating one twice
// changes nothing. It returns the ids created.
func CreateTransmissions(ctx context.Context, tx pgx.Tx, w Work, targets []Target) ([]string, error) {
	var ids []string
	for _, t := range targets {
		id := uuid.NewString()
		tag, err := tx.Exec(ctx, `INSERT INTO transmissions (id, registry, connector, act_id, entry_id, version, idempotency_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
			id, t.Registry, t.Connector, w.ActID, w.EntryID, w.Version, TransmissionKey(t.Registry, w.ActID, w.Version))
		if err != nil {
			return nil, fmt.Errorf("transmission vers %s: %w", t.Registry, err)
		}
		if tag.RowsAffected() == 1 {
			ids = append(ids, id)
			if err := audit(ctx, tx, Event{Actor: System, Action: "transmission.create", ActID: w.ActID, EntryID: w.EntryID,
				Data: map[string]any{"registry": t.Registry, "version": w.Version}}); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

// TransmissionView is one transmission in an act's JSON.
type TransmissionView struct {
	Registry  string    `json:"registry"`
	Version   int       `json:"version"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	AckID     *string   `json:"ack_id"`
	Reason    *string   `json:"reason"`
	UpdatedAt time.Time `json:"updated_at"`
}

// actTransmissions lists an act's transmissions.
func (s *Store) actTransmissions(ctx context.Context, actID string) ([]TransmissionView, error) {
	rows, err := s.Pool.Query(ctx, `SELECT registry, version, state, attempts, ack_id, reason, updated_at
		FROM transmissions WHERE act_id = $1 ORDER BY version, registry`, actID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[TransmissionView])
}
