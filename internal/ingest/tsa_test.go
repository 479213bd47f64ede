package ingest_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/revocation"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/tsa"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestTSADown: a hub at B-LT (the default) never has an act archived
// without its timestamp: while the TSA is down the act waits with
// waiting = tsa_unavailable, and it is archived at B-LT once the TSA
// answers again. A B-B hub is not held back.
func TestTSADown(t *testing.T) {
	t.Parallel()
	stamps := testenv.TSA(t)
	stamps.Down.Store(true)
	s := testenv.NewStack(t, testenv.StackOptions{Tune: func(d *ingest.Deps) {
		d.Timestamp = stamps.Timestamper()
		d.RetryBudget = 100
	}})
	s.Hub(t, "h", "12202")
	c := client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
	ctx := context.Background()
	id := upload(t, c, map[string][]byte{"a.pdf": pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 71, DPI: 72})}, []string{"a.pdf"})
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _, err := c.Batch(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if w := b.Acts[0].Waiting; w != nil && *w == "tsa_unavailable" && b.Acts[0].State == "validated" {
			break
		}
		if b.Acts[0].State == "archived" || time.Now().After(deadline) {
			t.Fatalf("acte %s (attente %v) alors que l'horodatage est indisponible", b.Acts[0].State, b.Acts[0].Waiting)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stamps.Down.Store(false)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	b, _, err := c.WaitBatch(wctx, id, nil)
	if err != nil || b.Counts.Archived != 1 {
		t.Fatalf("lot : %+v %v", b.Counts, err)
	}
	var level string
	if err := s.Store.Pool.QueryRow(ctx, `SELECT coalesce(seal_level, '') FROM entries WHERE batch_id = $1`, id).Scan(&level); err != nil || level != "B-LT" {
		t.Fatalf("niveau du cachet %q (%v)", level, err)
	}

	// The same hub set to B-B seals without the TSA, and says so.
	stamps.Down.Store(true)
	if err := s.Store.SetHubSealLevel(ctx, store.System, "h", "B-B"); err != nil {
		t.Fatal(err)
	}
	ids := uploadActs(t, c, 72, birth(2, "reprise")) // waits until archived
	if err := s.Store.Pool.QueryRow(ctx, `SELECT coalesce(seal_level, '') FROM entries WHERE act_id = $1`, ids[0]).Scan(&level); err != nil || level != "B-B" {
		t.Fatalf("niveau du cachet B-B %q (%v)", level, err)
	}
}

// TestRevocationDown: while the OCSP responder and CRL servers do not
// answer, acts of a B-LT hub wait (revocation_unavailable) and are never
// archived at B-T; once they answer, they are archived at B-LT. A B-LTA
// hub's acts carry a document timestamp, and verify at B-LTA.
func TestRevocationDown(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	down.Store(true)
	s := testenv.NewStack(t, testenv.StackOptions{Tune: func(d *ingest.Deps) {
		d.RetryBudget = 100
		f := &revocation.Fetcher{}
		pki := testenv.DevPKI(t)
		roots, err := api.LoadRoots([]string{filepath.Join(pki, seal.DevRootFile), filepath.Join(pki, tsa.DevTSARootFile)})
		if err != nil {
			t.Fatal(err)
		}
		d.Validation = &seal.Validation{Roots: roots, Collect: func(ctx context.Context, chain []*x509.Certificate) (revocation.Material, error) {
			if down.Load() {
				return revocation.Material{}, fmt.Errorf("%w: répondeur arrêté pour le test", revocation.ErrUnavailable)
			}
			return f.Collect(ctx, chain)
		}}
	}})
	s.Hub(t, "h", "12202")
	c := client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
	ctx := context.Background()
	id := upload(t, c, map[string][]byte{"a.pdf": pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 73, DPI: 72})}, []string{"a.pdf"})
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _, err := c.Batch(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if w := b.Acts[0].Waiting; w != nil && *w == "revocation_unavailable" && b.Acts[0].State == "validated" {
			break
		}
		if b.Acts[0].State == "archived" || time.Now().After(deadline) {
			t.Fatalf("acte %s (attente %v) alors que la révocation est indisponible", b.Acts[0].State, b.Acts[0].Waiting)
		}
		time.Sleep(100 * time.Millisecond)
	}
	down.Store(false)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	b, _, err := c.WaitBatch(wctx, id, nil)
	if err != nil || b.Counts.Archived != 1 {
		t.Fatalf("lot : %+v %v", b.Counts, err)
	}
	level := func(actID string) string {
		var l string
		if err := s.Store.Pool.QueryRow(ctx, `SELECT coalesce(seal_level, '') FROM entries WHERE act_id = $1`, actID).Scan(&l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := level(*b.Acts[0].ID); l != "B-LT" {
		t.Fatalf("niveau du cachet %q", l)
	}

	if err := s.Store.SetHubSealLevel(ctx, store.System, "h", "B-LTA"); err != nil {
		t.Fatal(err)
	}
	ids := uploadActs(t, c, 74, birth(3, "reprise"))
	if l := level(ids[0]); l != "B-LTA" {
		t.Fatalf("niveau du cachet B-LTA %q", l)
	}
	auditor := client.New(s.URL, s.Token(t, auth.RoleAuditor, ""))
	raw, err := auditor.Get(ctx, "/api/v1/acts/"+ids[0]+"/verification", nil)
	if err != nil {
		t.Fatal(err)
	}
	var r api.Report
	if err := json.Unmarshal(raw, &r); err != nil || !r.OK || r.Level != "B-LTA" || len(r.Timestamps) != 2 || r.Timestamps[1].Kind != "document" {
		t.Fatalf("rapport B-LTA : %s (%v)", raw, err)
	}
}
