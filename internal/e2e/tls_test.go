package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLS: with ETATCIVIL_TLS_CERT and ETATCIVIL_TLS_KEY, serve answers
// HTTPS with the certificate given, TLS 1.2 at least: a TLS 1.1 client
// and a plain-HTTP client are refused. A renewed certificate written over
// the files is served without a restart; a pair that does not load (key
// not matching, garbage) leaves the previous one in service.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	write := func(serial int64) *x509.Certificate {
		t.Helper()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "etatcivil test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		// The certificate first, its key after: between the two, the
		// pair does not match.
		if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1200 * time.Millisecond)
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		return cert
	}
	first := write(1)
	s := startServer(t, "ETATCIVIL_TLS_CERT="+certFile, "ETATCIVIL_TLS_KEY="+keyFile)
	base := "https://" + strings.TrimPrefix(s.url, "http://")
	roots := x509.NewCertPool()
	roots.AddCert(first)
	get := func(cfg *tls.Config, url string) (*http.Response, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
		return c.Get(url)
	}
	resp, err := get(&tls.Config{RootCAs: roots}, base+"/api/v1/registries")
	if err != nil {
		t.Fatalf("HTTPS : %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("HTTPS : %d, TLS %+v ; attendu 401 (sans jeton) en TLS ≥ 1.2", resp.StatusCode, resp.TLS)
	}
	if _, err := get(&tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11}, base+"/api/v1/registries"); err == nil {
		t.Error("un client TLS 1.1 a été accepté")
	}
	if resp, err := http.Get(s.url + "/api/v1/registries"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("HTTP en clair sur le port TLS : %d, attendu 400", resp.StatusCode)
		}
	}
	served := func() *big.Int {
		t.Helper()
		resp, err := get(&tls.Config{InsecureSkipVerify: true}, base+"/api/v1/registries") //nolint:gosec // reads which certificate is served
		if err != nil {
			t.Fatalf("HTTPS : %v", err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber
	}
	// Garbage over the key: the first certificate stays.
	if err := os.WriteFile(keyFile, []byte("pas une clé"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := served(); n.Int64() != 1 {
		t.Fatalf("clé illisible : certificat n° %d servi, attendu l'ancien (1)", n)
	}
	write(2)
	deadline := time.Now().Add(10 * time.Second)
	for served().Int64() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("le certificat renouvelé n'est pas servi sans redémarrage")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
