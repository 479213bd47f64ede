package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testPKI is a root, an intermediate CA, and keys for TSA certificates.
type testPKI struct {
	root     *x509.Certificate
	rootKey  crypto.Signer
	roots    *x509.CertPool
	inter    *x509.Certificate
	interKey crypto.Signer
	ecKey    *ecdsa.PrivateKey
	rsaKey   *rsa.PrivateKey
}

var (
	pkiOnce sync.Once
	pki     testPKI
	pkiErr  error
)

// getPKI returns a PKI shared by the tests (RSA key generation is slow
// under -race).
func getPKI(t *testing.T) testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		pkiErr = func() error {
			rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			tmpl := &x509.Certificate{
				SerialNumber:          big.NewInt(1),
				Subject:               pkix.Name{CommonName: "Racine de test etatcivil TSA", Organization: []string{"etatcivil test"}},
				NotBefore:             time.Now().Add(-48 * time.Hour),
				NotAfter:              time.Now().Add(48 * time.Hour),
				KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
				BasicConstraintsValid: true,
				IsCA:                  true,
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rootKey.Public(), rootKey)
			if err != nil {
				return err
			}
			if pki.root, err = x509.ParseCertificate(der); err != nil {
				return err
			}
			pki.rootKey = rootKey
			pki.roots = x509.NewCertPool()
			pki.roots.AddCert(pki.root)

			interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			itmpl := &x509.Certificate{
				SerialNumber:          big.NewInt(2),
				Subject:               pkix.Name{CommonName: "Intermédiaire de test etatcivil TSA", Organization: []string{"etatcivil test"}},
				NotBefore:             time.Now().Add(-47 * time.Hour),
				NotAfter:              time.Now().Add(47 * time.Hour),
				KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
				BasicConstraintsValid: true,
				IsCA:                  true,
			}
			der, err = x509.CreateCertificate(rand.Reader, itmpl, pki.root, interKey.Public(), rootKey)
			if err != nil {
				return err
			}
			if pki.inter, err = x509.ParseCertificate(der); err != nil {
				return err
			}
			pki.interKey = interKey
			if pki.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
				return err
			}
			pki.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
			return err
		}()
	})
	if pkiErr != nil {
		t.Fatalf("test PKI: %v", pkiErr)
	}
	return pki
}

// ekuMode says how issueTSA writes the extended key usage.
type ekuMode int

const (
	ekuCritical    ekuMode = iota // timeStamping, critical: a valid TSA
	ekuNone                       // no extended key usage
	ekuNonCritical                // timeStamping, not critical
	ekuExtra                      // timeStamping and serverAuth, critical
)

var serialCounter = struct {
	sync.Mutex
	n int64
}{n: 100}

// issueTSA returns a certificate for key signed by the root (or by the
// intermediate when byInter), valid from notBefore for validFor.
func issueTSA(t *testing.T, key crypto.Signer, mode ekuMode, byInter bool, notBefore time.Time, validFor time.Duration) *x509.Certificate {
	t.Helper()
	p := getPKI(t)
	serialCounter.Lock()
	serialCounter.n++
	serial := big.NewInt(serialCounter.n)
	serialCounter.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "TSA de test etatcivil", Organization: []string{"etatcivil test"}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	ekus := []asn1.ObjectIdentifier{oidKPTimeStamping}
	if mode == ekuExtra {
		ekus = append(ekus, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1})
	}
	if mode != ekuNone {
		v, err := asn1.Marshal(ekus)
		must(t, err)
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidExtKeyUsage, Critical: mode != ekuNonCritical, Value: v}}
	}
	parent, parentKey := p.root, p.rootKey
	if byInter {
		parent, parentKey = p.inter, p.interKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	must(t, err)
	c, err := x509.ParseCertificate(der)
	must(t, err)
	return c
}

// newServer returns a valid ECDSA TSA signed by the root.
func newServer(t *testing.T) *Server {
	t.Helper()
	p := getPKI(t)
	return &Server{Signer: p.ecKey, Cert: issueTSA(t, p.ecKey, ekuCritical, false, time.Now().Add(-time.Hour), 24*time.Hour)}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func digestOf(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

// serveRequest posts a DER TimeStampReq to h and returns the parsed
// response.
func serveRequest(t *testing.T, h http.Handler, req []byte) (statusInfo, []byte) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(req))
	r.Header.Set("Content-Type", queryMediaType)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != replyMediaType {
		t.Fatalf("Content-Type %q", ct)
	}
	st, token, err := parseResponse(w.Body.Bytes())
	must(t, err)
	return st, token
}

// issueToken has s time-stamp digest (SHA-256, certReq, with a nonce) and
// returns the token, failing the test if s does not grant it.
func issueToken(t *testing.T, s *Server, digest []byte) []byte {
	t.Helper()
	req, err := marshalRequest(crypto.SHA256, digest, big.NewInt(42), true)
	must(t, err)
	st, token := serveRequest(t, s, req)
	if st.status != statusGranted || token == nil {
		t.Fatalf("status %s, token %d bytes", st, len(token))
	}
	return token
}

// writePEM writes certs as PEM to dir/name and returns the path.
func writePEM(t *testing.T, dir, name string, certs ...*x509.Certificate) string {
	t.Helper()
	var buf bytes.Buffer
	for _, c := range certs {
		must(t, pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	path := filepath.Join(dir, name)
	must(t, os.WriteFile(path, buf.Bytes(), 0o644))
	return path
}

// post sends body to url as a time-stamp query and returns the reply.
func post(t *testing.T, url string, body []byte) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", queryMediaType)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %s: %s", resp.Status, out)
	}
	return out
}
