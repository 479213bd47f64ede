package revocation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"

	"github.com/etatcivil/etatcivil/internal/devpki"
)

// DevChain is a development chain, root → intermediate → end entity,
// whose certificates name a Responder at Base: the end entity its OCSP
// responder (Base/ocsp) and the intermediate's CRL (Base/crl/inter.crl),
// the intermediate the root's CRL (Base/crl/root.crl). Labelled NE PAS
// UTILISER EN PRODUCTION.
type DevChain struct {
	Base                       string
	Root, Inter, Leaf          *x509.Certificate
	RootKey, InterKey, LeafKey *ecdsa.PrivateKey
	prefix                     string
}

// DevOptions shape the end entity of a DevChain.
type DevOptions struct {
	// CommonName of the end entity.
	CommonName string
	// ExtKeyUsage of the end entity (none for a seal; timeStamping,
	// critical, for a TSA).
	TimeStamping bool
	// NotAfter of the end entity (3 years if zero).
	NotAfter time.Time
	// Prefix names the chain's CRLs (PREFIX-root.crl, PREFIX-inter.crl),
	// so that several chains share a Responder; none if empty.
	Prefix string
}

// NewDevChain creates a DevChain naming the responder at base.
func NewDevChain(base string, opt DevOptions) (*DevChain, error) {
	now := time.Now().Add(-time.Hour)
	c := &DevChain{Base: base, prefix: opt.Prefix}
	if c.prefix != "" {
		c.prefix += "-"
	}
	var err error
	gen := func() *ecdsa.PrivateKey {
		k, e := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if e != nil {
			err = e
		}
		return k
	}
	c.RootKey, c.InterKey, c.LeafKey = gen(), gen(), gen()
	if err != nil {
		return nil, err
	}
	name := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{"etatcivil DÉVELOPPEMENT"}, Country: []string{"FR"}}
	}
	issue := func(tmpl, parent *x509.Certificate, pub, key any) *x509.Certificate {
		if err != nil {
			return nil
		}
		der, e := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
		if e != nil {
			err = e
			return nil
		}
		cert, e := x509.ParseCertificate(der)
		if e != nil {
			err = e
		}
		return cert
	}
	rootTmpl := &x509.Certificate{SerialNumber: devpki.Serial(), Subject: name("etatcivil DÉVELOPPEMENT — racine, NE PAS UTILISER EN PRODUCTION"),
		NotBefore: now, NotAfter: now.AddDate(10, 0, 0), KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLen: 1}
	c.Root = issue(rootTmpl, rootTmpl, c.RootKey.Public(), c.RootKey)
	c.Inter = issue(&x509.Certificate{SerialNumber: devpki.Serial(), Subject: name("etatcivil DÉVELOPPEMENT — intermédiaire, NE PAS UTILISER EN PRODUCTION"),
		NotBefore: now, NotAfter: now.AddDate(8, 0, 0), KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		CRLDistributionPoints: []string{base + "/crl/" + c.prefix + "root.crl"}}, c.Root, c.InterKey.Public(), c.RootKey)
	leaf := &x509.Certificate{SerialNumber: devpki.Serial(), Subject: name(opt.CommonName), NotBefore: now, NotAfter: opt.NotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, BasicConstraintsValid: true,
		OCSPServer: []string{base + "/ocsp"}, CRLDistributionPoints: []string{base + "/crl/" + c.prefix + "inter.crl"}}
	if leaf.NotAfter.IsZero() {
		leaf.NotAfter = now.AddDate(3, 0, 0)
	}
	if opt.TimeStamping {
		// RFC 3161 wants the timeStamping usage alone and critical, which
		// ExtKeyUsage does not mark: the extension is written by hand.
		eku, e := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
		if e != nil {
			return nil, e
		}
		leaf.KeyUsage = x509.KeyUsageDigitalSignature
		leaf.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}}
	}
	c.Leaf = issue(leaf, c.Inter, c.LeafKey.Public(), c.InterKey)
	if err != nil {
		return nil, fmt.Errorf("revocation: dev chain: %w", err)
	}
	return c, nil
}

// Chain is leaf, intermediate, root.
func (c *DevChain) Chain() []*x509.Certificate { return []*x509.Certificate{c.Leaf, c.Inter, c.Root} }

// Authorities are the chain's two authorities, as a Responder serves them.
func (c *DevChain) Authorities() []Authority {
	return []Authority{{Name: c.prefix + "root", Cert: c.Root, Key: c.RootKey}, {Name: c.prefix + "inter", Cert: c.Inter, Key: c.InterKey}}
}
