//go:build cgo

package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"

	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/seal"
)

// SoftHSM2 (Debian package softhsm2) provides the token of the tests.
const (
	softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"
	softhsmUtil   = "/usr/bin/softhsm2-util"
	tokenLabel    = "etatcivil"
	// userPIN is distinctive so that a leak into an error text cannot be
	// a coincidence (temporary paths are full of digits).
	userPIN = "pin-secret-etatcivil"
	soPIN   = "so-secret-etatcivil"
)

// Objects on the token.
var (
	rsaID, rsaLabel       = []byte{0x0a, 0x01}, "seal-rsa"    // certificate on the token
	ecID, ecLabel         = []byte{0x0a, 0x02}, "seal-ec"     // certificate in ecChainPEM only
	noCertID, noCertLabel = []byte{0x0a, 0x03}, "seal-nocert" // no certificate anywhere
)

// env is the shared test environment: a SoftHSM2 token holding an RSA
// and an ECDSA key, a test CA that certified them, and software keys of
// the same kind certified by the same CA.
type env struct {
	dir     string
	pinFile string
	root    *x509.Certificate
	rootKey crypto.Signer
	roots   *x509.CertPool

	rsaCert, ecCert *x509.Certificate
	ecChainPEM      string // ECDSA leaf then root
	rootPEM         string // root only
	rsaLeafPEM      string // RSA leaf only

	softRSA, softEC *seal.Key // software keys, same CA
}

var (
	envOnce sync.Once
	envErr  error
	theEnv  env
	envDir  string // removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	_ = Close()
	if envDir != "" {
		_ = os.RemoveAll(envDir)
	}
	os.Exit(code)
}

// getEnv sets up the token once for the test binary.
func getEnv(t *testing.T) *env {
	t.Helper()
	envOnce.Do(func() { envErr = setupEnv() })
	if envErr != nil {
		t.Fatalf("SoftHSM test environment: %v", envErr)
	}
	return &theEnv
}

func setupEnv() error {
	for _, p := range []string{softhsmModule, softhsmUtil} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s not found: the tests need SoftHSM2 (apt-get install -y softhsm2)", p)
		}
	}
	dir, err := os.MkdirTemp("", "etatcivil-hsm-test-")
	if err != nil {
		return err
	}
	envDir = dir
	e := &theEnv
	e.dir = dir
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"), 0o600); err != nil {
		return err
	}
	// Read by SoftHSM at C_Initialize: before any module is opened.
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return err
	}
	out, err := exec.Command(softhsmUtil, "--init-token", "--free", "--label", tokenLabel, "--pin", userPIN, "--so-pin", soPIN).CombinedOutput()
	if err != nil {
		return fmt.Errorf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	e.pinFile = filepath.Join(dir, "pin.txt")
	if err := os.WriteFile(e.pinFile, []byte(userPIN+"\n"), 0o600); err != nil {
		return err
	}

	// Test CA, in Go.
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Racine de test HSM etatcivil", Organization: []string{"etatcivil test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rootKey.Public(), rootKey)
	if err != nil {
		return err
	}
	if e.root, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	e.rootKey = rootKey
	e.roots = x509.NewCertPool()
	e.roots.AddCert(e.root)

	// Keys generated on the token, with a setup context closed afterwards
	// (so that no login of it lingers when the tests log in).
	ctx, err := crypto11.Configure(&crypto11.Config{Path: softhsmModule, TokenLabel: tokenLabel, Pin: userPIN})
	if err != nil {
		return fmt.Errorf("crypto11.Configure: %w", err)
	}
	defer func() { _ = ctx.Close() }()
	rsaKey, err := ctx.GenerateRSAKeyPairWithLabel(rsaID, []byte(rsaLabel), 2048)
	if err != nil {
		return fmt.Errorf("RSA key on the token: %w", err)
	}
	ecKey, err := ctx.GenerateECDSAKeyPairWithLabel(ecID, []byte(ecLabel), elliptic.P256())
	if err != nil {
		return fmt.Errorf("ECDSA key on the token: %w", err)
	}
	if _, err := ctx.GenerateECDSAKeyPairWithLabel(noCertID, []byte(noCertLabel), elliptic.P256()); err != nil {
		return fmt.Errorf("ECDSA key on the token: %w", err)
	}
	if e.rsaCert, err = e.issue("Cachet HSM RSA Mairie de Rodez", rsaKey.Public(), 10); err != nil {
		return err
	}
	if e.ecCert, err = e.issue("Cachet HSM ECDSA Mairie de Millau", ecKey.Public(), 11); err != nil {
		return err
	}
	if err := ctx.ImportCertificateWithLabel(rsaID, []byte(rsaLabel), e.rsaCert); err != nil {
		return fmt.Errorf("import certificate: %w", err)
	}
	if e.ecChainPEM, err = e.writePEM("ec-chain.pem", e.ecCert, e.root); err != nil {
		return err
	}
	if e.rootPEM, err = e.writePEM("root.pem", e.root); err != nil {
		return err
	}
	if e.rsaLeafPEM, err = e.writePEM("rsa-leaf.pem", e.rsaCert); err != nil {
		return err
	}

	// Software equivalents, through seal.LoadPEM.
	softRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if e.softRSA, err = e.softKey("Cachet logiciel RSA Mairie de Rodez", softRSA, 20); err != nil {
		return err
	}
	softEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if e.softEC, err = e.softKey("Cachet logiciel ECDSA Mairie de Millau", softEC, 21); err != nil {
		return err
	}
	return nil
}

// issue certifies pub as a seal by the test CA.
func (e *env) issue(cn string, pub crypto.PublicKey, serial int64) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"etatcivil test"}, Country: []string{"FR"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, e.root, pub, e.rootKey)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", cn, err)
	}
	return x509.ParseCertificate(der)
}

func certsPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func (e *env) writePEM(name string, certs ...*x509.Certificate) (string, error) {
	p := filepath.Join(e.dir, name)
	return p, os.WriteFile(p, certsPEM(certs...), 0o644)
}

// softKey makes a software seal certified by the test CA, loaded as
// LoadPEM would from files.
func (e *env) softKey(cn string, priv crypto.Signer, serial int64) (*seal.Key, error) {
	cert, err := e.issue(cn, priv.Public(), serial)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return seal.LoadPEM(certsPEM(cert, e.root), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// uri builds a PKCS#11 URI: path attributes, then query attributes
// (values percent-encoded here).
func uri(path, query map[string]string) string {
	enc := func(m map[string]string, order []string, sep string) string {
		var parts []string
		for _, k := range order {
			if v, ok := m[k]; ok {
				parts = append(parts, k+"="+url.PathEscape(v))
			}
		}
		return strings.Join(parts, sep)
	}
	s := "pkcs11:" + enc(path, []string{"token", "serial", "slot-id", "object", "id", "type"}, ";")
	if len(query) > 0 {
		s += "?" + enc(query, []string{"module-path", "module-name", "pin-source", "pin-value", "cert-path"}, "&")
	}
	return s
}

// pctID percent-encodes every byte of id, as RFC 7512 writes id=.
func pctID(id []byte) string {
	var b strings.Builder
	for _, c := range id {
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// rsaURI names the RSA key by label, its certificate on the token, the PIN
// in a file.
func (e *env) rsaURI() string {
	return uri(map[string]string{"token": tokenLabel, "object": rsaLabel, "type": "private"},
		map[string]string{"module-path": softhsmModule, "pin-source": "file:" + e.pinFile})
}

// ecURI names the ECDSA key by id, its certificate and chain in a PEM file,
// the PIN in the URI.
func (e *env) ecURI() string {
	return "pkcs11:token=" + tokenLabel + ";id=" + pctID(ecID) + ";type=private" +
		"?module-path=" + softhsmModule + "&pin-value=" + url.PathEscape(userPIN) + "&cert-path=" + e.ecChainPEM
}

var sealTime = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func testPDF() []byte { return pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 1, DPI: 72}) }

// sealPDF seals in with key.
func sealPDF(t *testing.T, in []byte, key *seal.Key) []byte {
	t.Helper()
	out, err := trySeal(in, key)
	if err != nil {
		t.Fatalf("Seal with %s: %v", key.Label, err)
	}
	return out
}

func trySeal(in []byte, key *seal.Key) ([]byte, error) {
	rc, n, err := seal.New().Seal(context.Background(), bytes.NewReader(in), int64(len(in)), key, seal.Options{
		Reason:   "Archivage de l'acte (copie intégrale)",
		Location: "Rodez",
		Time:     sealTime,
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }()
	out, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if int64(len(out)) != n {
		return nil, fmt.Errorf("Seal announced %d bytes, returned %d", n, len(out))
	}
	return out, nil
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sealed.pdf")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pdfsig runs poppler's pdfsig on b, requires one valid CAdES signature,
// and returns its output.
func pdfsig(t *testing.T, b []byte) string {
	t.Helper()
	const bin = "/usr/bin/pdfsig"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found: install poppler-utils (apt-get install poppler-utils)", bin)
	}
	// pdfsig checks trust against NSS's database, which does not know the
	// test root; the signature's integrity is reported apart.
	out, _ := exec.Command(bin, writeTemp(t, b)).CombinedOutput()
	s := string(out)
	if strings.Count(s, "Signature #") != 1 || !strings.Contains(s, "Signature Validation: Signature is Valid.") || !strings.Contains(s, "ETSI.CAdES.detached") {
		t.Fatalf("pdfsig: want one valid ETSI.CAdES.detached signature:\n%s", s)
	}
	return s
}

func qpdfCheck(t *testing.T, b []byte) {
	t.Helper()
	const bin = "/usr/bin/qpdf"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found: install qpdf", bin)
	}
	out, err := exec.Command(bin, "--check", writeTemp(t, b)).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("No syntax or stream encoding errors found")) {
		t.Fatalf("qpdf --check: %v\n%s", err, out)
	}
}
