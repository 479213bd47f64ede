package seal

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"github.com/etatcivil/etatcivil/internal/tsa"
)

// TestSealBT: a seal with a signature timestamp from a real RFC 3161
// server (loopback) is PAdES B-T: pdfsig and qpdf accept the file, our
// verifier reports B-T with the TSA's time, and OpenSSL verifies the token
// over the signature value on its own. A TSA that is down fails the seal
// with an error the caller recognises; nothing is produced.
func TestSealBT(t *testing.T) {
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

	p := getPKI(t)
	for _, key := range []*Key{p.rsa, p.ecdsa} {
		in := scan(61)
		before := time.Now().Add(-time.Second)
		rc, n, err := New().Seal(context.Background(), bytes.NewReader(in), int64(len(in)), key,
			Options{Reason: "Archivage", Location: "Rodez", Time: sealTime, Timestamp: stamp})
		must(t, err)
		out, err := io.ReadAll(rc)
		must(t, err)
		must(t, rc.Close())
		if int64(len(out)) != n || !bytes.HasPrefix(out, in) {
			t.Fatalf("%s : sortie de %d octets (annoncé %d), préfixe conservé : %v", key.Label, len(out), n, bytes.HasPrefix(out, in))
		}
		if o := pdfsigValid(t, out, 1); !strings.Contains(o, "Signature Type: ETSI.CAdES.detached") {
			t.Fatalf("pdfsig :\n%s", o)
		}
		qpdfCheck(t, out)
		opensslCMSVerify(t, out, p.root)
		for _, r := range pdfcpuSignatures(t, out, p.root) {
			if r.Status != model.SignatureStatusValid || len(r.Problems) > 0 {
				t.Errorf("pdfcpu : %s, %s, problèmes %v", r.Status, r.Reason, r.Problems)
			}
			// pdfcpu concludes at most B-B (its doc: a timestamp does not
			// promote it) but sees the token.
			if len(r.Details.Signers) != 1 || r.Details.Signers[0].PAdES != "B-B" || !r.Details.Signers[0].HasTimestamp {
				t.Errorf("pdfcpu : signataires %+v", r.Details.Signers)
			}
		}

		info, err := VerifyTimestamped(out, p.roots, verifyTS)
		if err != nil || info.Level != "B-T" || info.TimestampTime.Before(before) || info.TimestampTime.After(time.Now().Add(time.Second)) {
			t.Fatalf("%s : niveau %q, horodatage %s (%v)", key.Label, info.Level, info.TimestampTime, err)
		}
		// Without a way to verify the token, a B-T file is not taken as B-T.
		if _, err := VerifyTimestamped(out, p.roots, nil); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("jeton non vérifié accepté : %v", err)
		}
		// A token for another signature does not verify.
		if _, err := VerifyTimestamped(out, p.roots, func(token, imprint []byte) (time.Time, error) {
			return verifyTS(token, make([]byte, 32))
		}); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("jeton sur une autre empreinte accepté : %v", err)
		}

		// OpenSSL, independently: the token covers SHA-256(signature value).
		imprint := sha256.Sum256(info.Signature)
		tok := filepath.Join(t.TempDir(), "token.der")
		must(t, os.WriteFile(tok, info.TimestampToken, 0o644))
		cmd := exec.Command("openssl", "ts", "-verify", "-digest", hex.EncodeToString(imprint[:]), "-token_in", "-in", tok,
			"-CAfile", filepath.Join(dir, tsa.DevTSARootFile), "-untrusted", filepath.Join(dir, tsa.DevTSAFile))
		if o, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(o), "Verification: OK") {
			t.Fatalf("openssl ts -verify : %v\n%s", err, o)
		}
	}

	srv.Down.Store(true)
	_, _, err = New().Seal(context.Background(), bytes.NewReader(scan(62)), int64(len(scan(62))), p.ecdsa, Options{Timestamp: stamp})
	if !errors.Is(err, tsa.ErrUnavailable) {
		t.Fatalf("TSA arrêtée : %v", err)
	}
}

// TestBTOutlivesTheCertificate: once the seal certificate has expired, a
// B-B seal no longer verifies, but a B-T seal still does, judged at the
// time its timestamp proves; a seal timestamped after its certificate
// expired does not.
func TestBTOutlivesTheCertificate(t *testing.T) {
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
	p := getPKI(t)
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(9001), Subject: pkix.Name{CommonName: "cachet éphémère"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(3 * time.Second),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.root, signer.Public(), p.rootKey)
	must(t, err)
	leaf, err := x509.ParseCertificate(der)
	must(t, err)
	key, err := newKey(signer, []*x509.Certificate{leaf, p.root})
	must(t, err)
	seal := func(ts Timestamper) []byte {
		in := scan(63)
		rc, _, err := New().Seal(context.Background(), bytes.NewReader(in), int64(len(in)), key, Options{Timestamp: ts})
		must(t, err)
		out, err := io.ReadAll(rc)
		must(t, err)
		must(t, rc.Close())
		return out
	}
	bt, bb := seal(stamp), seal(nil)
	if _, err := VerifyTimestamped(bt, p.roots, verifyTS); err != nil {
		t.Fatalf("B-T, certificat valide : %v", err)
	}
	time.Sleep(time.Until(leaf.NotAfter.Add(time.Second)))
	if _, err := Verify(bb, p.roots); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("B-B après expiration : %v", err)
	}
	info, err := VerifyTimestamped(bt, p.roots, verifyTS)
	if err != nil || info.Level != "B-T" || !info.TimestampTime.Before(leaf.NotAfter) {
		t.Fatalf("B-T après expiration : %+v %v", info.Level, err)
	}
	// Sealed now, with an expired certificate: the timestamp proves it.
	if _, err := VerifyTimestamped(seal(stamp), p.roots, verifyTS); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("cachet posé après expiration accepté : %v", err)
	}
}
