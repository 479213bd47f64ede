//go:build cgo

package hsm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/etatcivil/etatcivil/internal/seal"
)

func mustLoad(t *testing.T, u string) *seal.Key {
	t.Helper()
	key, err := Load(u)
	if err != nil {
		t.Fatalf("Load(%s): %v", Redact(u), err)
	}
	return key
}

// checkSealed verifies out with seal.Verify, pdfsig and qpdf, and returns
// seal.Verify's Info and pdfsig's output.
func checkSealed(t *testing.T, e *env, out []byte, signer *x509.Certificate) (seal.Info, string) {
	t.Helper()
	info, err := seal.Verify(out, e.roots)
	if err != nil {
		t.Fatalf("seal.Verify: %v", err)
	}
	if info.Signer != signer.Subject.String() {
		t.Fatalf("signer %q, want %q", info.Signer, signer.Subject.String())
	}
	if !info.Certificate.Equal(signer) {
		t.Fatalf("signer certificate %q is not the key's", info.Certificate.Subject)
	}
	ps := pdfsig(t, out)
	if !strings.Contains(ps, signer.Subject.CommonName) {
		t.Fatalf("pdfsig does not name the signer %q:\n%s", signer.Subject.CommonName, ps)
	}
	qpdfCheck(t, out)
	return info, ps
}

// sameResults requires the verifications of a token seal and of a
// software seal to agree on everything but the signer.
func sameResults(t *testing.T, hsmInfo, softInfo seal.Info, hsmSig, softSig string) {
	t.Helper()
	type common struct {
		SubFilter, Reason, Location, Level string
		SigningTime                        string
		Timestamped                        bool
	}
	c := func(i seal.Info) common {
		return common{i.SubFilter, i.Reason, i.Location, i.Level, i.SigningTime.UTC().String(), i.TimestampToken != nil}
	}
	if h, s := c(hsmInfo), c(softInfo); h != s {
		t.Fatalf("verification differs:\nHSM:      %+v\nsoftware: %+v", h, s)
	}
	if hsmInfo.SubFilter != "ETSI.CAdES.detached" || hsmInfo.Level != "B-B" {
		t.Fatalf("SubFilter %q level %q, want ETSI.CAdES.detached B-B", hsmInfo.SubFilter, hsmInfo.Level)
	}
	// pdfsig: same report apart from the signer's names and the byte
	// ranges (the /Name entry differs in length).
	norm := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, "Common Name") || strings.Contains(l, "Distinguished Name") || strings.Contains(l, "Signed Ranges") || strings.Contains(l, ".pdf") {
				continue
			}
			keep = append(keep, strings.TrimSpace(l))
		}
		return strings.Join(keep, "\n")
	}
	if h, s := norm(hsmSig), norm(softSig); h != s {
		t.Fatalf("pdfsig reports differ:\nHSM:\n%s\nsoftware:\n%s", h, s)
	}
}

func TestLoadRSATokenCertificate(t *testing.T) {
	e := getEnv(t)
	key := mustLoad(t, e.rsaURI())
	if _, ok := key.Signer.Public().(*rsa.PublicKey); !ok {
		t.Fatalf("public key %T, want *rsa.PublicKey", key.Signer.Public())
	}
	if _, ok := key.Signer.(*rsa.PrivateKey); ok {
		t.Fatal("the signer is a software key")
	}
	if len(key.Chain) != 1 || !key.Chain[0].Equal(e.rsaCert) {
		t.Fatalf("chain %v, want the token's certificate alone", subjects(key.Chain))
	}
	if key.Label != "Cachet HSM RSA Mairie de Rodez" {
		t.Fatalf("label %q", key.Label)
	}

	in := testPDF()
	out := sealPDF(t, in, key)
	checkSealed(t, e, out, e.rsaCert)

	// With the root added from cert-path, the signature carries the same
	// chain as the software key's (leaf and root): pdfsig then reports the
	// same, including the certificate validation line (with the leaf
	// alone it says "issuer is unknown" rather than "isn't Trusted").
	withRoot := mustLoad(t, uri(map[string]string{"token": tokenLabel, "object": rsaLabel},
		map[string]string{"module-path": softhsmModule, "pin-source": e.pinFile, "cert-path": e.rootPEM}))
	hsmInfo, hsmSig := checkSealed(t, e, sealPDF(t, in, withRoot), e.rsaCert)
	soft := sealPDF(t, in, e.softRSA)
	softInfo, softSig := checkSealed(t, e, soft, e.softRSA.Certificate())
	sameResults(t, hsmInfo, softInfo, hsmSig, softSig)
}

func TestLoadECDSACertPath(t *testing.T) {
	e := getEnv(t)
	key := mustLoad(t, e.ecURI())
	if _, ok := key.Signer.Public().(*ecdsa.PublicKey); !ok {
		t.Fatalf("public key %T, want *ecdsa.PublicKey", key.Signer.Public())
	}
	if len(key.Chain) != 2 || !key.Chain[0].Equal(e.ecCert) || !key.Chain[1].Equal(e.root) {
		t.Fatalf("chain %v, want ECDSA leaf then root from cert-path", subjects(key.Chain))
	}

	in := testPDF()
	out := sealPDF(t, in, key)
	hsmInfo, hsmSig := checkSealed(t, e, out, e.ecCert)
	soft := sealPDF(t, in, e.softEC)
	softInfo, softSig := checkSealed(t, e, soft, e.softEC.Certificate())
	sameResults(t, hsmInfo, softInfo, hsmSig, softSig)
}

// The leaf on the token, the chain from cert-path.
func TestLoadTokenLeafFileChain(t *testing.T) {
	e := getEnv(t)
	u := uri(map[string]string{"token": tokenLabel, "object": rsaLabel},
		map[string]string{"module-path": softhsmModule, "pin-value": userPIN, "cert-path": e.rootPEM})
	key := mustLoad(t, u)
	if len(key.Chain) != 2 || !key.Chain[0].Equal(e.rsaCert) || !key.Chain[1].Equal(e.root) {
		t.Fatalf("chain %v, want token leaf then root", subjects(key.Chain))
	}
	checkSealed(t, e, sealPDF(t, testPDF(), key), e.rsaCert)
}

// The certificate on the token is found by the key's CKA_ID when the URI
// names the key by id alone.
func TestLoadByIDTokenCertificate(t *testing.T) {
	e := getEnv(t)
	u := "pkcs11:token=" + tokenLabel + ";id=" + pctID(rsaID) + "?module-path=" + softhsmModule + "&pin-source=" + e.pinFile
	key := mustLoad(t, u)
	if len(key.Chain) != 1 || !key.Chain[0].Equal(e.rsaCert) {
		t.Fatalf("chain %v", subjects(key.Chain))
	}
}

func subjects(chain []*x509.Certificate) []string {
	var s []string
	for _, c := range chain {
		s = append(s, c.Subject.CommonName)
	}
	return s
}

func TestLoadErrors(t *testing.T) {
	e := getEnv(t)
	const wrongPIN = "wrong-pin-4242-etatcivil"
	garbage := filepath.Join(t.TempDir(), "libgarbage.so")
	if err := os.WriteFile(garbage, []byte("not a shared library"), 0o644); err != nil {
		t.Fatal(err)
	}
	q := func(extra map[string]string) map[string]string {
		m := map[string]string{"module-path": softhsmModule, "pin-value": userPIN}
		for k, v := range extra {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	tok := func(object string) map[string]string {
		return map[string]string{"token": tokenLabel, "object": object}
	}
	cases := []struct {
		name   string
		uri    string
		want   error
		notErr error
		pins   []string // must not appear in the error
	}{
		{"wrong PIN", uri(tok(rsaLabel), q(map[string]string{"pin-value": wrongPIN})), ErrPIN, ErrUnavailable, []string{wrongPIN}},
		{"PIN file missing", uri(tok(rsaLabel), q(map[string]string{"pin-value": "", "pin-source": "file:" + filepath.Join(e.dir, "nope.txt")})), ErrPIN, ErrUnavailable, nil},
		{"unknown object", uri(tok("seal-unknown"), q(nil)), ErrNotFound, ErrUnavailable, []string{userPIN}},
		{"unknown id", "pkcs11:token=" + tokenLabel + ";id=%7F%7F?module-path=" + softhsmModule + "&pin-value=" + userPIN, ErrNotFound, ErrUnavailable, []string{userPIN}},
		{"no certificate", uri(tok(noCertLabel), q(nil)), ErrNotFound, nil, []string{userPIN}},
		{"cert-path missing", uri(tok(ecLabel), q(map[string]string{"cert-path": filepath.Join(e.dir, "absent.pem")})), ErrNotFound, nil, []string{userPIN}},
		{"certificate of another key", uri(tok(ecLabel), q(map[string]string{"cert-path": e.rsaLeafPEM})), seal.ErrInvalidKey, ErrNotFound, []string{userPIN}},
		{"missing module", uri(tok(rsaLabel), q(map[string]string{"module-path": "/usr/lib/nowhere/libabsent-pkcs11.so"})), ErrUnavailable, nil, []string{userPIN}},
		{"not a module", uri(tok(rsaLabel), q(map[string]string{"module-path": garbage})), ErrUnavailable, nil, []string{userPIN}},
		{"unknown token", uri(map[string]string{"token": "no-such-token", "object": rsaLabel}, q(nil)), ErrUnavailable, nil, []string{userPIN}},
		{"not a URI", "/etc/etatcivil/seal.key", ErrInvalidURI, nil, nil},
		{"type cert", uri(map[string]string{"token": tokenLabel, "object": rsaLabel, "type": "cert"}, q(nil)), ErrInvalidURI, nil, []string{userPIN}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Each case from a fresh process state: no logged-in context
			// that would make a wrong PIN look right.
			if err := Close(); err != nil {
				t.Fatal(err)
			}
			key, err := Load(c.uri)
			if err == nil {
				t.Fatalf("Load succeeded (%s), want %v", key.Label, c.want)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %q does not wrap %q", err, c.want)
			}
			if c.notErr != nil && errors.Is(err, c.notErr) {
				t.Fatalf("error %q wraps %q", err, c.notErr)
			}
			for _, p := range c.pins {
				if strings.Contains(err.Error(), p) {
					t.Fatalf("error text contains the PIN: %q", err)
				}
			}
			t.Logf("%s: %v", c.name, err)
		})
	}
}

// A wrong PIN leaves no context behind; a right one then works; a wrong
// one is then refused although the token is logged in.
func TestPINAgainstOpenContext(t *testing.T) {
	e := getEnv(t)
	if err := Close(); err != nil {
		t.Fatal(err)
	}
	wrong := uri(map[string]string{"token": tokenLabel, "object": rsaLabel},
		map[string]string{"module-path": softhsmModule, "pin-value": "another-wrong-pin"})
	if _, err := Load(wrong); !errors.Is(err, ErrPIN) {
		t.Fatalf("wrong PIN: %v, want ErrPIN", err)
	}
	if n := cacheLen(); n != 0 {
		t.Fatalf("%d contexts cached after a failed login", n)
	}
	mustLoad(t, e.rsaURI())
	_, err := Load(wrong)
	if !errors.Is(err, ErrPIN) || strings.Contains(err.Error(), "another-wrong-pin") {
		t.Fatalf("wrong PIN with a logged-in token: %v, want ErrPIN without the PIN", err)
	}
}

func cacheLen() int {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	return len(cache)
}

func TestConcurrentSeal(t *testing.T) {
	e := getEnv(t)
	if err := Close(); err != nil {
		t.Fatal(err)
	}
	in := testPDF()
	for _, tc := range []struct {
		name string
		uri  string
		cert *x509.Certificate
	}{{"RSA", e.rsaURI(), e.rsaCert}, {"ECDSA", e.ecURI(), e.ecCert}} {
		t.Run(tc.name, func(t *testing.T) {
			key := mustLoad(t, tc.uri)
			const n = 8
			outs := make([][]byte, n)
			errs := make([]error, n)
			var start, wg sync.WaitGroup
			start.Add(1)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					start.Wait()
					outs[i], errs[i] = trySeal(in, key)
				}()
			}
			start.Done()
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("goroutine %d: %v", i, errs[i])
				}
				if _, err := seal.Verify(outs[i], e.roots); err != nil {
					t.Fatalf("goroutine %d: Verify: %v", i, err)
				}
			}
			pdfsig(t, outs[n-1])
		})
	}
	// Both keys are on the same token: one context.
	if n := cacheLen(); n != 1 {
		t.Fatalf("%d contexts cached for one token, want 1", n)
	}
}

// Concurrent Loads of a token not yet open share one context.
func TestConcurrentLoadOneContext(t *testing.T) {
	e := getEnv(t)
	if err := Close(); err != nil {
		t.Fatal(err)
	}
	const n = 8
	keys := make([]*seal.Key, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := e.rsaURI()
			if i%2 == 1 {
				u = e.ecURI()
			}
			keys[i], errs[i] = Load(u)
		}()
	}
	wg.Wait()
	var ctx *tokenCtx
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Load %d: %v", i, errs[i])
		}
		s := keys[i].Signer.(*signer)
		if ctx == nil {
			ctx = s.t
		} else if s.t != ctx {
			t.Fatalf("key %d has its own context", i)
		}
	}
	if n := cacheLen(); n != 1 {
		t.Fatalf("%d contexts cached, want 1", n)
	}
}

// A key loaded before Close still signs: it opens the token again.
func TestSignAfterClose(t *testing.T) {
	e := getEnv(t)
	key := mustLoad(t, e.ecURI())
	in := testPDF()
	first := sealPDF(t, in, key)
	if err := Close(); err != nil {
		t.Fatal(err)
	}
	if n := cacheLen(); n != 0 {
		t.Fatalf("%d contexts cached after Close", n)
	}
	second := sealPDF(t, in, key)
	for _, out := range [][]byte{first, second} {
		if _, err := seal.Verify(out, e.roots); err != nil {
			t.Fatal(err)
		}
	}
	if n := cacheLen(); n != 1 {
		t.Fatalf("%d contexts cached after signing again, want 1", n)
	}
	// ECDSA signatures are randomised: the two seals differ.
	if bytes.Equal(first, second) {
		t.Fatal("two ECDSA seals are identical")
	}
}

// A context that fails under a signer (here: closed behind its back, as a
// removed token would be) is replaced, and the signature still made.
func TestSignRecoversFromDeadContext(t *testing.T) {
	e := getEnv(t)
	key := mustLoad(t, e.rsaURI())
	s := key.Signer.(*signer)
	s.mu.Lock()
	dead := s.t
	s.mu.Unlock()
	// Close the crypto11 context without marking our entry closed; nil
	// ctx so that drop does not close it a second time (crypto11 counts
	// module references).
	if err := dead.ctx.Close(); err != nil {
		t.Fatal(err)
	}
	dead.ctx = nil
	out := sealPDF(t, testPDF(), key)
	if _, err := seal.Verify(out, e.roots); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	now := s.t
	s.mu.Unlock()
	if now == dead || !dead.isClosed() {
		t.Fatal("the dead context was not replaced")
	}
	cacheMu.Lock()
	for _, c := range cache {
		if c == dead {
			t.Error("the dead context is still cached")
		}
	}
	cacheMu.Unlock()
}
