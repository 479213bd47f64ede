package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/sample"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestRestoreDrill is the restore drill of docs/operations.md: a batch
// archived and the audit log anchored, the database dumped (pg_dump -Fc)
// and restored into a new database (pg_restore), the first server
// stopped, a fresh server started on the restored database and the same
// buckets; then `audit verify` passes and `act verify` passes for every
// act, and the restored ledger has every act the first one had.
func TestRestoreDrill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := startServer(t)
	tok := hubToken(t, s)
	dir := filepath.Join(t.TempDir(), "lot")
	if err := sample.Generate(sample.Options{Dir: dir, Count: 6, Seed: 61, Today: time.Now()}); err != nil {
		t.Fatal(err)
	}
	uploadWait(t, s, tok, dir)
	s.run(t, "audit", "checkpoint")
	acts := func(url string) []string {
		t.Helper()
		db, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close(ctx)
		rows, err := db.Query(ctx, `SELECT id::text FROM acts WHERE state = 'archived' ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	before := acts(s.dbURL())
	if len(before) != 6 {
		t.Fatalf("%d actes archivés avant la sauvegarde, attendu 6", len(before))
	}

	// The backup, then the loss of the first server.
	dump := filepath.Join(t.TempDir(), "etatcivil.dump")
	if b, err := exec.Command("pg_dump", "-Fc", "--no-owner", "-f", dump, "--dbname", s.dbURL()).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump : %v\n%s", err, b)
	}
	s.stop()
	restored := testenv.EmptyDatabaseURL(t)
	if b, err := exec.Command("pg_restore", "--no-owner", "--exit-on-error", "--dbname", restored, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore : %v\n%s", err, b)
	}

	// A fresh server on the restored database and the same buckets.
	env := []string{"ETATCIVIL_DATABASE_URL=" + restored}
	for _, k := range []string{"ETATCIVIL_S3_BUCKET", "ETATCIVIL_S3_STAGING_BUCKET"} {
		env = append(env, k+"="+envOf(s.env, k))
	}
	s2 := startServerArgs(t, []string{"serve"}, env...)
	if after := acts(restored); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("actes après restauration :\n%v\nattendus :\n%v", after, before)
	}
	// Exit 0: the chain and the checkpoints in the bucket agree with the
	// restored log.
	if b, err := s2.client(ctx, s2.admin, "audit", "verify").CombinedOutput(); err != nil {
		t.Errorf("audit verify après restauration : %v\n%s", err, b)
	}
	for _, id := range before {
		c := s2.client(ctx, s2.admin, "act", "verify", id)
		if b, err := c.CombinedOutput(); err != nil || !strings.Contains(string(b), "INTÈGRE") {
			t.Errorf("act verify %s après restauration : %v\n%s", id, err, b)
		}
	}
}
