package seal

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readDev(t *testing.T, dir string) (root, seal, key []byte) {
	t.Helper()
	var err error
	root, err = os.ReadFile(filepath.Join(dir, DevRootFile))
	must(t, err)
	seal, err = os.ReadFile(filepath.Join(dir, DevSealFile))
	must(t, err)
	key, err = os.ReadFile(filepath.Join(dir, DevKeyFile))
	must(t, err)
	return root, seal, key
}

func TestDevCA(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := DevCA(dir); err != nil {
		t.Fatalf("DevCA: %v", err)
	}
	rootPEM, sealPEM, keyPEM := readDev(t, dir)

	for name, b := range map[string][]byte{DevRootFile: rootPEM, DevSealFile: sealPEM, DevKeyFile: keyPEM} {
		if !bytes.Contains(b, []byte("NE PAS UTILISER EN PRODUCTION")) {
			t.Errorf("%s is not labelled as development material", name)
		}
	}
	st, err := os.Stat(filepath.Join(dir, DevKeyFile))
	must(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", st.Mode().Perm())
	}

	key, err := LoadPEM(sealPEM, keyPEM)
	if err != nil {
		t.Fatalf("LoadPEM(dev seal): %v", err)
	}
	leaf := key.Chain[0]
	if leaf.Subject.CommonName != "Cachet de développement etatcivil — NE PAS UTILISER EN PRODUCTION" {
		t.Errorf("seal CN = %q", leaf.Subject.CommonName)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment {
		t.Errorf("seal key usage = %b, want digitalSignature|nonRepudiation", leaf.KeyUsage)
	}
	if leaf.IsCA {
		t.Error("seal certificate is a CA")
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("seal key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if len(key.Chain) != 3 {
		t.Fatalf("dev-seal.pem holds %d certificates, want leaf, intermediate and root", len(key.Chain))
	}
	if inter := key.Chain[1]; !inter.IsCA || leaf.CheckSignatureFrom(inter) != nil || !strings.Contains(inter.Subject.CommonName, "intermédiaire") {
		t.Errorf("intermediate = %q (CA %v)", inter.Subject.CommonName, inter.IsCA)
	}
	root := key.Chain[2]
	if !strings.Contains(root.Subject.CommonName, "DÉVELOPPEMENT") || !strings.Contains(root.Subject.CommonName, "NE PAS UTILISER EN PRODUCTION") || !root.IsCA {
		t.Errorf("root = %q (CA %v)", root.Subject.CommonName, root.IsCA)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatal("dev-root.pem holds no certificate")
	}

	// The development seal seals, and our checks accept it.
	out := sealBytes(t, scan(30), key)
	info, err := Verify(out, roots)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !strings.Contains(info.Signer, "NE PAS UTILISER EN PRODUCTION") {
		t.Errorf("Verify signer %q", info.Signer)
	}
	pdfsigValid(t, out, 1)

	// Idempotent: a second call changes nothing.
	if err := DevCA(dir); err != nil {
		t.Fatalf("second DevCA: %v", err)
	}
	r2, s2, k2 := readDev(t, dir)
	if !bytes.Equal(r2, rootPEM) || !bytes.Equal(s2, sealPEM) || !bytes.Equal(k2, keyPEM) {
		t.Error("second DevCA rewrote the files")
	}

	// A partial set is refused, not silently replaced.
	must(t, os.Remove(filepath.Join(dir, DevKeyFile)))
	if err := DevCA(dir); err == nil {
		t.Error("DevCA over a partial set succeeded")
	}
	if r3, err := os.ReadFile(filepath.Join(dir, DevRootFile)); err != nil || !bytes.Equal(r3, rootPEM) {
		t.Error("DevCA over a partial set changed the root")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("directory holds %d entries, want the 2 left", len(entries))
	}
}
