// Package testenv gives tests the real services that `make test` starts:
// a PostgreSQL server and Versity's S3 gateway. Nothing is mocked. Each
// test gets its own database (cloned from a migrated template with the COG
// imported) and its own buckets. Without the services the tests fail: run
// them with `make test`.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/cog"
	"github.com/etatcivil/etatcivil/internal/store"
)

func need(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s absent : lancez les tests avec « make test », qui démarre PostgreSQL et la passerelle S3", name)
	}
	return v
}

// PGBase is the libpq URL of the test server, without a database.
func PGBase(t testing.TB) string { return need(t, "ETATCIVIL_TEST_PG_BASE") }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// templateName depends on the migrations and the COG snapshot, so a change
// to either builds a new template.
func templateName() string {
	// The migrations compiled into this test binary (not the files on
	// disk, which may have changed since it was built), and the COG data.
	h := sha256.New()
	fmt.Fprint(h, store.LatestVersion(), store.MigrationsDigest())
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	ents, _ := os.ReadDir(filepath.Join(root, "internal/cog/data"))
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(root, "internal/cog/data", e.Name()))
		h.Write(b)
	}
	return "etatcivil_tmpl_" + hex.EncodeToString(h.Sum(nil))[:12]
}

// ensureTemplate builds the template database once per server, under an
// advisory lock so parallel test binaries wait for the first.
func ensureTemplate(ctx context.Context, t testing.TB, base, name string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, base+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatalf("connexion à PostgreSQL de test: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(4242017)`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `SELECT pg_advisory_unlock(4242017)`)
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	if ok {
		return
	}
	_, _ = conn.Exec(ctx, `DROP DATABASE IF EXISTS `+name)
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, base+"/"+name+"?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		st.Close()
		t.Fatalf("migrations: %v", err)
	}
	snap, err := cog.Embedded()
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if err := st.ImportCOG(ctx, snap.Date, snap.Communes()); err != nil {
		st.Close()
		t.Fatal(err)
	}
	st.Close()
	if _, err := conn.Exec(ctx, `UPDATE pg_database SET datistemplate = true WHERE datname = $1`, name); err != nil {
		t.Fatal(err)
	}
}

// DatabaseURL creates a fresh, migrated database with the COG imported,
// dropped when the test ends, and returns its URL.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := PGBase(t)
	tmpl := templateName()
	ensureTemplate(ctx, t, base, tmpl)
	name := "etatcivil_t_" + randHex(6)
	conn, err := pgx.Connect(ctx, base+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Cloning needs the template to have no other connection; retry briefly
	// while another test binary clones it at the same instant.
	for i := 0; ; i++ {
		_, err = conn.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE `+tmpl)
		if err == nil || i > 50 || !strings.Contains(err.Error(), "is being accessed") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("création de la base de test: %v", err)
	}
	dropAtEnd(t, base, name)
	return base + "/" + name + "?sslmode=disable"
}

// EmptyDatabaseURL creates an empty database (no schema: a restore's
// target), dropped when the test ends, and returns its URL.
func EmptyDatabaseURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := PGBase(t)
	name := "etatcivil_t_" + randHex(6)
	conn, err := pgx.Connect(ctx, base+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0`); err != nil {
		t.Fatalf("création de la base vide: %v", err)
	}
	dropAtEnd(t, base, name)
	return base + "/" + name + "?sslmode=disable"
}

func dropAtEnd(t testing.TB, base, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base+"/postgres?sslmode=disable")
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	})
}

// Store opens a fresh test database.
func Store(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// S3 describes the test gateway.
type S3 struct {
	Endpoint, AccessKey, SecretKey, DataDir string
}

// S3Env returns the test gateway's address and keys.
func S3Env(t testing.TB) S3 {
	return S3{Endpoint: need(t, "ETATCIVIL_TEST_S3_ENDPOINT"), AccessKey: need(t, "ETATCIVIL_TEST_S3_ACCESS_KEY"),
		SecretKey: need(t, "ETATCIVIL_TEST_S3_SECRET_KEY"), DataDir: os.Getenv("ETATCIVIL_TEST_S3_DATA_DIR")}
}

// BlobConfig returns a configuration with fresh bucket names.
func BlobConfig(t testing.TB) blob.Config {
	s := S3Env(t)
	id := randHex(4)
	return blob.Config{Endpoint: s.Endpoint, Region: "us-east-1", AccessKey: s.AccessKey, SecretKey: s.SecretKey,
		Archive: "t-archive-" + id, Staging: "t-staging-" + id}
}

// Blob returns a blob store on fresh buckets (archive with object lock).
func Blob(t testing.TB) (*blob.Store, blob.Config) {
	t.Helper()
	cfg := BlobConfig(t)
	b, err := blob.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.EnsureBuckets(ctx); err != nil {
		t.Fatalf("création des seaux de test: %v", err)
	}
	return b, cfg
}

// Bin returns the path of a binary built by make (bin/etatcivil…).
func Bin(t testing.TB, name string) string {
	dir := need(t, "ETATCIVIL_TEST_BIN")
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s absent : « make build » d'abord", p)
	}
	return p
}
