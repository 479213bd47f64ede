package seal

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/revocation"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// ltEnv is a seal and a TSA whose certificates name a live OCSP responder
// and CRL distribution points.
type ltEnv struct {
	key       *Key
	seal, tsa *revocation.DevChain
	resp      *revocation.Responder
	stamp     Timestamper
	roots     *x509.CertPool
	verifyTS  TimestampVerifier
	fetcher   *revocation.Fetcher
	tsaServer *tsa.Server
}

func newLTEnv(t testing.TB) *ltEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	base := "http://" + ln.Addr().String()
	sealChain, err := revocation.NewDevChain(base, revocation.DevOptions{CommonName: "Cachet B-LT de test"})
	must(t, err)
	tsaChain, err := revocation.NewDevChain(base, revocation.DevOptions{CommonName: "Horodatage B-LT de test", TimeStamping: true, Prefix: "tsa"})
	must(t, err)
	e := &ltEnv{seal: sealChain, tsa: tsaChain, fetcher: &revocation.Fetcher{}}
	e.resp = &revocation.Responder{Authorities: append(sealChain.Authorities(), tsaChain.Authorities()...)}
	rs := httptest.NewUnstartedServer(e.resp)
	rs.Listener.Close()
	rs.Listener = ln
	rs.Start()
	t.Cleanup(rs.Close)

	e.tsaServer = &tsa.Server{Signer: tsaChain.LeafKey, Cert: tsaChain.Leaf, Chain: []*x509.Certificate{tsaChain.Inter}}
	ts := httptest.NewServer(e.tsaServer)
	t.Cleanup(ts.Close)
	client := &tsa.Client{URL: ts.URL, Timeout: 10 * time.Second}
	e.stamp = func(ctx context.Context, imprint []byte) ([]byte, error) {
		return client.Timestamp(ctx, imprint, crypto.SHA256)
	}
	e.roots = x509.NewCertPool()
	e.roots.AddCert(sealChain.Root)
	e.roots.AddCert(tsaChain.Root)
	e.verifyTS = func(token, imprint []byte) (time.Time, error) {
		info, err := tsa.Verify(token, imprint, crypto.SHA256, e.roots)
		return info.Time, err
	}
	e.key = &Key{Signer: sealChain.LeafKey, Chain: []*x509.Certificate{sealChain.Leaf, sealChain.Inter, sealChain.Root}, Label: "B-LT"}
	return e
}

func (e *ltEnv) sealLT(t *testing.T, in []byte, lta bool) []byte {
	t.Helper()
	rc, n, err := New().Seal(context.Background(), bytes.NewReader(in), int64(len(in)), e.key, Options{Reason: "Archivage",
		Timestamp: e.stamp, Validation: &Validation{Roots: e.roots, Collect: e.fetcher.Collect}, DocTimestamp: lta})
	must(t, err)
	out, err := io.ReadAll(rc)
	must(t, err)
	must(t, rc.Close())
	if int64(len(out)) != n || !bytes.HasPrefix(out, in) {
		t.Fatalf("sortie de %d octets (annoncé %d), préfixe conservé : %v", len(out), n, bytes.HasPrefix(out, in))
	}
	return out
}

// qpdfDSS returns, by key, the DER of the streams the catalog's /DSS
// lists, as qpdf (an independent parser) reads them.
func qpdfDSS(t *testing.T, b []byte) map[string][][]byte {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "f.pdf")
	must(t, os.WriteFile(file, b, 0o644))
	out, err := exec.Command("qpdf", "--json", "--json-stream-data=file", "--json-stream-prefix="+filepath.Join(dir, "s"), file).Output()
	if err != nil {
		t.Fatalf("qpdf --json : %v", err)
	}
	var doc struct {
		Qpdf []map[string]json.RawMessage `json:"qpdf"`
	}
	must(t, json.Unmarshal(out, &doc))
	objects := doc.Qpdf[1]
	var trailer struct {
		Value map[string]any `json:"value"`
	}
	must(t, json.Unmarshal(objects["trailer"], &trailer))
	obj := func(ref string) map[string]any {
		var o struct {
			Value  map[string]any `json:"value"`
			Stream struct {
				Dict     map[string]any `json:"dict"`
				DataFile string         `json:"datafile"`
			} `json:"stream"`
		}
		must(t, json.Unmarshal(objects["obj:"+ref], &o))
		if o.Stream.DataFile != "" {
			return map[string]any{"datafile": o.Stream.DataFile}
		}
		return o.Value
	}
	catalog := obj(trailer.Value["/Root"].(string))
	dssRef, ok := catalog["/DSS"].(string)
	if !ok {
		t.Fatalf("pas de /DSS dans le catalogue : %v", catalog)
	}
	dss := obj(dssRef)
	got := map[string][][]byte{}
	for _, k := range []string{"/Certs", "/OCSPs", "/CRLs"} {
		arr, _ := dss[k].([]any)
		for _, r := range arr {
			data, err := os.ReadFile(obj(r.(string))["datafile"].(string))
			must(t, err)
			got[k] = append(got[k], data)
		}
	}
	return got
}

func opensslOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s : %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func pemFile(t *testing.T, dir string, certs ...*x509.Certificate) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "*.pem")
	must(t, err)
	defer f.Close()
	for _, c := range certs {
		must(t, pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return f.Name()
}

// TestSealLT: a B-LT seal carries a /DSS that qpdf reads, with the
// certificates of both chains, OCSP answers openssl parses and verifies,
// and CRLs openssl verifies; pdfsig still reports the signature valid;
// our verifier reports B-LT. A B-LTA seal adds a document timestamp over
// the whole file, /DSS included, which openssl ts verifies over its byte
// range; our verifier reports B-LTA with its time.
func TestSealLT(t *testing.T) {
	e := newLTEnv(t)
	dir := t.TempDir()
	for _, lta := range []bool{false, true} {
		in := scan(91)
		out := e.sealLT(t, in, lta)
		level := map[bool]string{false: "B-LT", true: "B-LTA"}[lta]
		// pdfsig validates the seal; it lists a document timestamp without
		// validating it (poppler: "Unable to validate this type of
		// signature"), openssl does below.
		if lta {
			o := pdfsig(t, out)
			if sigValidRe.FindAllString(o, -1) == nil || !strings.Contains(o, "Signature #2:\n  - Signature Field Name: Horodatage etatcivil") ||
				!strings.Contains(o, "Total document signed") || strings.Count(o, "Signature #") != 2 {
				t.Fatalf("pdfsig :\n%s", o)
			}
		} else {
			pdfsigValid(t, out, 1)
		}
		qpdfCheck(t, out)
		dss := qpdfDSS(t, out)
		if len(dss["/Certs"]) < 5 || len(dss["/OCSPs"]) != 2 || len(dss["/CRLs"]) != 2 {
			t.Fatalf("%s : /DSS de %d certificats, %d OCSP, %d CRL", level, len(dss["/Certs"]), len(dss["/OCSPs"]), len(dss["/CRLs"]))
		}
		sealInter, tsaInter := pemFile(t, dir, e.seal.Inter), pemFile(t, dir, e.tsa.Inter)
		for i, der := range dss["/OCSPs"] {
			f := filepath.Join(dir, fmt.Sprintf("%s-%d.ocsp", level, i))
			must(t, os.WriteFile(f, der, 0o644))
			// Which chain's: try the seal's intermediate, then the TSA's.
			ok := false
			for _, c := range []struct {
				issuer, leaf string
			}{{sealInter, pemFile(t, dir, e.seal.Leaf)}, {tsaInter, pemFile(t, dir, e.tsa.Leaf)}} {
				out, err := exec.Command("openssl", "ocsp", "-respin", f, "-issuer", c.issuer, "-cert", c.leaf, "-VAfile", c.issuer, "-no_nonce").CombinedOutput()
				if err == nil && strings.Contains(string(out), ": good") && strings.Contains(string(out), "Response verify OK") {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s : réponse OCSP %d refusée par openssl", level, i)
			}
		}
		for i, der := range dss["/CRLs"] {
			f := filepath.Join(dir, fmt.Sprintf("%s-%d.crl", level, i))
			must(t, os.WriteFile(f, der, 0o644))
			out := opensslOut(t, "crl", "-inform", "DER", "-in", f, "-noout", "-issuer")
			if !strings.Contains(out, "racine") {
				t.Errorf("%s : CRL %d d'un autre émetteur : %s", level, i, out)
			}
		}
		info, err := VerifyTimestamped(out, e.roots, e.verifyTS)
		if err != nil || info.Level != level || info.DSS.OCSPs != 2 || info.DSS.CRLs != 2 || info.Covered >= int64(len(out)) {
			t.Fatalf("%s : niveau %q, %+v, couvert %d/%d (%v)", level, info.Level, info.DSS, info.Covered, len(out), err)
		}
		if !lta {
			if len(info.DocTimestamps) != 0 {
				t.Fatalf("B-LT avec horodatage de document : %+v", info.DocTimestamps)
			}
			// Extended (a re-timestamping): the same material is not
			// embedded twice, a document timestamp follows, the file
			// before stays the exact prefix.
			ext, err := Extend(context.Background(), out, &Validation{Roots: e.roots, Collect: e.fetcher.Collect}, e.stamp)
			must(t, err)
			xi, err := VerifyTimestamped(ext, e.roots, e.verifyTS)
			if err != nil || !bytes.HasPrefix(ext, out) || xi.Level != "B-LTA" || xi.DSS != info.DSS || len(xi.DocTimestamps) != 1 {
				t.Fatalf("prolongé : niveau %q, %+v (avant %+v), %d horodatages (%v)", xi.Level, xi.DSS, info.DSS, len(xi.DocTimestamps), err)
			}
			qpdfCheck(t, ext)
			continue
		}
		if len(info.DocTimestamps) != 1 || info.DocTimestamps[0].Covered != int64(len(out)) || info.DocTimestamps[0].Time.IsZero() {
			t.Fatalf("horodatage de document : %+v", info.DocTimestamps)
		}
		// openssl, on its own: the token covers the byte range.
		sigs, err := signatures(out)
		must(t, err)
		last := sigs[len(sigs)-1]
		data := append(append([]byte{}, out[:last.br[1]]...), out[last.br[2]:]...)
		dataFile, tokFile := filepath.Join(dir, "range.bin"), filepath.Join(dir, "doc.tsr")
		must(t, os.WriteFile(dataFile, data, 0o644))
		must(t, os.WriteFile(tokFile, last.der, 0o644))
		o := opensslOut(t, "ts", "-verify", "-data", dataFile, "-token_in", "-in", tokFile,
			"-CAfile", pemFile(t, dir, e.tsa.Root), "-untrusted", pemFile(t, dir, e.tsa.Leaf, e.tsa.Inter))
		if !strings.Contains(o, "Verification: OK") {
			t.Fatalf("openssl ts -verify :\n%s", o)
		}
		// A byte changed after the seal but inside the document
		// timestamp's range: the document timestamp fails.
		bad := bytes.Clone(out)
		at := bytes.LastIndex(bad, []byte("/Type /DSS"))
		bad[at+1] = 'X'
		if _, err := VerifyTimestamped(bad, e.roots, e.verifyTS); err == nil {
			t.Fatal("fichier modifié après le cachet accepté")
		}
	}
}

// TestSealLTRefuses: no B-LT seal is made with a revoked certificate, or
// while the responder is down; no object other than validation material
// may follow a seal.
func TestSealLTRefuses(t *testing.T) {
	e := newLTEnv(t)
	in := scan(92)
	out := e.sealLT(t, in, false)

	// A page content stream slipped in after the seal, referenced from
	// nowhere the verifier allows.
	appended := append(bytes.Clone(out), []byte("\n99 0 obj\n<< /Type /XObject /Subtype /Image /Length 3 >>\nstream\nabc\nendstream\nendobj\n")...)
	if _, err := VerifyTimestamped(appended, e.roots, e.verifyTS); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("objet ajouté après le cachet : %v", err)
	}
	plain := append(bytes.Clone(out), []byte("\n99 0 obj\n<< /Length 3 >>\nstream\nabc\nendstream\nendobj\n")...)
	if _, err := VerifyTimestamped(plain, e.roots, e.verifyTS); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("flux hors du magasin de validation : %v", err)
	}

	e.resp.Revoke(e.seal.Inter, e.seal.Leaf.SerialNumber)
	_, _, err := New().Seal(context.Background(), bytes.NewReader(in), int64(len(in)), e.key, Options{
		Timestamp: e.stamp, Validation: &Validation{Roots: e.roots, Collect: (&revocation.Fetcher{}).Collect}})
	if !errors.Is(err, revocation.ErrRevoked) {
		t.Fatalf("cachet révoqué : %v", err)
	}
	_, _, err = New().Seal(context.Background(), bytes.NewReader(in), int64(len(in)), e.key, Options{Validation: &Validation{}})
	if err == nil {
		t.Fatal("B-LT sans horodatage accepté")
	}
}

// BenchmarkSealLevels: seals per second at each PAdES level, with a local
// TSA and a local OCSP responder and CRL server (loopback HTTP; the
// revocation answers are cached, as in production, so B-LT costs a /DSS
// update, not a round trip per act). 20 seals of a 2-page scan per
// iteration; reported as seals/s.
func BenchmarkSealLevels(b *testing.B) {
	e := newLTEnv(b)
	in := scan(93)
	const perIter = 20
	for _, level := range []string{"B-B", "B-T", "B-LT", "B-LTA"} {
		b.Run(level, func(b *testing.B) {
			opt := Options{Reason: "Archivage"}
			if level != "B-B" {
				opt.Timestamp = e.stamp
			}
			if level == "B-LT" || level == "B-LTA" {
				opt.Validation = &Validation{Roots: e.roots, Collect: e.fetcher.Collect}
				opt.DocTimestamp = level == "B-LTA"
			}
			b.SetBytes(int64(len(in)) * perIter)
			start := time.Now()
			for b.Loop() {
				for range perIter {
					rc, _, err := New().Seal(context.Background(), bytes.NewReader(in), int64(len(in)), e.key, opt)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, rc); err != nil {
						b.Fatal(err)
					}
					rc.Close()
				}
			}
			b.ReportMetric(float64(b.N*perIter)/time.Since(start).Seconds(), "seals/s")
		})
	}
}
