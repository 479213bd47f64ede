package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/etatcivil/etatcivil/internal/hsm"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
)

// ErrNoSeal: neither the hub nor the server has a seal configured.
var ErrNoSeal = errors.New("aucun cachet configuré (ETATCIVIL_SEAL_CERT/ETATCIVIL_SEAL_KEY, ou « hub set-seal »)")

// KeyRing finds the seal of a hub: its own (hub set-seal) or the default
// one. Keys are loaded once per (hub, configuration) and kept in memory.
type KeyRing struct {
	Store *store.Store
	// Default is the server's default seal, nil if none.
	Default *seal.Key
	// P12Password unlocks PKCS#12 key files of hubs' seals.
	P12Password string

	mu    sync.Mutex
	cache map[string]*seal.Key // by hub id + key_ref + certificate digest
}

// LoadKey loads a seal from a certificate file and a key reference: a PEM
// key file, or a PKCS#12 file (".p12"/".pfx", its certificate used when
// certFile is empty).
func LoadKey(certFile, keyRef, p12Password string) (*seal.Key, error) {
	if strings.HasPrefix(keyRef, "pkcs11:") {
		// A key in an HSM or smart card (RFC 7512 URI): the token signs,
		// the key never leaves it; the certificate comes from the token or
		// from the URI's cert-path.
		return hsm.Load(keyRef)
	}
	keyData, err := os.ReadFile(keyRef)
	if err != nil {
		return nil, fmt.Errorf("clé du cachet: %w", err)
	}
	if strings.HasSuffix(keyRef, ".p12") || strings.HasSuffix(keyRef, ".pfx") {
		return seal.LoadPKCS12(keyData, p12Password)
	}
	certData, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certificat du cachet: %w", err)
	}
	return seal.LoadPEM(certData, keyData)
}

// For returns the seal of hubID.
func (k *KeyRing) For(ctx context.Context, hubID string) (*seal.Key, error) {
	hs, own, err := k.Store.HubSeal(ctx, hubID)
	if err != nil {
		return nil, err
	}
	if !own {
		if k.Default == nil {
			return nil, ErrNoSeal
		}
		return k.Default, nil
	}
	sum := sha256.Sum256([]byte(hs.CertPEM))
	id := hubID + "\x00" + hs.KeyRef + "\x00" + hex.EncodeToString(sum[:])
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.cache[id]; ok {
		return key, nil
	}
	var key *seal.Key
	if strings.HasPrefix(hs.KeyRef, "pkcs11:") || strings.HasSuffix(hs.KeyRef, ".p12") || strings.HasSuffix(hs.KeyRef, ".pfx") {
		key, err = LoadKey("", hs.KeyRef, k.P12Password)
	} else {
		var keyData []byte
		keyData, err = os.ReadFile(hs.KeyRef)
		if err == nil {
			key, err = seal.LoadPEM([]byte(hs.CertPEM), keyData)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cachet de l'opérateur %s: %w", hubID, err)
	}
	if k.cache == nil {
		k.cache = map[string]*seal.Key{}
	}
	k.cache[id] = key
	return key, nil
}
