package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Web sessions and one-time sign-in links. Their secrets are 32 random
// bytes handed out once; only their SHA-256 is stored.

// Session is a signed-in browser.
type Session struct {
	TokenID   string
	Purpose   string
	CSRF      string
	ExpiresAt time.Time
}

func secret() (text string, hash []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	text = base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(text))
	return text, sum[:]
}

func secretHash(text string) []byte {
	sum := sha256.Sum256([]byte(text))
	return sum[:]
}

// CreateSession opens a session for token with purpose, valid for ttl,
// and returns the cookie value and the session's CSRF token.
func (s *Store) CreateSession(ctx context.Context, tokenID, purpose string, ttl time.Duration) (cookie, csrf string, err error) {
	cookie, hash := secret()
	csrf, _ = secret()
	err = s.Transact(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO web_sessions (id_hash, token_id, purpose, csrf, expires_at) VALUES ($1, $2, $3, $4, now() + $5::interval)`,
			hash, tokenID, purpose, csrf, fmt.Sprintf("%d seconds", int(ttl.Seconds()))); err != nil {
			return err
		}
		// Sessions past their time go as new ones open.
		_, err := tx.Exec(ctx, `DELETE FROM web_sessions WHERE expires_at < now() - interval '1 day'`)
		if err != nil {
			return err
		}
		return audit(ctx, tx, Event{Actor: Actor{ID: tokenID}, Action: "session.open", Purpose: purpose})
	})
	return cookie, csrf, err
}

// SessionByCookie returns the session a cookie opens, ErrNotFound if none
// (unknown, expired).
func (s *Store) SessionByCookie(ctx context.Context, cookie string) (Session, error) {
	var se Session
	err := s.Pool.QueryRow(ctx, `UPDATE web_sessions SET seen_at = now() WHERE id_hash = $1 AND expires_at > now()
		RETURNING token_id, purpose, csrf, expires_at`, secretHash(cookie)).Scan(&se.TokenID, &se.Purpose, &se.CSRF, &se.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return se, fmt.Errorf("session: %w", ErrNotFound)
	}
	return se, err
}

// SetSessionPurpose changes the purpose of reads of a session.
func (s *Store) SetSessionPurpose(ctx context.Context, cookie, tokenID, purpose string) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE web_sessions SET purpose = $2 WHERE id_hash = $1`, secretHash(cookie), purpose); err != nil {
			return err
		}
		return audit(ctx, tx, Event{Actor: Actor{ID: tokenID}, Action: "session.purpose", Purpose: purpose})
	})
}

// DeleteSession signs a session out.
func (s *Store) DeleteSession(ctx context.Context, cookie string) error {
	_, err := s.Pool.Exec(ctx, `DELETE FROM web_sessions WHERE id_hash = $1`, secretHash(cookie))
	return err
}

// SetTokenEmail registers the address one-time sign-in links of a token
// are sent to ("" removes it).
func (s *Store) SetTokenEmail(ctx context.Context, actor Actor, id, email string) error {
	return s.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE tokens SET email = nullif(lower($2), '') WHERE id = $1`, id, strings.TrimSpace(email))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("jeton %q: %w", id, ErrNotFound)
		}
		return audit(ctx, tx, Event{Actor: actor, Action: "token.email", Data: map[string]any{"token": id}})
	})
}

// MaxLoginLinks is how many sign-in links one token gets per link
// lifetime: past it, a request sends nothing (and is answered as any
// other), so the form cannot be used to flood someone's mailbox.
const MaxLoginLinks = 3

// CreateLoginLinks makes a one-time sign-in code, valid for ttl, for each
// token in force registered under email, and returns them (token id →
// code). None: an unknown address, told nothing. A token that already had
// MaxLoginLinks links made within ttl gets none.
func (s *Store) CreateLoginLinks(ctx context.Context, email string, ttl time.Duration) (map[string]string, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id FROM tokens WHERE email = lower($1) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
		strings.TrimSpace(email))
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, id := range ids {
		code, hash := secret()
		// The token's row is locked while counting: two requests at once
		// cannot both pass the limit.
		var made bool
		err := s.Transact(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT 1 FROM tokens WHERE id = $1 FOR UPDATE`, id); err != nil {
				return err
			}
			life := fmt.Sprintf("%d seconds", int(ttl.Seconds()))
			tag, err := tx.Exec(ctx, `INSERT INTO login_links (id_hash, token_id, expires_at)
				SELECT $1, $2, now() + $3::interval
				WHERE (SELECT count(*) FROM login_links WHERE token_id = $2 AND created_at > now() - $3::interval) < $4`,
				hash, id, life, MaxLoginLinks)
			made = err == nil && tag.RowsAffected() == 1
			return err
		})
		if err != nil {
			return nil, err
		}
		if made {
			out[id] = code
		}
	}
	return out, nil
}

// UseLoginLink spends a one-time code and returns its token, ErrNotFound
// if it is unknown, spent or expired.
func (s *Store) UseLoginLink(ctx context.Context, code string) (string, error) {
	var id string
	err := s.Pool.QueryRow(ctx, `UPDATE login_links SET used_at = now() WHERE id_hash = $1 AND used_at IS NULL AND expires_at > now()
		RETURNING token_id`, secretHash(code)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("lien de connexion: %w", ErrNotFound)
	}
	return id, err
}
