package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/model"
)

// Actor names who did something, for the audit log.
type Actor struct {
	ID   string // token id, or "cli" / "system"
	Name string
}

// System is the actor of the workers' own state changes.
var System = Actor{ID: "system", Name: "etatcivil"}

// Scope limits what a caller sees. All is true for auditors and admins;
// otherwise Communes (a hub's members, or a town hall's communes) is
// matched against each act's commune and COG ancestors, and HubID, if
// set, limits batches to that hub's own.
type Scope struct {
	All      bool
	HubID    string
	Communes []string
}

// communeFilter is the SQL value for "a.commune_chain && $n": nil means all.
func (sc Scope) communeFilter() []string {
	if sc.All {
		return nil
	}
	if sc.Communes == nil {
		return []string{}
	}
	return sc.Communes
}

// ImportCOG replaces the commune table with rows, in one transaction.
func (s *Store) ImportCOG(ctx context.Context, date string, rows []model.Commune) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM communes`); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"communes"}, []string{"code", "type", "name", "parent"},
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				r := rows[i]
				return []any{r.Code, string(r.Type), r.Name, r.Parent}, nil
			}))
		if err != nil {
			return fmt.Errorf("import COG: %w", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO cog_snapshot (id, date, imported_at) VALUES (true, $1, now())
			ON CONFLICT (id) DO UPDATE SET date = excluded.date, imported_at = now()`, date)
		return err
	})
}

// Communes returns the imported COG snapshot and its date. The date is
// empty when no snapshot was imported.
func (s *Store) Communes(ctx context.Context) (string, []model.Commune, error) {
	var date string
	err := s.Pool.QueryRow(ctx, `SELECT date FROM cog_snapshot`).Scan(&date)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	rows, err := s.Pool.Query(ctx, `SELECT code, type, name, parent FROM communes`)
	if err != nil {
		return "", nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.Commune, error) {
		var c model.Commune
		err := r.Scan(&c.Code, &c.Type, &c.Name, &c.Parent)
		return c, err
	})
	return date, out, err
}

// Hub is a dematerialisation hub and its member communes.
type Hub struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Communes []string `json:"communes"`
	// SealLevel is the PAdES level of its next seals (read only here:
	// hub set-level changes it).
	SealLevel string `json:"seal_level,omitempty"`
}

// CreateHub creates a hub. ErrConflict if it exists.
func (s *Store) CreateHub(ctx context.Context, actor Actor, h Hub) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO hubs (id, name) VALUES ($1, $2)`, h.ID, h.Name)
		if isUniqueViolation(err) {
			return fmt.Errorf("opérateur %q: %w (il existe déjà)", h.ID, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("création de l'opérateur %q: %w", h.ID, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO hub_communes (hub_id, commune) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, h.ID, h.Communes); err != nil {
			return err
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "hub.create", Data: map[string]any{"hub": h.ID, "communes": h.Communes}})
	})
}

// UpdateHub adds and removes member communes.
func (s *Store) UpdateHub(ctx context.Context, actor Actor, id string, add, remove []string) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hubs WHERE id = $1)`, id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("opérateur %q: %w", id, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO hub_communes (hub_id, commune) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, id, add); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM hub_communes WHERE hub_id = $1 AND commune = ANY($2)`, id, remove); err != nil {
			return err
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "hub.update", Data: map[string]any{"hub": id, "add": add, "remove": remove}})
	})
}

// Hub returns a hub with its communes.
func (s *Store) Hub(ctx context.Context, id string) (Hub, error) {
	h := Hub{ID: id}
	err := s.Pool.QueryRow(ctx, `SELECT name, coalesce((SELECT array_agg(commune ORDER BY commune) FROM hub_communes WHERE hub_id = $1), '{}'),
		seal_level FROM hubs WHERE id = $1`, id).Scan(&h.Name, &h.Communes, &h.SealLevel)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, fmt.Errorf("opérateur %q: %w", id, ErrNotFound)
	}
	return h, err
}

// Token is a stored access token, without its secret.
type Token struct {
	ID        string     `json:"id"`
	Hash      []byte     `json:"-"`
	Role      string     `json:"role"`
	Name      string     `json:"name"`
	HubID     string     `json:"hub,omitempty"`
	Communes  []string   `json:"communes,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// CreateToken stores a token (its hash) and audits it.
func (s *Store) CreateToken(ctx context.Context, actor Actor, t Token) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		var hub any
		if t.HubID != "" {
			hub = t.HubID
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hubs WHERE id = $1)`, t.HubID).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("opérateur %q: %w", t.HubID, ErrNotFound)
			}
		}
		communes := t.Communes
		if communes == nil {
			communes = []string{}
		}
		_, err := tx.Exec(ctx, `INSERT INTO tokens (id, hash, role, name, hub_id, communes, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			t.ID, t.Hash, t.Role, t.Name, hub, communes, t.ExpiresAt)
		if err != nil {
			return fmt.Errorf("création du jeton: %w", err)
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "token.create",
			Data: map[string]any{"token": t.ID, "role": t.Role, "name": t.Name, "hub": t.HubID, "communes": communes}})
	})
}

const tokenCols = `id, hash, role, name, coalesce(hub_id, ''), communes, created_at, expires_at, revoked_at`

func scanToken(r pgx.Row) (Token, error) {
	var t Token
	err := r.Scan(&t.ID, &t.Hash, &t.Role, &t.Name, &t.HubID, &t.Communes, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt)
	return t, err
}

// Token returns the token with this id, revoked or not.
func (s *Store) Token(ctx context.Context, id string) (Token, error) {
	t, err := scanToken(s.Pool.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("jeton %q: %w", id, ErrNotFound)
	}
	return t, err
}

// Tokens lists every token, newest first.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Token, error) { return scanToken(r) })
}

// RevokeToken revokes a token; revoking twice is not an error.
func (s *Store) RevokeToken(ctx context.Context, actor Actor, id string) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("jeton %q: %w", id, ErrNotFound)
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "token.revoke", Data: map[string]any{"token": id}})
	})
}
