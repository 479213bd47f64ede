package revocation_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etatcivil/etatcivil/internal/revocation"
)

// devResponder starts a Responder and a DevChain naming it.
func devResponder(t *testing.T) (*revocation.Responder, *revocation.DevChain, *httptest.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	chain, err := revocation.NewDevChain(base, revocation.DevOptions{CommonName: "Cachet de test"})
	if err != nil {
		t.Fatal(err)
	}
	r := &revocation.Responder{Authorities: chain.Authorities()}
	srv := httptest.NewUnstartedServer(r)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return r, chain, srv
}

func openssl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s : %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestCollect: the material of a chain is its certificates, an OCSP
// response for the end entity and the root's CRL for the intermediate,
// which openssl parses (and verifies: the OCSP answer against the
// intermediate, the CRL against the root); a second collection is served
// from the cache.
func TestCollect(t *testing.T) {
	t.Parallel()
	resp, chain, _ := devResponder(t)
	f := &revocation.Fetcher{}
	m, err := f.Collect(context.Background(), chain.Chain())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Certs) != 3 || len(m.OCSPs) != 1 || len(m.CRLs) != 1 {
		t.Fatalf("matériel : %d certificats, %d OCSP, %d CRL", len(m.Certs), len(m.OCSPs), len(m.CRLs))
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pem := func(c *x509.Certificate) string {
		p := write(c.SerialNumber.String()+".der", c.Raw)
		out := p + ".pem"
		openssl(t, "x509", "-inform", "DER", "-in", p, "-out", out)
		return out
	}
	inter, root, leaf := pem(chain.Inter), pem(chain.Root), pem(chain.Leaf)
	out := openssl(t, "ocsp", "-respin", write("r.ocsp", m.OCSPs[0]), "-issuer", inter, "-cert", leaf, "-VAfile", inter, "-no_nonce")
	if !strings.Contains(out, ": good") || !strings.Contains(out, "Response verify OK") {
		t.Fatalf("openssl ocsp :\n%s", out)
	}
	out = openssl(t, "crl", "-inform", "DER", "-in", write("root.crl", m.CRLs[0]), "-CAfile", root, "-noout", "-text")
	if !strings.Contains(out, "verify OK") || !strings.Contains(out, "No Revoked Certificates") {
		t.Fatalf("openssl crl :\n%s", out)
	}
	hits := resp.Hits("ocsp") + resp.Hits("crl")
	if _, err := f.Collect(context.Background(), chain.Chain()); err != nil || resp.Hits("ocsp")+resp.Hits("crl") != hits {
		t.Fatalf("cache : %v, %d requêtes au lieu de %d", err, resp.Hits("ocsp")+resp.Hits("crl"), hits)
	}
}

// TestCollectRefuses: a revoked end entity or intermediate is
// ErrRevoked; a responder that does not answer is ErrUnavailable; a
// certificate naming no source is ErrNoSource; a chain not ending at a
// root is refused.
func TestCollectRefuses(t *testing.T) {
	t.Parallel()
	resp, chain, srv := devResponder(t)
	resp.Revoke(chain.Inter, chain.Leaf.SerialNumber)
	if _, err := (&revocation.Fetcher{}).Collect(context.Background(), chain.Chain()); !errors.Is(err, revocation.ErrRevoked) {
		t.Fatalf("cachet révoqué (OCSP) : %v", err)
	}
	resp2, chain2, _ := devResponder(t)
	resp2.Revoke(chain2.Root, chain2.Inter.SerialNumber)
	if _, err := (&revocation.Fetcher{}).Collect(context.Background(), chain2.Chain()); !errors.Is(err, revocation.ErrRevoked) {
		t.Fatalf("intermédiaire révoqué (CRL) : %v", err)
	}
	// An answer signed by another authority is not accepted.
	_, other, _ := devResponder(t)
	forged := []*x509.Certificate{chain2.Leaf, other.Inter, other.Root}
	if _, err := (&revocation.Fetcher{}).Collect(context.Background(), forged); !errors.Is(err, revocation.ErrUnavailable) {
		t.Fatalf("réponse d'une autre autorité : %v", err)
	}
	srv.Close()
	_, err := (&revocation.Fetcher{Client: &http.Client{}}).Collect(context.Background(), chain.Chain())
	if !errors.Is(err, revocation.ErrUnavailable) {
		t.Fatalf("répondeur arrêté : %v", err)
	}
	bare := *chain.Leaf
	bare.OCSPServer, bare.CRLDistributionPoints = nil, nil
	if _, err := (&revocation.Fetcher{}).Collect(context.Background(), []*x509.Certificate{&bare, chain.Inter, chain.Root}); !errors.Is(err, revocation.ErrNoSource) {
		t.Fatalf("sans source : %v", err)
	}
	if _, err := (&revocation.Fetcher{}).Collect(context.Background(), []*x509.Certificate{chain.Leaf, chain.Inter}); err == nil {
		t.Fatal("chaîne sans racine acceptée")
	}
}
