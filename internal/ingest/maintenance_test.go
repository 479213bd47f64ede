package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

func deathManifest(t *testing.T, files map[string][]byte, order []string) []byte {
	t.Helper()
	var acts []any
	for i, name := range order {
		data := files[name]
		sum := sha256.Sum256(data)
		acts = append(acts, map[string]any{"file": name, "size": len(data), "sha256": hex.EncodeToString(sum[:]), "commune": "12202",
			"kind": "deces", "year": 2020, "number": i + 1, "act_date": "2020-01-02",
			"persons": []any{map[string]any{"role": "defunt", "surname": "DURAND", "given_names": []string{}}}})
	}
	m, _ := json.Marshal(map[string]any{"hub": "h", "acts": acts})
	return m
}

func upload(t *testing.T, c *client.Client, files map[string][]byte, order []string) string {
	t.Helper()
	ctx := context.Background()
	m := deathManifest(t, files, order)
	ms := sha256.Sum256(m)
	b, _, err := c.CreateBatch(ctx, m, false, hex.EncodeToString(ms[:]))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range order {
		if err := c.PutFile(ctx, b.ID, name, bytes.NewReader(files[name]), int64(len(files[name]))); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.Submit(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	return b.ID
}

// TestStagingCleanup: an archived entry's staging copies go at once; a
// rejected file stays in staging for the retention period, then goes.
func TestStagingCleanup(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "h", "12202")
	c := client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
	ctx := context.Background()
	files := map[string][]byte{"good.pdf": pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 8, Pages: 1, DPI: 100}), "bad.pdf": []byte("pas un pdf")}
	id := upload(t, c, files, []string{"good.pdf", "bad.pdf"})
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	b, _, err := c.WaitBatch(wctx, id, nil)
	if err != nil || b.Counts.Archived != 1 || b.Counts.Rejected != 1 {
		t.Fatalf("lot %+v %v", b.Counts, err)
	}
	staged := func(entryID string) (string, string) {
		var orig, sealed string
		if err := s.Store.Pool.QueryRow(ctx, `SELECT coalesce(staged_key, ''), coalesce(sealed_key, '') FROM entries WHERE id = $1`, entryID).Scan(&orig, &sealed); err != nil {
			t.Fatal(err)
		}
		return orig, sealed
	}
	exists := func(key string) bool {
		obj, _, err := s.Blob.GetStaging(ctx, key)
		if err == nil {
			obj.Close()
		}
		return err == nil
	}
	good, bad := b.Acts[0].EntryID, b.Acts[1].EntryID
	gOrig, gSealed := staged(good)
	deadline := time.Now().Add(30 * time.Second)
	for exists(gOrig) || exists(gSealed) {
		if time.Now().After(deadline) {
			t.Fatalf("copies de dépôt de l'acte archivé toujours là (%s, %s)", gOrig, gSealed)
		}
		time.Sleep(100 * time.Millisecond)
	}
	bOrig, _ := staged(bad)
	if !exists(bOrig) {
		t.Fatal("le fichier refusé a quitté le dépôt avant la fin de sa rétention")
	}
	// A cleanup run now keeps it; 31 days later it removes it.
	if _, err := s.Jobs.River.Insert(ctx, ingest.CleanupArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if !exists(bOrig) {
		t.Fatal("le fichier refusé a été supprimé avant 30 jours")
	}
	if _, err := s.Store.Pool.Exec(ctx, `UPDATE entries SET updated_at = now() - interval '31 days' WHERE id = $1`, bad); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Jobs.River.Insert(ctx, ingest.CleanupArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for exists(bOrig) {
		if time.Now().After(deadline) {
			t.Fatal("le fichier refusé est resté dans le dépôt après 31 jours")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOrphanSweep: an entry left "received" with no job (lost by an
// operator, or from before an upgrade) is re-driven to archived.
func TestOrphanSweep(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{NoWorkers: true})
	s.Hub(t, "h", "12202")
	c := client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
	ctx := context.Background()
	files := map[string][]byte{"a.pdf": pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 9, Pages: 1, DPI: 100})}
	id := upload(t, c, files, []string{"a.pdf"})
	if _, err := s.Store.Pool.Exec(ctx, `DELETE FROM river_job`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.Pool.Exec(ctx, `UPDATE entries SET updated_at = now() - interval '1 day'`); err != nil {
		t.Fatal(err)
	}
	startWorkers(t, s, func(d *ingest.Deps) { d.Workers = 2 })
	// The periodic sweep runs on start; wait for the act.
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	b, _, err := c.WaitBatch(wctx, id, nil)
	if err != nil || b.Counts.Archived != 1 {
		t.Fatalf("entrée orpheline non relancée: %+v %v", b.Counts, err)
	}
}

// startWorkers starts a second set of workers on the stack's database,
// with the stack's dependencies changed by tune, stopped at cleanup.
func startWorkers(t *testing.T, s *testenv.Stack, tune func(*ingest.Deps)) {
	t.Helper()
	deps := *s.Deps
	deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	tune(&deps)
	jobs, err := ingest.NewClient(s.Store.Pool, &deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.River.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = jobs.River.Stop(context.Background()) })
}
