//go:build cgo

package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/etatcivil/etatcivil/internal/seal"
)

// Load opens the key named by uri (an RFC 7512 PKCS#11 URI) and returns a
// seal whose Signer signs on the token. Its Chain is the key's
// certificate, from the PEM file of the cert-path query attribute (the
// certificate of the file whose public key is the key's) or else from the
// token (the CKO_CERTIFICATE object of the key's CKA_ID, or of the URI's
// object label), followed by the other certificates of the cert-path file,
// in their order.
//
// Errors wrap ErrInvalidURI, ErrPIN, ErrUnavailable, ErrNotFound, or
// seal.ErrInvalidKey (certificate that does not match the key, key that is
// neither RSA nor ECDSA). They never contain the PIN.
func Load(uri string) (*seal.Key, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	pin, err := u.pin()
	if err != nil {
		return nil, err
	}
	var fileCerts []*x509.Certificate
	if u.CertPath != "" {
		if fileCerts, err = readCerts(u.CertPath); err != nil {
			return nil, err
		}
	}

	s := &signer{u: u, pin: pin, k: tokenKeyOf(u)}
	t, key, err := s.open()
	if err != nil {
		return nil, err
	}
	s.t, s.key, s.pub = t, key, key.Public()
	switch s.pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("%w : %s du %s : type de clé %T non pris en charge (RSA ou ECDSA attendu)", seal.ErrInvalidKey, u.keyDesc(), u.tokenDesc(), s.pub)
	}

	chain, err := s.chain(t, key, fileCerts)
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	label := leaf.Subject.CommonName
	if label == "" {
		label = leaf.Subject.String()
	}
	return &seal.Key{Signer: s, Chain: chain, Label: label}, nil
}

// readCerts reads the CERTIFICATE blocks of a PEM file.
func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w : fichier de certificat %s absent", ErrNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("lecture du certificat %s : %w", path, pathErr(err))
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w : %s : certificat n° %d : %w", seal.ErrInvalidKey, path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w : %s : aucun bloc PEM CERTIFICATE", seal.ErrInvalidKey, path)
	}
	return certs, nil
}

// chain returns the key's certificate followed by the other certificates
// of fileCerts.
func (s *signer) chain(t *tokenCtx, key crypto11.Signer, fileCerts []*x509.Certificate) ([]*x509.Certificate, error) {
	matches := func(c *x509.Certificate) bool {
		pub, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		return ok && pub.Equal(s.pub)
	}
	others := func(leaf *x509.Certificate) []*x509.Certificate {
		chain := []*x509.Certificate{leaf}
		for _, c := range fileCerts {
			if c != leaf {
				chain = append(chain, c)
			}
		}
		return chain
	}
	var mismatched *x509.Certificate // a leaf candidate of another key
	for _, c := range fileCerts {
		if matches(c) {
			return others(c), nil
		}
		if !c.IsCA && mismatched == nil {
			mismatched = c
		}
	}

	// On the token: by the key's CKA_ID, then by the URI's label.
	var ids [][]byte
	if a, err := t.ctx.GetAttribute(key, crypto11.CkaId); err == nil && a != nil && len(a.Value) > 0 {
		ids = append(ids, a.Value)
	} else if err != nil {
		return nil, s.tokenErr(t, "lecture de l'identifiant de la clé", err)
	}
	if len(s.u.ID) > 0 {
		ids = append(ids, s.u.ID)
	}
	lookups := []func() (*x509.Certificate, error){}
	for _, id := range ids {
		lookups = append(lookups, func() (*x509.Certificate, error) { return t.ctx.FindCertificate(id, nil, nil) })
	}
	if s.u.ObjectLabel != "" {
		lookups = append(lookups, func() (*x509.Certificate, error) {
			return t.ctx.FindCertificate(nil, []byte(s.u.ObjectLabel), nil)
		})
	}
	for _, find := range lookups {
		c, err := find()
		if err != nil {
			return nil, s.tokenErr(t, "recherche du certificat", err)
		}
		if c == nil {
			continue
		}
		if matches(c) {
			return others(c), nil
		}
		if mismatched == nil {
			mismatched = c
		}
	}
	if mismatched != nil {
		return nil, fmt.Errorf("%w : le certificat %q ne correspond pas à la %s du %s", seal.ErrInvalidKey, mismatched.Subject.CommonName, s.u.keyDesc(), s.u.tokenDesc())
	}
	where := "ni sur le jeton (même CKA_ID ou même libellé)"
	if s.u.CertPath != "" {
		where += " ni dans " + s.u.CertPath
	} else {
		where += " ; sinon, donnez-le par cert-path="
	}
	return nil, fmt.Errorf("%w : certificat de la %s du %s : %s", ErrNotFound, s.u.keyDesc(), s.u.tokenDesc(), where)
}

// signer is the crypto.Signer of a token key. It opens the token again
// (and finds the key again) when its context was closed or the token
// went away.
type signer struct {
	u   *URI
	pin string
	k   tokenKey
	pub crypto.PublicKey

	mu  sync.Mutex
	t   *tokenCtx
	key crypto11.Signer
}

// Public implements crypto.Signer.
func (s *signer) Public() crypto.PublicKey { return s.pub }

// String names the key, without the PIN.
func (s *signer) String() string {
	return fmt.Sprintf("%s du %s (PKCS#11)", s.u.keyDesc(), s.u.tokenDesc())
}

// Sign implements crypto.Signer: the token signs digest (PKCS#1 v1.5 for
// RSA unless opts is *rsa.PSSOptions; ASN.1 DER for ECDSA, as
// crypto/ecdsa). A signature that fails because the token or its session
// went away is tried once more on a newly opened context; if that fails
// too, the error wraps ErrUnavailable.
func (s *signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var lastErr error
	for range 2 {
		t, key, err := s.current()
		if err != nil {
			return nil, err
		}
		sig, err := key.Sign(rand, digest, opts)
		if err == nil {
			return sig, nil
		}
		if !gone(err) {
			return nil, fmt.Errorf("signature par la %s du %s : %w", s.u.keyDesc(), s.u.tokenDesc(), err)
		}
		lastErr = err
		s.forget(t)
	}
	return nil, fmt.Errorf("%w : signature par la %s du %s : %v", ErrUnavailable, s.u.keyDesc(), s.u.tokenDesc(), lastErr)
}

// current returns the context and key to sign with, opening them again
// if the context was closed.
func (s *signer) current() (*tokenCtx, crypto11.Signer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t != nil && !s.t.isClosed() {
		return s.t, s.key, nil
	}
	t, key, err := s.open()
	if err != nil {
		return nil, nil, err
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(s.pub) {
		return nil, nil, fmt.Errorf("%w : la %s du %s n'est plus celle qui a été chargée", ErrNotFound, s.u.keyDesc(), s.u.tokenDesc())
	}
	s.t, s.key = t, key
	return t, key, nil
}

// forget drops t, after an error showing it unusable.
func (s *signer) forget(t *tokenCtx) {
	s.mu.Lock()
	if s.t == t {
		s.t, s.key = nil, nil
	}
	s.mu.Unlock()
	drop(s.k, t)
}

// open gets the token's context and finds the key on it.
func (s *signer) open() (*tokenCtx, crypto11.Signer, error) {
	t, err := openToken(s.u, s.pin)
	if err != nil {
		return nil, nil, err
	}
	var label []byte
	if s.u.ObjectLabel != "" {
		label = []byte(s.u.ObjectLabel)
	}
	keys, err := t.ctx.FindKeyPairs(s.u.ID, label)
	if err != nil {
		return nil, nil, s.tokenErr(t, "recherche de la clé", err)
	}
	switch len(keys) {
	case 0:
		return nil, nil, fmt.Errorf("%w : %s absente du %s (ou sans clé publique ni certificat de même CKA_ID)", ErrNotFound, s.u.keyDesc(), s.u.tokenDesc())
	case 1:
		return t, keys[0], nil
	default:
		return nil, nil, fmt.Errorf("%w : %d clés du %s correspondent à la %s ; précisez object= et id=", ErrInvalidURI, len(keys), s.u.tokenDesc(), s.u.keyDesc())
	}
}

// tokenErr reports a failed operation on an open token: unavailable, and
// the context dropped if the failure shows it unusable.
func (s *signer) tokenErr(t *tokenCtx, what string, err error) error {
	if gone(err) {
		drop(s.k, t)
	}
	return fmt.Errorf("%w : %s sur le %s : %v", ErrUnavailable, what, s.u.tokenDesc(), err)
}

// gone reports whether err shows the context unusable: token removed,
// session or login lost, library finalised, context closed.
func gone(err error) bool {
	var p11 pkcs11.Error
	if errors.As(err, &p11) {
		switch p11 {
		case pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_DEVICE_MEMORY,
			pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
			pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
			pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
			pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_OBJECT_HANDLE_INVALID,
			pkcs11.CKR_GENERAL_ERROR:
			return true
		}
		return false
	}
	// crypto11's own errors for a closed context.
	msg := err.Error()
	return strings.Contains(msg, "context is closed") || strings.Contains(msg, "closed Context")
}
