package seal

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"github.com/etatcivil/etatcivil/internal/pdfgen"
)

const wantReason = "Archivage de l'acte (copie intégrale)"

// checkSealed runs every check a freshly sealed file must pass with
// nSigs signatures, the last by key.
func checkSealed(t *testing.T, in, out []byte, key *Key, nSigs int) {
	t.Helper()
	p := getPKI(t)
	if !bytes.HasPrefix(out, in) {
		t.Fatal("sealed output does not start with the exact input bytes")
	}
	if len(out) <= len(in) {
		t.Fatal("nothing appended")
	}

	// The update's trailer chains to the input's last xref section.
	if prev := lastStartXRef(t, in); !bytes.Contains(out[len(in):], []byte("/Prev "+strconv.FormatInt(prev, 10)+" ")) {
		t.Errorf("update trailer has no /Prev %d", prev)
	}
	if got, want := lastStartXRef(t, out), int64(len(in)); got < want {
		t.Errorf("sealed startxref %d points into the input (%d bytes)", got, want)
	}

	out1 := pdfsigValid(t, out, nSigs)
	last := out1[strings.LastIndex(out1, "Signature #"):]
	for _, want := range []string{
		"Signer Certificate Common Name: " + key.Chain[0].Subject.CommonName,
		"Signing Time: Mar 14 2025 09:26:53",
		"Signing Hash Algorithm: SHA-256",
		"Signature Type: ETSI.CAdES.detached",
		"Total document signed",
	} {
		if !strings.Contains(last, want) {
			t.Errorf("pdfsig: last signature lacks %q:\n%s", want, last)
		}
	}

	qpdfCheck(t, out)
	opensslCMSVerify(t, out, p.root)

	res := pdfcpuSignatures(t, out, p.root)
	if len(res) != nSigs {
		t.Fatalf("pdfcpu found %d signatures, want %d", len(res), nSigs)
	}
	// pdfcpu reports every signature as in a past revision (its increments
	// count from 1), which turns DocNotModified into "no reason"; Valid is
	// its verdict on integrity, chain to the installed root and CRL.
	for i, r := range res {
		if r.Status != model.SignatureStatusValid || r.DocModified == model.True || len(r.Problems) > 0 {
			t.Errorf("pdfcpu signature %d: %s, %s, docmodified %d problems %v", i+1, r.Status, r.Reason, r.DocModified, r.Problems)
		}
	}
	// pdfcpu lists signatures in no guaranteed order: find ours by signer.
	var found bool
	for _, r := range res {
		if r.Details.SignerIdentity == key.Chain[0].Subject.CommonName {
			found = true
			if r.Details.Location != "Rodez" || r.Details.Reason != wantReason || r.Details.SubFilter != "ETSI.CAdES.detached" {
				t.Errorf("pdfcpu details: location %q reason %q subfilter %q", r.Details.Location, r.Details.Reason, r.Details.SubFilter)
			}
		}
	}
	if !found {
		t.Errorf("pdfcpu: no signature by %q", key.Chain[0].Subject.CommonName)
	}

	info, err := Verify(out, p.roots)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := Info{
		Signer:      key.Chain[0].Subject.String(),
		Certificate: key.Chain[0],
		SigningTime: sealTime,
		SubFilter:   "ETSI.CAdES.detached",
		Reason:      wantReason,
		Location:    "Rodez",
	}
	if info.Signer != want.Signer || !info.Certificate.Equal(want.Certificate) || !info.SigningTime.Equal(want.SigningTime) ||
		info.SubFilter != want.SubFilter || info.Reason != want.Reason || info.Location != want.Location {
		t.Errorf("Verify = %+v, want %+v", info, want)
	}
}

func TestSeal(t *testing.T) {
	p := getPKI(t)
	for _, tc := range []struct {
		name string
		key  *Key
	}{{"RSA", p.rsa}, {"ECDSA", p.ecdsa}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := scan(1)
			out := sealBytes(t, in, tc.key)
			checkSealed(t, in, out, tc.key, 1)

			upd := string(out[len(in):])
			for _, want := range []string{
				"/Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached",
				"/M (D:20250314092653+00'00')",
				"/Location (Rodez)",
				"/FT /Sig", "/Rect [0 0 0 0] /F 132",
				"/SigFlags 3",
				"\nxref\n", "\ntrailer\n",
			} {
				if !strings.Contains(upd, want) {
					t.Errorf("update lacks %q", want)
				}
			}

			// The CMS: chain included, signing-certificate-v2, no signing-time.
			si := lastCMS(t, out)
			if len(si.certs) != len(tc.key.Chain) || !si.signer.Equal(tc.key.Chain[0]) {
				t.Errorf("CMS carries %d certificates, signer %v", len(si.certs), si.signer.Subject)
			}
			if si.signingTime {
				t.Error("CMS has a signing-time attribute; PAdES wants the time in /M only")
			}
			if si.certV2Hash == nil {
				t.Error("CMS lacks signing-certificate-v2")
			}
		})
	}
}

// lastStartXRef returns the offset after the last "startxref" of b.
func lastStartXRef(t *testing.T, b []byte) int64 {
	t.Helper()
	m := regexp.MustCompile(`startxref\s+(\d+)\s+%%EOF\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no startxref at end of file")
	}
	n, err := strconv.ParseInt(string(m[1]), 10, 64)
	must(t, err)
	return n
}

// contentsRange returns the [start, end) of the last signature's Contents
// hex string, '<' and '>' included.
func contentsRange(t *testing.T, b []byte) (int, int) {
	t.Helper()
	locs := byteRangeRe.FindAllSubmatch(b, -1)
	if len(locs) == 0 {
		t.Fatal("no ByteRange")
	}
	m := locs[len(locs)-1]
	s, _ := strconv.Atoi(string(m[2]))
	e, _ := strconv.Atoi(string(m[3]))
	return s, e
}

func lastCMS(t *testing.T, b []byte) *signerInfo {
	t.Helper()
	s, e := contentsRange(t, b)
	der, err := hex.DecodeString(string(b[s+1 : e-1]))
	must(t, err)
	si, err := parseCMS(der)
	must(t, err)
	return si
}

// xrefStreamPDF rewrites a scan with pdfcpu to use an xref stream and
// object streams.
func xrefStreamPDF(t *testing.T) []byte {
	t.Helper()
	conf := model.NewDefaultConfiguration()
	conf.WriteXRefStream = true
	conf.WriteObjectStream = true
	var buf bytes.Buffer
	if err := api.Optimize(bytes.NewReader(scan(2)), &buf, conf); err != nil {
		t.Fatalf("pdfcpu optimize: %v", err)
	}
	b := buf.Bytes()
	if !regexp.MustCompile(`/Type\s*/XRef`).Match(b) || regexp.MustCompile(`(?m)^xref\s*$`).Match(b) {
		t.Fatal("pdfcpu did not write an xref stream")
	}
	return b
}

func TestSealXRefStream(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	in := xrefStreamPDF(t)
	out := sealBytes(t, in, p.ecdsa)
	checkSealed(t, in, out, p.ecdsa, 1)
	upd := out[len(in):]
	if !regexp.MustCompile(`/Type /XRef /Size \d+ /W \[1 4 2\]`).Match(upd) {
		t.Errorf("update has no xref stream:\n%s", upd[bytes.LastIndex(upd, []byte("endobj\n"))-200:])
	}
	if bytes.Contains(upd, []byte("\nxref\n")) {
		t.Error("update of an xref-stream file uses a classic xref table")
	}
}

func TestSealTwice(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	for _, tc := range []struct {
		name string
		in   []byte
	}{{"table", scan(3)}, {"stream", xrefStreamPDF(t)}} {
		t.Run(tc.name, func(t *testing.T) {
			once := sealBytes(t, tc.in, p.rsa)
			twice := sealBytes(t, once, p.ecdsa)
			checkSealed(t, once, twice, p.ecdsa, 2)
			if !bytes.HasPrefix(twice, tc.in) {
				t.Fatal("second seal lost the original prefix")
			}
			// Both fields in the last catalog's AcroForm, both widgets on page 1.
			upd := twice[len(once):]
			fields := regexp.MustCompile(`/Fields\s*\[([^\]]*)\]`).FindSubmatch(upd)
			if fields == nil || len(regexp.MustCompile(`\d+ \d+ R`).FindAll(fields[1], -1)) != 2 {
				t.Errorf("second catalog /Fields = %q, want two references", fields)
			}
			out := pdfsig(t, twice)
			if strings.Count(out, "Total document signed") != 1 {
				t.Errorf("pdfsig: want the second signature only to cover the whole document:\n%s", out)
			}
			// Sealing three times still works (re-timestamping chains).
			thrice := sealBytes(t, twice, p.rsa)
			pdfsigValid(t, thrice, 3)
			qpdfCheck(t, thrice)
		})
	}
}

func TestSealInputWithoutFinalEOL(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	in := bytes.TrimRight(scan(4), "\r\n")
	out := sealBytes(t, in, p.ecdsa)
	if out[len(in)] != '\n' {
		t.Errorf("update does not start on a new line: %q", out[len(in):len(in)+10])
	}
	checkSealed(t, in, out, p.ecdsa, 1)
}

func TestContentsReserve(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	out := sealBytes(t, scan(5), p.rsa)
	s, e := contentsRange(t, out)
	chain := 0
	for _, c := range p.rsa.Chain {
		chain += len(c.Raw)
	}
	if got := (e - s - 2) / 2; got < chain+8192 {
		t.Errorf("Contents reserves %d bytes, want at least chain %d + 8 KiB", got, chain)
	}
}

func TestTamper(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	in := scan(6)
	out := sealBytes(t, in, p.rsa)
	cs, ce := contentsRange(t, out)
	der, err := hex.DecodeString(string(out[cs+1 : ce-1]))
	must(t, err)
	derLen := len(der) - len(bytes.TrimRight(der, "\x00"))
	derLen = len(der) - derLen

	flipHex := func(b []byte, i int) {
		if b[i] == '0' {
			b[i] = '1'
		} else {
			b[i] = '0'
		}
	}
	cases := []struct {
		name   string
		mutate func(b []byte) []byte
		pdfsig bool // pdfsig must also call it invalid
		pdfcpu bool // pdfcpu must also call it invalid (it must still parse the file)
	}{
		{"byte in the original", func(b []byte) []byte { b[len(in)/2] ^= 0x01; return b }, true, true},
		{"byte in the header", func(b []byte) []byte { b[5] ^= 0x01; return b }, true, false},
		{"byte in the signature dictionary", func(b []byte) []byte {
			i := bytes.LastIndex(b, []byte("/Location (Rodez)"))
			b[i+11] = 'X'
			return b
		}, true, true},
		{"byte after Contents", func(b []byte) []byte { b[len(b)-3] ^= 0x01; return b }, true, false},
		{"CMS signature value", func(b []byte) []byte { flipHex(b, cs+1+2*derLen-1); return b }, false, false},
		{"CMS message digest", func(b []byte) []byte {
			si := lastCMS(t, out)
			i := bytes.Index(der, si.messageDigest)
			flipHex(b, cs+1+2*i+1)
			return b
		}, false, false},
		{"CMS certificate", func(b []byte) []byte {
			i := bytes.Index(der, p.rsa.Chain[0].RawSubject)
			flipHex(b, cs+1+2*i+20)
			return b
		}, false, false},
		{"appended bytes", func(b []byte) []byte { return append(b, "% ajout\n"...) }, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(bytes.Clone(out))
			if bytes.Equal(b, out) {
				t.Fatal("mutation changed nothing")
			}
			if _, err := Verify(b, p.roots); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("Verify = %v, want ErrInvalidSignature", err)
			}
			if tc.pdfsig {
				o := pdfsig(t, b)
				if strings.Contains(o, "Signature is Valid") || !strings.Contains(o, "Digest Mismatch") {
					t.Errorf("pdfsig still accepts the file:\n%s", o)
				}
			}
			if tc.pdfcpu {
				for _, r := range pdfcpuSignatures(t, b, p.root) {
					if r.Status != model.SignatureStatusInvalid {
						t.Errorf("pdfcpu: %s (%s)", r.Status, r.Reason)
					}
				}
			}
		})
	}
}

func TestVerifyErrors(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	if _, err := Verify(scan(7), p.roots); !errors.Is(err, ErrNoSignature) {
		t.Errorf("Verify(unsigned) = %v, want ErrNoSignature", err)
	}
	out := sealBytes(t, scan(7), p.ecdsa)
	info, err := Verify(out, nil) // system roots: our test root is unknown
	if !errors.Is(err, ErrUntrusted) {
		t.Errorf("Verify(untrusted root) = %v, want ErrUntrusted", err)
	}
	if info.Signer != p.ecdsa.Chain[0].Subject.String() {
		t.Errorf("Verify(untrusted) still names the signer: got %q", info.Signer)
	}
}

func TestSealRejects(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	in := scan(8)
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	edKey := &Key{Signer: edPriv, Chain: []*x509.Certificate{issue(t, "ed25519", edPub, 99)}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	cases := []struct {
		name string
		ctx  context.Context
		in   []byte
		size int64
		key  *Key
		want error
	}{
		{"not a PDF", context.Background(), []byte("bonjour, ceci n'est pas un PDF\n"), -1, p.rsa, ErrInvalidPDF},
		{"encrypted", context.Background(), pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 1, DPI: 50, Encrypt: true}), -1, p.rsa, ErrInvalidPDF},
		{"short input", context.Background(), in, int64(len(in)) + 10, p.rsa, ErrInvalidPDF},
		{"long input", context.Background(), in, int64(len(in)) - 10, p.rsa, ErrInvalidPDF},
		{"empty", context.Background(), nil, 0, p.rsa, ErrInvalidPDF},
		{"no key", context.Background(), in, -1, nil, ErrInvalidKey},
		{"no chain", context.Background(), in, -1, &Key{Signer: p.rsa.Signer}, ErrInvalidKey},
		{"ed25519", context.Background(), in, -1, edKey, ErrInvalidKey},
		{"cancelled", cancelled, in, -1, p.rsa, context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.size
			if size < 0 {
				size = int64(len(tc.in))
			}
			rc, _, err := New().Seal(tc.ctx, bytes.NewReader(tc.in), size, tc.key, Options{Time: sealTime})
			if err == nil {
				rc.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("Seal = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestTempFiles checks the temporary copy is removed on Close and on
// failure. Not parallel: it sets TMPDIR.
func TestTempFiles(t *testing.T) {
	p := getPKI(t)
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	in := scan(9)
	rc, n, err := New().Seal(context.Background(), bytes.NewReader(in), int64(len(in)), p.ecdsa, Options{})
	must(t, err)
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("want one temporary file while open, got %d", len(entries))
	}
	if m, err := io.Copy(io.Discard, rc); err != nil || m != n {
		t.Fatalf("read %d of %d: %v", m, n, err)
	}
	must(t, rc.Close())
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("temporary file left after Close: %v", entries)
	}
	if _, _, err := New().Seal(context.Background(), strings.NewReader("pas un PDF"), 10, p.ecdsa, Options{}); err == nil {
		t.Fatal("Seal of garbage succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("temporary file left after failure: %v", entries)
	}
}

func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	in := scan(10)
	before := time.Now().Add(-time.Second)
	rc, _, err := New().Seal(context.Background(), bytes.NewReader(in), int64(len(in)), p.ecdsa, Options{})
	must(t, err)
	defer rc.Close()
	out, err := io.ReadAll(rc)
	must(t, err)
	info, err := Verify(out, p.roots)
	must(t, err)
	if info.SigningTime.Before(before) || info.SigningTime.After(time.Now().Add(time.Second)) {
		t.Errorf("default signing time %v is not now", info.SigningTime)
	}
	if !bytes.Contains(out[len(in):], []byte("/Name ("+p.ecdsa.Label+")")) {
		t.Errorf("default /Name is not the key label %q", p.ecdsa.Label)
	}
	if bytes.Contains(out[len(in):], []byte("/Reason")) {
		t.Error("empty Reason written")
	}
}

func TestPDFText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, lit string }{
		{"Rodez", "(Rodez)"},
		{`a(b)c\d`, `(a\(b\)c\\d)`},
		{"é", `(\376\377\000\351)`},
		{"Saint-Étienne (Loire)", ""},
		{"", "()"},
	} {
		got := pdfText(tc.in)
		if tc.lit != "" && got != tc.lit {
			t.Errorf("pdfText(%q) = %s, want %s", tc.in, got, tc.lit)
		}
		if back := decodePDFString(got); back != tc.in {
			t.Errorf("decodePDFString(pdfText(%q)) = %q", tc.in, back)
		}
	}
}

func TestParsePDFDate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"D:20250314092653+00'00'", time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)},
		{"D:20250314102653+01'00'", time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)},
		{"D:20250314092653Z", time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)},
		{"D:20250314043653-04'50", time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)},
		{"D:2025", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"garbage", time.Time{}},
	} {
		if got := parsePDFDate(tc.in); !got.Equal(tc.want) {
			t.Errorf("parsePDFDate(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
