package seal

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
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"github.com/etatcivil/etatcivil/internal/pdfgen"
)

// testPKI is a root and seal keys (RSA and ECDSA) it certified.
type testPKI struct {
	crlURL  string // served by crlServer: pdfcpu calls a signature valid only with revocation data
	root    *x509.Certificate
	rootKey crypto.Signer
	roots   *x509.CertPool
	rsa     *Key
	ecdsa   *Key
}

var (
	pkiOnce sync.Once
	pki     testPKI
)

// getPKI returns a PKI shared by the tests (RSA key generation is slow
// under -race).
func getPKI(t *testing.T) testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		// Never closed: it lives as long as the test binary.
		srv := httptest.NewServer(http.HandlerFunc(serveCRL))
		pki.crlURL = srv.URL + "/root.crl"
		rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, err)
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "Racine de test etatcivil", Organization: []string{"etatcivil test"}},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rootKey.Public(), rootKey)
		must(t, err)
		root, err := x509.ParseCertificate(der)
		must(t, err)
		pki.root, pki.rootKey = root, rootKey
		pki.roots = x509.NewCertPool()
		pki.roots.AddCert(root)

		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		must(t, err)
		pki.rsa = &Key{Signer: rsaKey, Chain: []*x509.Certificate{issue(t, "Cachet RSA Mairie de Rodez", rsaKey.Public(), 2), root}, Label: "rsa"}
		ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, err)
		pki.ecdsa = &Key{Signer: ecKey, Chain: []*x509.Certificate{issue(t, "Cachet ECDSA Mairie de Millau", ecKey.Public(), 3), root}, Label: "ecdsa"}
	})
	if pki.root == nil {
		t.Fatal("test PKI setup failed")
	}
	return pki
}

// issue makes a seal certificate for pub signed by the test root.
func issue(t *testing.T, cn string, pub crypto.PublicKey, serial int64) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"etatcivil test"}, Country: []string{"FR"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
		CRLDistributionPoints: []string{pki.crlURL},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pki.root, pub, pki.rootKey)
	must(t, err)
	c, err := x509.ParseCertificate(der)
	must(t, err)
	return c
}

// serveCRL serves an empty CRL of the test root.
func serveCRL(w http.ResponseWriter, _ *http.Request) {
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: time.Now().Add(-time.Hour),
		NextUpdate: time.Now().Add(24 * time.Hour),
	}, pki.root, pki.rootKey)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	_, _ = w.Write(crl)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// scan returns a small two-page pdfgen scan.
func scan(seed int64) []byte {
	return pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: seed, Pages: 2, DPI: 100})
}

var sealTime = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// sealBytes seals in with key and returns the output, checking the
// announced length.
func sealBytes(t *testing.T, in []byte, key *Key) []byte {
	t.Helper()
	rc, n, err := New().Seal(context.Background(), bytes.NewReader(in), int64(len(in)), key, Options{
		Reason:   "Archivage de l'acte (copie intégrale)",
		Location: "Rodez",
		Time:     sealTime,
	})
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	out, err := io.ReadAll(rc)
	must(t, err)
	must(t, rc.Close())
	if int64(len(out)) != n {
		t.Fatalf("Seal announced %d bytes, returned %d", n, len(out))
	}
	return out
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sealed.pdf")
	must(t, os.WriteFile(p, b, 0o644))
	return p
}

// pdfsig runs poppler's pdfsig on b and returns its output.
func pdfsig(t *testing.T, b []byte) string {
	t.Helper()
	const bin = "/usr/bin/pdfsig"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found: install poppler-utils (apt-get install poppler-utils)", bin)
	}
	// pdfsig checks trust against the default NSS database, which does
	// not know our test root ("issuer isn't Trusted"); we check the
	// signature's integrity, which it reports apart.
	out, _ := exec.Command(bin, writeTemp(t, b)).CombinedOutput()
	return string(out)
}

var sigValidRe = regexp.MustCompile(`Signature Validation: Signature is Valid\.`)

// pdfsigValid asserts pdfsig reports exactly n signatures, all valid.
func pdfsigValid(t *testing.T, b []byte, n int) string {
	t.Helper()
	out := pdfsig(t, b)
	if got := len(sigValidRe.FindAllString(out, -1)); got != n || strings.Count(out, "Signature #") != n {
		t.Fatalf("pdfsig: want %d valid signatures, got %d:\n%s", n, got, out)
	}
	return out
}

func qpdfCheck(t *testing.T, b []byte) {
	t.Helper()
	const bin = "/usr/bin/qpdf"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found: install qpdf", bin)
	}
	out, err := exec.Command(bin, "--check", writeTemp(t, b)).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("WARNING")) || !bytes.Contains(out, []byte("No syntax or stream encoding errors found")) {
		t.Fatalf("qpdf --check: %v\n%s", err, out)
	}
}

// pdfcpuMu serialises use of pdfcpu's process-wide trusted certificate
// directory.
var pdfcpuMu sync.Mutex

// pdfcpuSignatures validates every signature of b with pdfcpu, trusting
// root (installed as the only certificate of pdfcpu's trust store).
func pdfcpuSignatures(t *testing.T, b []byte, root *x509.Certificate) []*model.SignatureValidationResult {
	t.Helper()
	pdfcpuMu.Lock()
	defer pdfcpuMu.Unlock()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "root.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644))
	old := model.TrustedCertDir
	model.TrustedCertDir = dir
	pdfcpu.InvalidateCertificatePool()
	defer func() {
		model.TrustedCertDir = old
		pdfcpu.InvalidateCertificatePool()
	}()
	conf := model.NewDefaultConfiguration()
	conf.AllowedRevocationHosts = []string{"127.0.0.1"} // the test CRL server
	res, err := api.ValidateSignaturesRaw(bytes.NewReader(b), true, conf)
	if err != nil {
		t.Fatalf("pdfcpu ValidateSignatures: %v", err)
	}
	return res
}

// opensslCMSVerify extracts the CMS of the last signature of b and the
// bytes its ByteRange covers, and has OpenSSL verify the detached
// signature over them against root: an independent check of our CMS.
func opensslCMSVerify(t *testing.T, b []byte, root *x509.Certificate) {
	t.Helper()
	m := regexp.MustCompile(`/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]`).FindAllSubmatch(b, -1)
	if len(m) == 0 {
		t.Fatal("pas de /ByteRange")
	}
	var br [4]int
	for i := range br {
		v, err := strconv.Atoi(string(m[len(m)-1][i+1]))
		must(t, err)
		br[i] = v
	}
	content := append(append([]byte{}, b[br[0]:br[0]+br[1]]...), b[br[2]:br[2]+br[3]]...)
	// /Contents is the DER padded with zeros: keep exactly the first
	// ASN.1 element (trimming "0"s would eat a signature ending in 0).
	padded, err := hex.DecodeString(string(b[br[0]+br[1]+1 : br[2]-1]))
	must(t, err)
	var elem asn1.RawValue
	rest, err := asn1.Unmarshal(padded, &elem)
	must(t, err)
	der := padded[:len(padded)-len(rest)]
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "content.bin"), content, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "cms.der"), der, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "root.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644))
	out, err := exec.Command("openssl", "cms", "-verify", "-binary", "-purpose", "any", "-inform", "DER", "-in", filepath.Join(dir, "cms.der"),
		"-content", filepath.Join(dir, "content.bin"), "-CAfile", filepath.Join(dir, "root.pem"), "-out", os.DevNull).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verification successful") {
		t.Fatalf("openssl cms -verify : %v\n%s", err, out)
	}
}
