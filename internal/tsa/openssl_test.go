package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// opensslPath returns the openssl binary; the interoperability checks are
// part of the suite, so its absence fails the test.
func opensslPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is required for the interoperability tests: %v", err)
	}
	return path
}

// openssl runs openssl with args in dir and returns its combined output
// and whether it exited successfully.
func openssl(t *testing.T, dir string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(opensslPath(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("openssl %v: %v", args, err)
	}
	return string(out), err == nil
}

func requireVerified(t *testing.T, what, out string, ok bool) {
	t.Helper()
	if !ok || !strings.Contains(out, "Verification: OK") {
		t.Errorf("%s: OpenSSL did not verify:\n%s", what, out)
	}
}

func requireRefused(t *testing.T, what, out string, ok bool) {
	t.Helper()
	if ok || strings.Contains(out, "Verification: OK") {
		t.Errorf("%s: OpenSSL verified:\n%s", what, out)
	}
}

// TestOpenSSLVerifiesOurTokens has OpenSSL check the tokens of the
// development TSA obtained by Client, and of an RSA TSA behind an
// intermediate.
func TestOpenSSLVerifiesOurTokens(t *testing.T) {
	dir := t.TempDir()
	srv, err := DevTSA(dir)
	must(t, err)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	data := []byte("valeur de signature du cachet, à horodater\n")
	must(t, os.WriteFile(filepath.Join(dir, "data.bin"), data, 0o644))
	sum := sha256.Sum256(data)
	token, err := (&Client{URL: ts.URL}).Timestamp(context.Background(), sum[:], crypto.SHA256)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "token.der"), token, 0o644))
	roots, err := DevRoots(dir)
	must(t, err)
	if _, err := Verify(token, sum[:], crypto.SHA256, roots); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	// Against the digest, then the data; the dev files (with their
	// banners) serve as CA file and untrusted certificates.
	out, ok := openssl(t, dir, "ts", "-verify", "-digest", hex.EncodeToString(sum[:]), "-token_in", "-in", "token.der",
		"-CAfile", DevTSARootFile, "-untrusted", DevTSAFile)
	requireVerified(t, "-digest", out, ok)
	out, ok = openssl(t, dir, "ts", "-verify", "-data", "data.bin", "-token_in", "-in", "token.der",
		"-CAfile", DevTSARootFile, "-untrusted", DevTSAFile)
	requireVerified(t, "-data", out, ok)

	// The same check fails for another digest and for another root:
	// the OpenSSL verdict means something.
	other := sha256.Sum256([]byte("autre chose"))
	out, ok = openssl(t, dir, "ts", "-verify", "-digest", hex.EncodeToString(other[:]), "-token_in", "-in", "token.der",
		"-CAfile", DevTSARootFile, "-untrusted", DevTSAFile)
	requireRefused(t, "another digest", out, ok)
	p := getPKI(t)
	writePEM(t, dir, "other-root.pem", p.root)
	out, ok = openssl(t, dir, "ts", "-verify", "-digest", hex.EncodeToString(sum[:]), "-token_in", "-in", "token.der",
		"-CAfile", "other-root.pem", "-untrusted", DevTSAFile)
	requireRefused(t, "another root", out, ok)

	// RSA signer behind an intermediate sent in the token.
	rsaSrv := &Server{Signer: p.rsaKey, Cert: issueTSA(t, p.rsaKey, ekuCritical, true, time.Now().Add(-time.Hour), 24*time.Hour),
		Chain: []*x509.Certificate{p.inter}}
	rsaToken := issueToken(t, rsaSrv, sum[:])
	must(t, os.WriteFile(filepath.Join(dir, "rsa-token.der"), rsaToken, 0o644))
	writePEM(t, dir, "test-root.pem", p.root)
	out, ok = openssl(t, dir, "ts", "-verify", "-digest", hex.EncodeToString(sum[:]), "-token_in", "-in", "rsa-token.der",
		"-CAfile", "test-root.pem")
	requireVerified(t, "RSA behind an intermediate", out, ok)

	// A TSA certificate without the critical timeStamping EKU is refused
	// by OpenSSL too.
	badSrv := &Server{Signer: p.ecKey, Cert: issueTSA(t, p.ecKey, ekuNonCritical, false, time.Now().Add(-time.Hour), 24*time.Hour)}
	must(t, os.WriteFile(filepath.Join(dir, "bad-token.der"), issueToken(t, badSrv, sum[:]), 0o644))
	out, ok = openssl(t, dir, "ts", "-verify", "-digest", hex.EncodeToString(sum[:]), "-token_in", "-in", "bad-token.der",
		"-CAfile", "test-root.pem")
	requireRefused(t, "non-critical EKU", out, ok)
}

// TestOpenSSLQueries has OpenSSL write requests, our server answer them,
// and OpenSSL check the replies against its requests.
func TestOpenSSLQueries(t *testing.T) {
	dir := t.TempDir()
	srv, err := DevTSA(dir)
	must(t, err)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	roots, err := DevRoots(dir)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "data.bin"), []byte("acte de naissance n° 42\n"), 0o644))

	for _, tc := range []struct {
		name  string
		query []string
		hash  crypto.Hash
	}{
		{"sha256 cert", []string{"-sha256", "-cert"}, crypto.SHA256},
		{"sha512 cert", []string{"-sha512", "-cert"}, crypto.SHA512},
		{"sha256 no cert no nonce", []string{"-sha256", "-no_nonce"}, crypto.SHA256},
		{"sha384 policy", []string{"-sha384", "-cert", "-tspolicy", DevPolicy.String()}, crypto.SHA384},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"ts", "-query", "-data", "data.bin", "-out", "req.tsq"}, tc.query...)
			if out, ok := openssl(t, dir, args...); !ok {
				t.Fatalf("openssl ts -query: %s", out)
			}
			req, err := os.ReadFile(filepath.Join(dir, "req.tsq"))
			must(t, err)
			reply := post(t, ts.URL, req)
			must(t, os.WriteFile(filepath.Join(dir, "reply.tsr"), reply, 0o644))
			out, ok := openssl(t, dir, "ts", "-verify", "-in", "reply.tsr", "-queryfile", "req.tsq",
				"-CAfile", DevTSARootFile, "-untrusted", DevTSAFile)
			requireVerified(t, "reply", out, ok)

			// And our own parser agrees.
			st, token, err := parseResponse(reply)
			must(t, err)
			if st.status != statusGranted {
				t.Fatalf("status %s", st)
			}
			data, err := os.ReadFile(filepath.Join(dir, "data.bin"))
			must(t, err)
			h := tc.hash.New()
			h.Write(data)
			_, err = Verify(token, h.Sum(nil), tc.hash, roots)
			if strings.Contains(tc.name, "no cert") {
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("Verify of a token without certificate: %v", err)
				}
			} else if err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}

	// OpenSSL refuses a reply to another query (nonce and imprint differ).
	must(t, os.WriteFile(filepath.Join(dir, "other.bin"), []byte("autre acte\n"), 0o644))
	if out, ok := openssl(t, dir, "ts", "-query", "-data", "other.bin", "-sha256", "-cert", "-out", "other.tsq"); !ok {
		t.Fatalf("openssl ts -query: %s", out)
	}
	out, ok := openssl(t, dir, "ts", "-verify", "-in", "reply.tsr", "-queryfile", "other.tsq",
		"-CAfile", DevTSARootFile, "-untrusted", DevTSAFile)
	requireRefused(t, "reply to another query", out, ok)
}

// TestVerifyOpenSSLTokens has OpenSSL act as the TSA (RSA and ECDSA keys,
// signing-certificate and signing-certificate-v2, accuracy with millis and
// micros, ordering, TSA name) and checks its tokens with Verify.
func TestVerifyOpenSSLTokens(t *testing.T) {
	p := getPKI(t)
	dir := t.TempDir()
	writePEM(t, dir, "root.pem", p.root)
	must(t, os.WriteFile(filepath.Join(dir, "data.bin"), []byte("données\n"), 0o644))
	data, err := os.ReadFile(filepath.Join(dir, "data.bin"))
	must(t, err)
	sum := sha256.Sum256(data)
	if out, ok := openssl(t, dir, "ts", "-query", "-data", "data.bin", "-sha256", "-cert", "-out", "req.tsq"); !ok {
		t.Fatalf("openssl ts -query: %s", out)
	}

	for _, tc := range []struct {
		name   string
		key    crypto.Signer
		essAlg string
	}{
		{"ECDSA signing-certificate-v2", p.ecKey, "sha256"},
		{"RSA signing-certificate", p.rsaKey, "sha1"},
		{"RSA signing-certificate-v2 sha512", p.rsaKey, "sha512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := issueTSA(t, tc.key, ekuCritical, true, time.Now().Add(-time.Hour), 24*time.Hour)
			writePEM(t, dir, "tsa.pem", cert)
			writePEM(t, dir, "chain.pem", p.inter)
			keyDER, err := x509.MarshalPKCS8PrivateKey(tc.key)
			must(t, err)
			must(t, os.WriteFile(filepath.Join(dir, "tsa.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
			must(t, os.WriteFile(filepath.Join(dir, "serial"), []byte("0A\n"), 0o644))
			conf := `[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = ./serial
signer_cert = ./tsa.pem
certs = ./chain.pem
signer_key = ./tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:500, microsecs:100
clock_precision_digits = 3
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = ` + tc.essAlg + "\n"
			must(t, os.WriteFile(filepath.Join(dir, "tsa.cnf"), []byte(conf), 0o644))
			if out, ok := openssl(t, dir, "ts", "-reply", "-config", "tsa.cnf", "-queryfile", "req.tsq", "-out", "reply.tsr"); !ok {
				t.Fatalf("openssl ts -reply: %s", out)
			}
			reply, err := os.ReadFile(filepath.Join(dir, "reply.tsr"))
			must(t, err)
			st, token, err := parseResponse(reply)
			must(t, err)
			if st.status != statusGranted {
				t.Fatalf("status %s", st)
			}
			info, err := Verify(token, sum[:], crypto.SHA256, p.roots)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if (info.Serial.Int64() != 10 && info.Serial.Int64() != 11) || !info.Policy.Equal(DevPolicy) || info.Accuracy != 1500100*time.Microsecond || info.Nonce == nil {
				t.Errorf("info %+v", info)
			}
			if d := time.Since(info.Time); d < -time.Minute || d > time.Minute {
				t.Errorf("genTime %v", info.Time)
			}
			// The ESS attribute is the one asked for.
			essOID := oidAttrSigningCertV2
			if tc.essAlg == "sha1" {
				essOID = oidAttrSigningCert
			}
			oidDER, err := asn1.Marshal(essOID)
			must(t, err)
			if !bytes.Contains(token, oidDER) {
				t.Errorf("token without attribute %v", essOID)
			}
			other := sha256.Sum256([]byte("autre"))
			if _, err := Verify(token, other[:], crypto.SHA256, p.roots); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify with another digest: %v", err)
			}
		})
	}
}
