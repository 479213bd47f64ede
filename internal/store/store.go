// Package store is etatcivil's only door to PostgreSQL. All SQL is here,
// hand-written; methods take a context and read like the domain.
package store

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// Named errors, mapped to HTTP statuses in one table by the api package.
var (
	// ErrNotFound: no such object, or one outside the caller's scope.
	ErrNotFound = errors.New("introuvable")
	// ErrConflict: the request contradicts what is stored.
	ErrConflict = errors.New("conflit")
	// ErrInvalid: the request is malformed.
	ErrInvalid = errors.New("requête invalide")
	// ErrSchemaOutdated: the database schema is older than this binary.
	ErrSchemaOutdated = errors.New("schéma de base de données pas à jour: lancez « etatcivil migrate »")
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store wraps a pgx pool.
type Store struct {
	Pool *pgxpool.Pool
	// DashboardTTL, if set, is how long a dashboard is served from memory
	// (per scope, commune and limit) before it is counted again
	// (ETATCIVIL_DASHBOARD_TTL). A town hall's dashboard counts every act
	// and transmission of its communes: at a million acts it is the one
	// read that costs tens of milliseconds of PostgreSQL, and fifty
	// clients asking for it at once need not count it fifty times.
	DashboardTTL time.Duration
	dash         dashCache
}

// Open connects to the database at url.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("ETATCIVIL_DATABASE_URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connexion à PostgreSQL: %w", err)
	}
	return &Store{Pool: pool}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.Pool.Close() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.Pool.Ping(ctx) }

// Transact runs fn in a transaction, committed if fn returns nil.
func (s *Store) Transact(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.Pool, fn)
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	ents, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range ents {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %q: nom sans numéro", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{v, e.Name(), string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// LatestVersion is the newest schema version this binary knows.
func LatestVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Migrate applies River's migrations, then ours, each of ours in its own
// transaction under an advisory lock so concurrent migrators queue up.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	var applied []string
	migrator, err := rivermigrate.New(riverpgxv5.New(s.Pool), nil)
	if err != nil {
		return nil, fmt.Errorf("river migrate: %w", err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("river migrate: %w", err)
	}
	for _, v := range res.Versions {
		applied = append(applied, fmt.Sprintf("river %03d", v.Version))
	}
	ms, err := migrations()
	if err != nil {
		return applied, err
	}
	for _, m := range ms {
		err := s.Transact(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7261536373)`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS etatcivil_migrations (
				version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
				return err
			}
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM etatcivil_migrations WHERE version = $1)`, m.version).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO etatcivil_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return err
			}
			applied = append(applied, m.name)
			return nil
		})
		if err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// CheckSchema returns ErrSchemaOutdated unless both River's and our
// migrations are fully applied.
func (s *Store) CheckSchema(ctx context.Context) error {
	var v int
	err := s.Pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM etatcivil_migrations`).Scan(&v)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
			return ErrSchemaOutdated
		}
		return fmt.Errorf("lecture du schéma: %w", err)
	}
	if v < LatestVersion() {
		return fmt.Errorf("%w (version %d, attendue %d)", ErrSchemaOutdated, v, LatestVersion())
	}
	if v > LatestVersion() {
		return fmt.Errorf("schéma de base (version %d) plus récent que ce binaire (%d)", v, LatestVersion())
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(s.Pool), nil)
	if err != nil {
		return err
	}
	existing, err := migrator.ExistingVersions(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSchemaOutdated, err)
	}
	all := migrator.AllVersions()
	if len(existing) == 0 || existing[len(existing)-1].Version < all[len(all)-1].Version {
		return fmt.Errorf("%w (migrations River)", ErrSchemaOutdated)
	}
	return nil
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// MigrationsDigest is the SHA-256 (hex) of the migrations compiled into
// this binary: tests name their template database after it, so a template
// always holds exactly the schema the binary migrates to.
func MigrationsDigest() string {
	ms, _ := migrations()
	h := sha256.New()
	for _, m := range ms {
		fmt.Fprintf(h, "%s\n%d\n%s", m.name, len(m.sql), m.sql)
	}
	return hex.EncodeToString(h.Sum(nil))
}
