package seal

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// Key is a hub's seal: a signer and its certificate chain (leaf first).
//
// The Signer may be a software key (LoadPEM, LoadPKCS12) or, later, a
// PKCS#11 handle on an HSM or smart card: sealing only calls Sign.
type Key struct {
	// Signer signs with the private key of Chain[0].
	Signer crypto.Signer
	// Chain is the signer's certificate followed by its issuers; the root
	// may be included. All of it goes into the signature.
	Chain []*x509.Certificate
	// Label names the key in logs and audit records (the leaf's common name
	// by default).
	Label string
}

// Certificate returns the signer's certificate, Chain[0].
func (k *Key) Certificate() *x509.Certificate { return k.Chain[0] }

// LoadPEM loads a certificate chain (PEM "CERTIFICATE" blocks, leaf first)
// and a private key (PEM PKCS#8 "PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY" or
// SEC 1 "EC PRIVATE KEY"; encrypted PEM is refused). It checks that the key
// matches the leaf certificate.
func LoadPEM(certPEM, keyPEM []byte) (*Key, error) {
	var chain []*x509.Certificate
	for rest := certPEM; ; {
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
			return nil, fmt.Errorf("%w: certificate %d: %w", ErrInvalidKey, len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: no CERTIFICATE block in certificate file", ErrInvalidKey)
	}

	var priv any
	for rest := keyPEM; priv == nil; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%w: no private key block in key file", ErrInvalidKey)
		}
		if _, encrypted := block.Headers["DEK-Info"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, fmt.Errorf("%w: encrypted private keys are not supported; use a PKCS#12 file", ErrInvalidKey)
		}
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			priv, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			priv, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalidKey, block.Type, err)
		}
	}
	return newKey(priv, chain)
}

// LoadPKCS12 loads a PKCS#12 (.p12, .pfx) file protected by password: its
// key, its certificate, and the CA certificates it carries.
func LoadPKCS12(data []byte, password string) (*Key, error) {
	priv, leaf, cas, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, fmt.Errorf("%w: PKCS#12: %w", ErrInvalidKey, err)
	}
	return newKey(priv, append([]*x509.Certificate{leaf}, cas...))
}

// newKey checks that priv is a supported signer matching chain[0].
func newKey(priv any, chain []*x509.Certificate) (*Key, error) {
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: private key %T cannot sign", ErrInvalidKey, priv)
	}
	switch signer.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
	default:
		return nil, fmt.Errorf("%w: unsupported key type %T (want RSA or ECDSA)", ErrInvalidKey, priv)
	}
	if _, _, err := signatureAlgorithm(signer.Public()); err != nil {
		return nil, err
	}
	leaf := chain[0]
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(signer.Public()) {
		return nil, fmt.Errorf("%w: private key does not match certificate %q", ErrInvalidKey, leaf.Subject.CommonName)
	}
	label := leaf.Subject.CommonName
	if label == "" {
		label = leaf.Subject.String()
	}
	return &Key{Signer: signer, Chain: chain, Label: label}, nil
}
