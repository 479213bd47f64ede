package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDevTSA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	srv, err := DevTSA(dir)
	if err != nil {
		t.Fatalf("DevTSA: %v", err)
	}

	for _, name := range []string{DevTSARootFile, DevTSAFile, DevTSAKeyFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		must(t, err)
		if !strings.HasPrefix(string(data), devBanner) || !strings.Contains(string(data), "NE PAS UTILISER EN PRODUCTION") {
			t.Errorf("%s does not start with the banner", name)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, DevTSAKeyFile))
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	must(t, err)
	if len(entries) != 3 {
		t.Errorf("%d files in %s, want 3", len(entries), dir)
	}

	c := srv.Cert
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping {
		t.Errorf("EKU %v", c.ExtKeyUsage)
	}
	critical := false
	for _, e := range c.Extensions {
		if e.Id.Equal(oidExtKeyUsage) {
			critical = e.Critical
		}
	}
	if !critical {
		t.Error("EKU not critical")
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature || c.IsCA {
		t.Errorf("KeyUsage %v, IsCA %v", c.KeyUsage, c.IsCA)
	}
	if y := c.NotAfter.Sub(c.NotBefore).Hours() / 24 / 365; y < 4.9 || y > 5.1 {
		t.Errorf("validity of %.1f years, want 5", y)
	}
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", c.PublicKey)
	}
	if !strings.Contains(c.Subject.CommonName, "NE PAS UTILISER EN PRODUCTION") {
		t.Errorf("subject %q", c.Subject)
	}
	if !srv.Policy.Equal(DevPolicy) || len(srv.Chain) != 0 {
		t.Errorf("policy %v chain %d", srv.Policy, len(srv.Chain))
	}

	// The server works, and its tokens verify against DevRoots.
	roots, err := DevRoots(dir)
	must(t, err)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	d := digestOf("dev")
	token, err := (&Client{URL: ts.URL}).Timestamp(context.Background(), d, crypto.SHA256)
	must(t, err)
	if _, err := Verify(token, d, crypto.SHA256, roots); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// But not against another root.
	if _, err := Verify(token, d, crypto.SHA256, getPKI(t).roots); !errors.Is(err, ErrUntrusted) {
		t.Errorf("Verify with another root: %v, want ErrUntrusted", err)
	}

	// A second call reuses the files.
	before := map[string][]byte{}
	for _, name := range []string{DevTSARootFile, DevTSAFile, DevTSAKeyFile} {
		before[name], _ = os.ReadFile(filepath.Join(dir, name))
	}
	again, err := DevTSA(dir)
	must(t, err)
	if !again.Cert.Equal(srv.Cert) {
		t.Error("second DevTSA made another certificate")
	}
	for name, data := range before {
		now, _ := os.ReadFile(filepath.Join(dir, name))
		if !bytes.Equal(now, data) {
			t.Errorf("%s rewritten", name)
		}
	}
}

func TestDevTSARefuses(t *testing.T) {
	t.Run("partial", func(t *testing.T) {
		dir := t.TempDir()
		_, err := DevTSA(dir)
		must(t, err)
		must(t, os.Remove(filepath.Join(dir, DevTSAKeyFile)))
		if _, err := DevTSA(dir); err == nil || !strings.Contains(err.Error(), "only some") {
			t.Errorf("partial directory: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, DevTSAKeyFile)); !errors.Is(err, os.ErrNotExist) {
			t.Error("partial directory completed")
		}
	})
	t.Run("key of another TSA", func(t *testing.T) {
		a, b := t.TempDir(), t.TempDir()
		_, err := DevTSA(a)
		must(t, err)
		_, err = DevTSA(b)
		must(t, err)
		key, err := os.ReadFile(filepath.Join(b, DevTSAKeyFile))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(a, DevTSAKeyFile), key, 0o600))
		if _, err := DevTSA(a); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("mismatched key: %v", err)
		}
	})
	t.Run("certificate of another root", func(t *testing.T) {
		a, b := t.TempDir(), t.TempDir()
		_, err := DevTSA(a)
		must(t, err)
		_, err = DevTSA(b)
		must(t, err)
		root, err := os.ReadFile(filepath.Join(b, DevTSARootFile))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(a, DevTSARootFile), root, 0o644))
		if _, err := DevTSA(a); err == nil {
			t.Error("certificate of another root accepted")
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		must(t, os.WriteFile(f, nil, 0o644))
		if _, err := DevTSA(f); err == nil {
			t.Error("DevTSA in a file accepted")
		}
	})
	t.Run("coexists with seal.DevCA files", func(t *testing.T) {
		dir := t.TempDir()
		// The names seal.DevCA writes; DevTSA neither reads nor touches them.
		for _, n := range []string{"dev-root.pem", "dev-seal.pem", "dev-seal.key"} {
			must(t, os.WriteFile(filepath.Join(dir, n), []byte("seal file\n"), 0o600))
		}
		if _, err := DevTSA(dir); err != nil {
			t.Fatalf("DevTSA: %v", err)
		}
		for _, n := range []string{"dev-root.pem", "dev-seal.pem", "dev-seal.key"} {
			if data, _ := os.ReadFile(filepath.Join(dir, n)); string(data) != "seal file\n" {
				t.Errorf("%s touched", n)
			}
		}
	})
}
