package revocation

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Authority is a certification authority the Responder answers for.
type Authority struct {
	// Name is the CRL's path: /crl/NAME.crl.
	Name string
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Responder serves OCSP (POST /ocsp, and GET /ocsp/BASE64) and CRLs (GET
// /crl/NAME.crl) for development authorities and tests: answers valid one
// hour, signed by the authority itself. Revoke marks a serial revoked.
type Responder struct {
	Authorities []Authority
	// Now is the clock (time.Now if nil).
	Now func() time.Time

	mu      sync.Mutex
	revoked map[string]time.Time // issuer name + serial → when
	hits    map[string]int
}

func (r *Responder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Revoke marks the certificate with serial, issued by issuer, revoked.
func (r *Responder) Revoke(issuer *x509.Certificate, serial *big.Int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revoked == nil {
		r.revoked = map[string]time.Time{}
	}
	r.revoked[string(issuer.RawSubject)+"|"+serial.String()] = r.now()
}

// Hits returns how many OCSP and CRL answers were served ("ocsp", "crl").
func (r *Responder) Hits(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[kind]
}

func (r *Responder) hit(kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hits == nil {
		r.hits = map[string]int{}
	}
	r.hits[kind]++
}

func (r *Responder) revokedAt(issuer *x509.Certificate, serial *big.Int) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.revoked[string(issuer.RawSubject)+"|"+serial.String()]
	return t, ok
}

// ServeHTTP implements http.Handler.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case req.URL.Path == "/ocsp" && req.Method == http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(req.Body, 16<<10))
		if err != nil {
			http.Error(w, "requête illisible", http.StatusBadRequest)
			return
		}
		r.serveOCSP(w, body)
	case strings.HasPrefix(req.URL.Path, "/ocsp/") && req.Method == http.MethodGet:
		body, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(req.URL.Path, "/ocsp/"))
		if err != nil {
			http.Error(w, "requête illisible", http.StatusBadRequest)
			return
		}
		r.serveOCSP(w, body)
	case strings.HasPrefix(req.URL.Path, "/crl/") && strings.HasSuffix(req.URL.Path, ".crl") && req.Method == http.MethodGet:
		r.serveCRL(w, strings.TrimSuffix(strings.TrimPrefix(req.URL.Path, "/crl/"), ".crl"))
	default:
		http.NotFound(w, req)
	}
}

// keyHash is the SHA-1 (or hash's) digest of cert's public key bits, as
// OCSP requests name issuers.
func keyHash(cert *x509.Certificate, hash crypto.Hash) []byte {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki); err != nil || !hash.Available() {
		return nil
	}
	h := hash.New()
	h.Write(spki.PublicKey.RightAlign())
	return h.Sum(nil)
}

func (r *Responder) serveOCSP(w http.ResponseWriter, body []byte) {
	q, err := ocsp.ParseRequest(body)
	if err != nil {
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	for _, a := range r.Authorities {
		if string(keyHash(a.Cert, q.HashAlgorithm)) != string(q.IssuerKeyHash) {
			continue
		}
		now := r.now()
		tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: q.SerialNumber,
			ThisUpdate: now.Add(-time.Minute).Truncate(time.Second), NextUpdate: now.Add(time.Hour).Truncate(time.Second)}
		if at, ok := r.revokedAt(a.Cert, q.SerialNumber); ok {
			tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, at.Truncate(time.Second), ocsp.KeyCompromise
		}
		der, err := ocsp.CreateResponse(a.Cert, a.Cert, tmpl, a.Key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		r.hit("ocsp")
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(der)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(ocsp.UnauthorizedErrorResponse)
}

func (r *Responder) serveCRL(w http.ResponseWriter, name string) {
	for _, a := range r.Authorities {
		if a.Name != name {
			continue
		}
		now := r.now()
		list := &x509.RevocationList{Number: big.NewInt(now.Unix()), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
		r.mu.Lock()
		for k, at := range r.revoked {
			issuer, serial, _ := strings.Cut(k, "|")
			if issuer != string(a.Cert.RawSubject) {
				continue
			}
			n, ok := new(big.Int).SetString(serial, 10)
			if ok {
				list.RevokedCertificateEntries = append(list.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: at})
			}
		}
		r.mu.Unlock()
		der, err := x509.CreateRevocationList(rand.Reader, list, a.Cert, a.Key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		r.hit("crl")
		w.Header().Set("Content-Type", "application/pkix-crl")
		_, _ = w.Write(der)
		return
	}
	http.NotFound(w, nil)
}
