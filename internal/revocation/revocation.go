// Package revocation gathers the validation material a long-term seal
// (PAdES B-LT) embeds: for each certificate of a chain but its root, an
// OCSP response from the responder its authority information access
// names, or else a CRL from its distribution point, each checked against
// the issuer before it is kept. Answers are cached until their next
// update (bounded in time and in count), so a batch of thousands of acts
// sealed with one certificate asks the responder once.
//
// Responder serves OCSP and CRLs for development authorities and tests.
package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

var (
	// ErrUnavailable: a responder or distribution point did not answer
	// usably; sealing may be retried later.
	ErrUnavailable = errors.New("revocation: validation service unavailable")
	// ErrRevoked: a certificate of the chain is revoked; sealing with it
	// must stop.
	ErrRevoked = errors.New("revocation: certificate revoked")
	// ErrNoSource: a certificate names neither an OCSP responder nor a
	// CRL distribution point; no B-LT seal can be made with it.
	ErrNoSource = errors.New("revocation: certificate names no OCSP responder and no CRL distribution point")
)

// Material is what a DSS dictionary carries, DER-encoded: certificates,
// OCSP responses (OCSPResponse, as served) and CRLs.
type Material struct {
	Certs [][]byte
	OCSPs [][]byte
	CRLs  [][]byte
}

// Add appends m2's items to m, without duplicates.
func (m *Material) Add(m2 Material) {
	add := func(dst *[][]byte, items [][]byte) {
		for _, it := range items {
			dup := false
			for _, d := range *dst {
				if bytes.Equal(d, it) {
					dup = true
					break
				}
			}
			if !dup {
				*dst = append(*dst, it)
			}
		}
	}
	add(&m.Certs, m2.Certs)
	add(&m.OCSPs, m2.OCSPs)
	add(&m.CRLs, m2.CRLs)
}

// Fetcher collects validation material over HTTP, with a cache.
type Fetcher struct {
	// Client makes the requests; a client with a 10 s timeout if nil.
	Client *http.Client
	// MaxAge bounds how long an answer is reused, even if its next update
	// is later (default 1 hour).
	MaxAge time.Duration
	// MaxEntries bounds the cache (default 1024 answers).
	MaxEntries int
	// Now is the clock (time.Now if nil).
	Now func() time.Time

	mu    sync.Mutex
	cache map[string]cached
	// revokedSerials are the serials each cached CRL lists.
	revokedSerials map[string]map[string]time.Time
}

func (f *Fetcher) revokedIn(key string, c *x509.Certificate) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.revokedSerials[key][c.SerialNumber.String()]
	return at, ok
}

type cached struct {
	der   []byte
	until time.Time
}

// Response bodies are bounded: an OCSP response is small; a CRL of a
// large authority may reach megabytes.
const (
	maxOCSP = 64 << 10
	maxCRL  = 16 << 20
)

func (f *Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// Collect returns the validation material of chain (leaf first, each
// certificate issued by the next, ending at a root): every certificate,
// and for each one but the root an OCSP response or a CRL proving it is
// not revoked now.
func (f *Fetcher) Collect(ctx context.Context, chain []*x509.Certificate) (Material, error) {
	var m Material
	for i, c := range chain {
		m.Certs = append(m.Certs, c.Raw)
		if i == len(chain)-1 {
			if !bytes.Equal(c.RawIssuer, c.RawSubject) {
				return m, fmt.Errorf("revocation: chain of %q does not end at a root", chain[0].Subject.CommonName)
			}
			break
		}
		issuer := chain[i+1]
		switch {
		case len(c.OCSPServer) > 0:
			der, err := f.ocsp(ctx, c, issuer)
			if err != nil {
				return m, err
			}
			m.OCSPs = append(m.OCSPs, der)
		case len(c.CRLDistributionPoints) > 0:
			der, err := f.crl(ctx, c, issuer)
			if err != nil {
				return m, err
			}
			m.CRLs = append(m.CRLs, der)
		default:
			return m, fmt.Errorf("%w: %q", ErrNoSource, c.Subject.CommonName)
		}
	}
	return m, nil
}

func (f *Fetcher) lookup(key string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.cache[key]
	if !ok || !f.now().Before(e.until) {
		return nil
	}
	return e.der
}

func (f *Fetcher) store(key string, der []byte, next time.Time) {
	maxAge := f.MaxAge
	if maxAge <= 0 {
		maxAge = time.Hour
	}
	until := f.now().Add(maxAge)
	if !next.IsZero() && next.Before(until) {
		until = next
	}
	limit := f.MaxEntries
	if limit <= 0 {
		limit = 1024
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cache == nil {
		f.cache = map[string]cached{}
	}
	if len(f.cache) >= limit {
		// Expired entries first; if none, the one expiring soonest.
		now := f.now()
		var soonest string
		for k, e := range f.cache {
			if !now.Before(e.until) {
				delete(f.cache, k)
				delete(f.revokedSerials, k)
			} else if soonest == "" || e.until.Before(f.cache[soonest].until) {
				soonest = k
			}
		}
		if len(f.cache) >= limit {
			delete(f.cache, soonest)
			delete(f.revokedSerials, soonest)
		}
	}
	f.cache[key] = cached{der: der, until: until}
}

func (f *Fetcher) get(ctx context.Context, method, url string, body []byte, contentType string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, url, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: HTTP %d", ErrUnavailable, url, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, url, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s: answer larger than %d bytes", ErrUnavailable, url, limit)
	}
	return b, nil
}

// ocsp asks c's responders in turn for c's status and keeps a good,
// current answer signed by issuer (or a responder it delegated to).
func (f *Fetcher) ocsp(ctx context.Context, c, issuer *x509.Certificate) ([]byte, error) {
	key := "ocsp|" + string(issuer.RawSubjectPublicKeyInfo) + "|" + c.SerialNumber.String()
	if der := f.lookup(key); der != nil {
		return der, nil
	}
	reqDER, err := ocsp.CreateRequest(c, issuer, &ocsp.RequestOptions{})
	if err != nil {
		return nil, fmt.Errorf("revocation: OCSP request: %w", err)
	}
	var last error
	for _, url := range c.OCSPServer {
		der, err := f.get(ctx, http.MethodPost, url, reqDER, "application/ocsp-request", maxOCSP)
		if err != nil {
			last = err
			continue
		}
		resp, err := ocsp.ParseResponseForCert(der, c, issuer)
		if err != nil {
			last = fmt.Errorf("%w: %s: %v", ErrUnavailable, url, err)
			continue
		}
		now := f.now()
		switch {
		case resp.Status == ocsp.Revoked:
			return nil, fmt.Errorf("%w: %q (OCSP, %s)", ErrRevoked, c.Subject.CommonName, resp.RevokedAt.Format(time.RFC3339))
		case resp.Status != ocsp.Good:
			last = fmt.Errorf("%w: %s: status %d", ErrUnavailable, url, resp.Status)
			continue
		case resp.ThisUpdate.After(now.Add(5 * time.Minute)), !resp.NextUpdate.IsZero() && resp.NextUpdate.Before(now):
			last = fmt.Errorf("%w: %s: answer outside its validity (%s – %s)", ErrUnavailable, url, resp.ThisUpdate, resp.NextUpdate)
			continue
		}
		f.store(key, der, resp.NextUpdate)
		return der, nil
	}
	return nil, last
}

// crl fetches c's CRL from its distribution points in turn and keeps a
// current one signed by issuer that does not list c.
func (f *Fetcher) crl(ctx context.Context, c, issuer *x509.Certificate) ([]byte, error) {
	var last error
	for _, url := range c.CRLDistributionPoints {
		// A cached CRL was checked for this certificate's issuer; the
		// serial is looked up again (another certificate may share it).
		key := "crl|" + url + "|" + string(issuer.RawSubjectPublicKeyInfo)
		if der := f.lookup(key); der != nil {
			if at, revoked := f.revokedIn(key, c); revoked {
				return nil, fmt.Errorf("%w: %q (CRL, %s)", ErrRevoked, c.Subject.CommonName, at.Format(time.RFC3339))
			}
			return der, nil
		}
		der, err := f.get(ctx, http.MethodGet, url, nil, "", maxCRL)
		if err != nil {
			last = err
			continue
		}
		list, err := x509.ParseRevocationList(der)
		if err != nil {
			last = fmt.Errorf("%w: %s: %v", ErrUnavailable, url, err)
			continue
		}
		if err := list.CheckSignatureFrom(issuer); err != nil {
			last = fmt.Errorf("%w: %s: CRL not signed by %q: %v", ErrUnavailable, url, issuer.Subject.CommonName, err)
			continue
		}
		if now := f.now(); !list.NextUpdate.IsZero() && list.NextUpdate.Before(now) {
			last = fmt.Errorf("%w: %s: CRL expired on %s", ErrUnavailable, url, list.NextUpdate)
			continue
		}
		revoked := make(map[string]time.Time, len(list.RevokedCertificateEntries))
		for _, r := range list.RevokedCertificateEntries {
			revoked[r.SerialNumber.String()] = r.RevocationTime
		}
		f.store(key, der, list.NextUpdate)
		f.mu.Lock()
		if f.revokedSerials == nil {
			f.revokedSerials = map[string]map[string]time.Time{}
		}
		f.revokedSerials[key] = revoked
		f.mu.Unlock()
		if at, ok := revoked[c.SerialNumber.String()]; ok {
			return nil, fmt.Errorf("%w: %q (CRL, %s)", ErrRevoked, c.Subject.CommonName, at.Format(time.RFC3339))
		}
		return der, nil
	}
	return nil, last
}
