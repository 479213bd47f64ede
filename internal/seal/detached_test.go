package seal

import (
	"context"
	"crypto"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/tsa"
)

// TestDetached: a detached signature over a document verifies with our
// verifier (B-B without a TSA, B-T with one) and with OpenSSL on its own;
// one byte changed in the document or in the signature, another root, a
// token over something else: refused.
func TestDetached(t *testing.T) {
	p := getPKI(t)
	doc := []byte(`{"type":"etatcivil-audit-checkpoint","number":1}`)
	dir := t.TempDir()
	srv, err := tsa.DevTSA(dir)
	must(t, err)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	client := &tsa.Client{URL: hs.URL, Timeout: 10 * time.Second}
	stamp := func(ctx context.Context, imprint []byte) ([]byte, error) {
		return client.Timestamp(ctx, imprint, crypto.SHA256)
	}
	tsaRoots, err := tsa.DevRoots(dir)
	must(t, err)
	verifyTS := func(token, imprint []byte) (time.Time, error) {
		info, err := tsa.Verify(token, imprint, crypto.SHA256, tsaRoots)
		return info.Time, err
	}
	for _, key := range []*Key{p.rsa, p.ecdsa} {
		for _, ts := range []Timestamper{nil, stamp} {
			sig, err := SignDetached(context.Background(), doc, key, ts)
			must(t, err)
			info, err := VerifyDetached(doc, sig, p.roots, verifyTS)
			must(t, err)
			want := "B-B"
			if ts != nil {
				want = "B-T"
			}
			if info.Level != want || !strings.Contains(info.Signer, "Cachet") {
				t.Fatalf("%s: level %s signer %s, want %s", key.Label, info.Level, info.Signer, want)
			}
			w := t.TempDir()
			must(t, os.WriteFile(filepath.Join(w, "doc.json"), doc, 0o644))
			must(t, os.WriteFile(filepath.Join(w, "doc.p7s"), sig, 0o644))
			must(t, os.WriteFile(filepath.Join(w, "root.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.root.Raw}), 0o644))
			out, err := exec.Command("openssl", "cms", "-verify", "-binary", "-purpose", "any", "-inform", "DER",
				"-in", filepath.Join(w, "doc.p7s"), "-content", filepath.Join(w, "doc.json"),
				"-CAfile", filepath.Join(w, "root.pem"), "-out", os.DevNull).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Verification successful") {
				t.Fatalf("openssl cms -verify: %v\n%s", err, out)
			}

			bad := append([]byte{}, doc...)
			bad[5] ^= 1
			if _, err := VerifyDetached(bad, sig, p.roots, verifyTS); !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("%s: altered document: %v", key.Label, err)
			}
			badSig := append([]byte{}, sig...)
			badSig[len(badSig)-3] ^= 1
			if _, err := VerifyDetached(doc, badSig, p.roots, verifyTS); err == nil {
				t.Fatalf("%s: altered signature verifies", key.Label)
			}
			if _, err := VerifyDetached(doc, sig, tsaRoots, verifyTS); !errors.Is(err, ErrUntrusted) {
				t.Fatalf("%s: other roots: %v", key.Label, err)
			}
		}
	}
	// A timestamp present but no verifier: not silently B-B.
	sig, err := SignDetached(context.Background(), doc, p.ecdsa, stamp)
	must(t, err)
	if _, err := VerifyDetached(doc, sig, p.roots, nil); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("timestamp without verifier: %v", err)
	}
}
