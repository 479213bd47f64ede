//go:build cgo

package hsm

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// tokenCtx is one open, logged-in crypto11 context, shared by every key of
// its token.
type tokenCtx struct {
	done   chan struct{} // closed once ctx or err is set
	ctx    *crypto11.Context
	err    error
	pinSum [sha256.Size]byte

	mu     sync.Mutex
	closed bool // set by drop or Close: holders must get a new one
}

func (t *tokenCtx) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

var (
	cacheMu sync.Mutex
	cache   = map[tokenKey]*tokenCtx{}
)

// openToken returns the context of u's token, opening it (and logging in
// with pin) if the process has none. Concurrent callers for the same token
// wait for one opening; other tokens are not held up.
func openToken(u *URI, pin string) (*tokenCtx, error) {
	k := tokenKeyOf(u)
	sum := sha256.Sum256([]byte(pin))
	for {
		cacheMu.Lock()
		t := cache[k]
		if t == nil {
			t = &tokenCtx{done: make(chan struct{}), pinSum: sum}
			cache[k] = t
			cacheMu.Unlock()
			t.ctx, t.err = configure(u, pin)
			if t.err != nil {
				cacheMu.Lock()
				if cache[k] == t {
					delete(cache, k)
				}
				cacheMu.Unlock()
			}
			close(t.done)
			if t.err != nil {
				return nil, t.err
			}
			return t, nil
		}
		cacheMu.Unlock()
		<-t.done
		samePIN := subtle.ConstantTimeCompare(t.pinSum[:], sum[:]) == 1
		if t.err != nil {
			if samePIN {
				return nil, t.err
			}
			continue // another caller's attempt, with another PIN, failed: try ours
		}
		if t.isClosed() {
			continue // dropped meanwhile
		}
		if !samePIN {
			// The token is already logged in for this process: a second
			// login would succeed whatever the PIN, so compare instead.
			return nil, fmt.Errorf("%w : le PIN donné pour le %s diffère de celui de la session déjà ouverte", ErrPIN, u.tokenDesc())
		}
		return t, nil
	}
}

// configure opens the module and the token, and logs in.
func configure(u *URI, pin string) (*crypto11.Context, error) {
	if st, err := os.Stat(u.ModulePath); err != nil {
		return nil, fmt.Errorf("%w : module PKCS#11 %s : %w", ErrUnavailable, u.ModulePath, pathErr(err))
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w : module PKCS#11 %s : pas un fichier", ErrUnavailable, u.ModulePath)
	}
	cfg := &crypto11.Config{
		Path:        u.ModulePath,
		TokenSerial: u.TokenSerial,
		Pin:         pin,
	}
	switch {
	case u.TokenSerial != "":
	case u.TokenLabel != "":
		cfg.TokenLabel = u.TokenLabel
	default:
		n := *u.SlotID
		cfg.SlotNumber = &n
	}
	ctx, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, classifyOpen(u, err)
	}
	return ctx, nil
}

// classifyOpen turns an error of crypto11.Configure into ours. Login
// failures wrap ErrPIN, not ErrUnavailable: retrying a wrong PIN would
// lock the token.
func classifyOpen(u *URI, err error) error {
	var p11 pkcs11.Error
	if errors.As(err, &p11) {
		switch p11 {
		case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE:
			return fmt.Errorf("%w : PIN refusé par le %s (%v)", ErrPIN, u.tokenDesc(), p11)
		case pkcs11.CKR_PIN_LOCKED:
			return fmt.Errorf("%w : le PIN du %s est bloqué (%v) ; à débloquer avec le code administrateur", ErrPIN, u.tokenDesc(), p11)
		case pkcs11.CKR_PIN_EXPIRED:
			return fmt.Errorf("%w : le PIN du %s a expiré (%v)", ErrPIN, u.tokenDesc(), p11)
		}
		return fmt.Errorf("%w : ouverture du %s (module %s) : %v", ErrUnavailable, u.tokenDesc(), u.ModulePath, p11)
	}
	switch msg := err.Error(); {
	case msg == "could not find PKCS#11 token":
		return fmt.Errorf("%w : %s absent (module %s)", ErrUnavailable, u.tokenDesc(), u.ModulePath)
	case strings.HasSuffix(msg, "failed to open module"):
		return fmt.Errorf("%w : %s n'a pu être chargé comme module PKCS#11", ErrUnavailable, u.ModulePath)
	}
	return fmt.Errorf("%w : ouverture du %s (module %s) : %v", ErrUnavailable, u.tokenDesc(), u.ModulePath, err)
}

// drop removes t from the cache (if it is still there) and closes it in
// the background: Close waits for operations in flight.
func drop(k tokenKey, t *tokenCtx) {
	cacheMu.Lock()
	if cache[k] == t {
		delete(cache, k)
	}
	cacheMu.Unlock()
	t.mu.Lock()
	already := t.closed
	t.closed = true
	t.mu.Unlock()
	if !already && t.ctx != nil {
		go func() { _ = t.ctx.Close() }()
	}
}

// Close closes every cached context (logging out of the tokens and
// unloading the modules no longer used). Keys loaded before keep working:
// their next signature opens the token again. For tests and shutdown.
func Close() error {
	cacheMu.Lock()
	all := cache
	cache = map[tokenKey]*tokenCtx{}
	cacheMu.Unlock()
	var errs []error
	for _, t := range all {
		<-t.done
		t.mu.Lock()
		already := t.closed
		t.closed = true
		t.mu.Unlock()
		if !already && t.ctx != nil {
			if err := t.ctx.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
