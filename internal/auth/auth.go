// Package auth makes and checks access tokens. A token reads
// "ec_<id>_<secret>": the id finds the row at once, and only
// HMAC-SHA-256(pepper, secret) is stored, compared in constant time.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/etatcivil/etatcivil/internal/store"
)

// Role is what a token may do.
type Role string

// The four roles.
const (
	RoleHub      Role = "hub"
	RoleTownhall Role = "townhall"
	RoleAuditor  Role = "auditor"
	RoleAdmin    Role = "admin"
)

// Roles lists every role.
var Roles = []Role{RoleHub, RoleTownhall, RoleAuditor, RoleAdmin}

// ErrUnauthenticated: no token, or an invalid, expired or revoked one.
var ErrUnauthenticated = errors.New("jeton absent, invalide, expiré ou révoqué")

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Principal is an authenticated caller.
type Principal struct {
	TokenID string
	Name    string
	Role    Role
	HubID   string
	Scope   store.Scope
}

// Actor names the principal in the audit log.
func (p Principal) Actor() store.Actor { return store.Actor{ID: p.TokenID, Name: p.Name} }

// Hasher computes token hashes with the server's pepper.
type Hasher struct{ pepper []byte }

// NewHasher returns a Hasher for pepper (at least 16 bytes).
func NewHasher(pepper string) (Hasher, error) {
	if len(pepper) < 16 {
		return Hasher{}, errors.New("ETATCIVIL_TOKEN_PEPPER trop court (16 caractères au moins)")
	}
	return Hasher{pepper: []byte(pepper)}, nil
}

// Hash returns the keyed hash of a secret.
func (h Hasher) Hash(secret string) []byte {
	m := hmac.New(sha256.New, h.pepper)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// New makes a fresh token: its public id, the full text to hand out, and
// the hash to store.
func (h Hasher) New() (id, text string, hash []byte) {
	var idb [8]byte
	var sb [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	if _, err := rand.Read(sb[:]); err != nil {
		panic(err)
	}
	id, secret := enc.EncodeToString(idb[:]), enc.EncodeToString(sb[:])
	return id, "ec_" + id + "_" + secret, h.Hash(secret)
}

// Parse splits a token text into id and secret.
func Parse(text string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(text, "ec_")
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, "_")
	if !found || len(id) == 0 || len(id) > 32 || len(secret) < 16 || len(secret) > 128 {
		return "", "", false
	}
	return id, secret, true
}

// Authenticator checks presented tokens against the store.
type Authenticator struct {
	Store  *store.Store
	Hasher Hasher
	Now    func() time.Time
}

// Authenticate returns the principal a token text names, or
// ErrUnauthenticated.
func (a *Authenticator) Authenticate(ctx context.Context, text string) (Principal, error) {
	id, secret, ok := Parse(text)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	t, err := a.Store.Token(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the same time as a real comparison.
		hmac.Equal(a.Hasher.Hash(secret), make([]byte, sha256.Size))
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("lecture du jeton: %w", err)
	}
	if !hmac.Equal(a.Hasher.Hash(secret), t.Hash) {
		return Principal{}, ErrUnauthenticated
	}
	return a.principal(ctx, t)
}

// ForToken returns the principal of token id (a web session's), or
// ErrUnauthenticated if it no longer exists, expired or was revoked.
func (a *Authenticator) ForToken(ctx context.Context, id string) (Principal, error) {
	t, err := a.Store.Token(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("lecture du jeton: %w", err)
	}
	return a.principal(ctx, t)
}

// principal checks that t is in force and computes its scope.
func (a *Authenticator) principal(ctx context.Context, t store.Token) (Principal, error) {
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	if t.RevokedAt != nil || (t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)) {
		return Principal{}, ErrUnauthenticated
	}
	p := Principal{TokenID: t.ID, Name: t.Name, Role: Role(t.Role), HubID: t.HubID}
	switch p.Role {
	case RoleAdmin, RoleAuditor:
		p.Scope = store.Scope{All: true}
	case RoleTownhall:
		p.Scope = store.Scope{Communes: slices.Clone(t.Communes)}
	case RoleHub:
		h, err := a.Store.Hub(ctx, t.HubID)
		if err != nil {
			return Principal{}, fmt.Errorf("opérateur du jeton: %w", err)
		}
		p.Scope = store.Scope{HubID: t.HubID, Communes: h.Communes}
	default:
		return Principal{}, ErrUnauthenticated
	}
	return p, nil
}
