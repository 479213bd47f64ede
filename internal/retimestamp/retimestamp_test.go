package retimestamp_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/retimestamp"
	"github.com/etatcivil/etatcivil/internal/revocation"
	"github.com/etatcivil/etatcivil/internal/sample"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

func TestMain(m *testing.M) {
	testenv.ChildMain()
	os.Exit(m.Run())
}

// devTSA is a TSA whose certificate expires at notAfter, its chain naming
// a revocation responder of its own.
func devTSA(t *testing.T, name string, notAfter time.Time) (*revocation.DevChain, seal.Timestamper) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := revocation.NewDevChain("http://"+ln.Addr().String(), revocation.DevOptions{CommonName: name, TimeStamping: true, NotAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	rs := httptest.NewUnstartedServer(&revocation.Responder{Authorities: chain.Authorities()})
	rs.Listener.Close()
	rs.Listener = ln
	rs.Start()
	t.Cleanup(rs.Close)
	ts := httptest.NewServer(&tsa.Server{Signer: chain.LeafKey, Cert: chain.Leaf, Chain: []*x509.Certificate{chain.Inter}})
	t.Cleanup(ts.Close)
	c := &tsa.Client{URL: ts.URL, Timeout: 10 * time.Second}
	return chain, func(ctx context.Context, imprint []byte) ([]byte, error) {
		return c.Timestamp(ctx, imprint, crypto.SHA256)
	}
}

// TestCampaign: acts sealed at B-LT with a TSA whose certificate expires
// within the margin are extended by a campaign run: a new version
// (revision_reason retimestamp, B-LTA) archived under lock beside the
// previous one, which stays retrievable and is its exact prefix; the
// report shows the chain of timestamps; an audit event each; nothing sent
// to the registries again. A second run does nothing.
func TestCampaign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	oldTSA, oldStamp := devTSA(t, "Horodatage qui expire bientôt", time.Now().Add(30*24*time.Hour))
	newTSA, newStamp := devTSA(t, "Horodatage de relève", time.Now().AddDate(5, 0, 0))
	pki := testenv.DevPKI(t)
	roots, err := api.LoadRoots([]string{filepath.Join(pki, seal.DevRootFile), filepath.Join(pki, tsa.DevTSARootFile)})
	if err != nil {
		t.Fatal(err)
	}
	roots.AddCert(oldTSA.Root)
	roots.AddCert(newTSA.Root)
	validation := &seal.Validation{Roots: roots, Collect: (&revocation.Fetcher{}).Collect}
	s := testenv.NewStack(t, testenv.StackOptions{Tune: func(d *ingest.Deps) {
		d.Timestamp, d.Validation = oldStamp, validation
	}})
	s.API.Roots = roots
	s.Hub(t, "smica", "12202")
	hub := client.New(s.URL, s.Token(t, auth.RoleHub, "smica"))
	auditorToken := s.Token(t, auth.RoleAuditor, "")
	auditor := client.New(s.URL, auditorToken)

	dir := t.TempDir()
	if err := sample.Generate(sample.Options{Dir: dir, Count: 2, Seed: 5, Communes: []string{"12202"}}); err != nil {
		t.Fatal(err)
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	msum := sha256.Sum256(manifest)
	b, _, err := hub.CreateBatch(ctx, manifest, false, hex.EncodeToString(msum[:]))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Acts {
		data, err := os.ReadFile(filepath.Join(dir, e.File))
		if err != nil {
			t.Fatal(err)
		}
		if err := hub.PutFile(ctx, b.ID, e.File, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := hub.Submit(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	b, _, err = hub.WaitBatch(wctx, b.ID, nil)
	if err != nil || b.Counts.Archived != 2 {
		t.Fatalf("lot : %+v %v", b.Counts, err)
	}
	transmissions := func() int {
		var n int
		if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM transmissions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	sent := transmissions()

	c := &retimestamp.Campaign{Store: s.Store, Blob: s.Blob, Validation: validation, Timestamp: newStamp, Margin: 365 * 24 * time.Hour,
		RetainUntil: func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }}
	tally, err := c.Run(ctx)
	if err != nil || tally != (retimestamp.Tally{Examined: 2, Extended: 2}) {
		t.Fatalf("campagne : %+v %v", tally, err)
	}
	for _, e := range b.Acts {
		raw, err := auditor.Get(ctx, "/api/v1/acts/"+*e.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		var a store.ActView
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatal(err)
		}
		if len(a.Versions) != 2 || a.Versions[1].RevisionReason == nil || *a.Versions[1].RevisionReason != "retimestamp" ||
			a.Versions[1].State != "archived" || *a.Versions[1].ObjectKey == *a.Versions[0].ObjectKey {
			t.Fatalf("versions : %s", raw)
		}
		raw, err = auditor.Get(ctx, "/api/v1/acts/"+*e.ID+"/verification", nil)
		if err != nil {
			t.Fatal(err)
		}
		var r api.Report
		if err := json.Unmarshal(raw, &r); err != nil || !r.OK || r.Version != 2 || r.Level != "B-LTA" || len(r.Timestamps) != 2 ||
			r.Timestamps[0].Kind != "signature" || r.Timestamps[1].Kind != "document" {
			t.Fatalf("rapport : %s", raw)
		}
		// Both versions retrievable; the first is the exact prefix of the second.
		get := func(version string) []byte {
			out, err := auditor.Get(ctx, "/api/v1/acts/"+*e.ID+"/pdf?version="+version, http.Header{"Etatcivil-Purpose": {"controle"}})
			if err != nil {
				t.Fatalf("version %s : %v", version, err)
			}
			return out
		}
		v1, v2 := get("1"), get("2")
		sum := sha256.Sum256(v2)
		if !bytes.HasPrefix(v2, v1) || len(v2) <= len(v1) || hex.EncodeToString(sum[:]) != *a.Versions[1].SealedSHA256 {
			t.Fatalf("version 2 : %d octets, préfixe %v", len(v2), bytes.HasPrefix(v2, v1))
		}
		ret, err := s.Blob.Retention(ctx, *a.Versions[1].ObjectKey, *a.Versions[1].VersionID)
		if err != nil || ret.Mode != "COMPLIANCE" {
			t.Fatalf("rétention de la version 2 : %+v %v", ret, err)
		}
	}
	var events int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'act.retimestamped'`).Scan(&events); err != nil || events != 2 {
		t.Fatalf("événements : %d %v", events, err)
	}
	if n := transmissions(); n != sent {
		t.Fatalf("%d transmissions après la campagne, %d avant", n, sent)
	}
	tally, err = c.Run(ctx)
	if err != nil || tally != (retimestamp.Tally{}) {
		t.Fatalf("seconde campagne : %+v %v", tally, err)
	}
}
