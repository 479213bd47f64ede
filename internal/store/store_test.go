package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

func TestMigrateIsIdempotentAndSchemaChecked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	if err := st.CheckSchema(ctx); err != nil {
		t.Fatalf("schéma à jour refusé: %v", err)
	}
	applied, err := st.Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Fatalf("deuxième migrate: %v %v", applied, err)
	}
	// An old schema (one migration missing) is refused.
	if _, err := st.Pool.Exec(ctx, `DELETE FROM etatcivil_migrations WHERE version = $1`, store.LatestVersion()); err != nil {
		t.Fatal(err)
	}
	if err := st.CheckSchema(ctx); !errors.Is(err, store.ErrSchemaOutdated) {
		t.Fatalf("schéma ancien accepté: %v", err)
	}
}

func TestEmptyDatabaseRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	if _, err := st.Pool.Exec(ctx, `DROP TABLE etatcivil_migrations`); err != nil {
		t.Fatal(err)
	}
	if err := st.CheckSchema(ctx); !errors.Is(err, store.ErrSchemaOutdated) {
		t.Fatalf("base sans migrations acceptée: %v", err)
	}
}

func TestAuditEventsAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	err := st.Audit(ctx, store.Event{Actor: store.Actor{ID: "tok1", Name: "Agent"}, Action: "act.read_persons",
		Purpose: "controle", Reason: "vérification", ActID: "00000000-0000-0000-0000-000000000001"})
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	var sum string
	if err := st.Pool.QueryRow(ctx, `SELECT id, reason_sha256 FROM audit_events WHERE actor = 'tok1'`).Scan(&id, &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum) != 64 {
		t.Fatalf("empreinte du motif absente: %q", sum)
	}
	for _, q := range []string{
		`UPDATE audit_events SET action = 'autre' WHERE id = $1`,
		`UPDATE audit_events SET actor = 'x' WHERE id = $1`,
		`UPDATE audit_events SET reason = 'autre motif' WHERE id = $1`,
		`DELETE FROM audit_events WHERE id = $1`,
	} {
		_, err := st.Pool.Exec(ctx, q, id)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: accepté (%v)", q, err)
		}
	}
	// Allowed: the chainer sets seq and hash once; the free-text reason may be pruned.
	if _, err := st.Pool.Exec(ctx, `UPDATE audit_events SET seq = 1, hash = '\x01' WHERE id = $1`, id); err != nil {
		t.Fatalf("chaînage refusé: %v", err)
	}
	if _, err := st.Pool.Exec(ctx, `UPDATE audit_events SET seq = 2 WHERE id = $1`, id); err == nil {
		t.Fatal("seq modifié une seconde fois")
	}
	if _, err := st.Pool.Exec(ctx, `UPDATE audit_events SET reason = NULL WHERE id = $1`, id); err != nil {
		t.Fatalf("purge du motif refusée: %v", err)
	}
	ev, _, err := st.AuditEvents(ctx, store.AuditFilter{ActID: "00000000-0000-0000-0000-000000000001", Limit: 10})
	if err != nil || len(ev) != 1 || ev[0].Reason != nil || ev[0].Purpose == nil || *ev[0].Purpose != "controle" {
		t.Fatalf("événements: %+v %v", ev, err)
	}
}

func TestTokensAndHubsAreAudited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	actor := store.Actor{ID: "cli", Name: "marie"}
	if err := st.CreateHub(ctx, actor, store.Hub{ID: "h1", Name: "H1", Communes: []string{"12202"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateHub(ctx, actor, store.Hub{ID: "h1", Name: "H1"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("doublon: %v", err)
	}
	if err := st.CreateToken(ctx, actor, store.Token{ID: "abc", Hash: []byte{1}, Role: "hub", Name: "X", HubID: "h1"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateToken(ctx, actor, store.Token{ID: "abd", Hash: []byte{1}, Role: "hub", Name: "X", HubID: "nope"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("opérateur inconnu: %v", err)
	}
	if err := st.RevokeToken(ctx, actor, "abc"); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(ctx, actor, "zzz"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("jeton inconnu: %v", err)
	}
	var actions []string
	rows, err := st.Pool.Query(ctx, `SELECT action FROM audit_events WHERE actor = 'cli' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a string
		_ = rows.Scan(&a)
		actions = append(actions, a)
	}
	if strings.Join(actions, ",") != "hub.create,token.create,token.revoke" {
		t.Fatalf("audit: %v", actions)
	}
}
