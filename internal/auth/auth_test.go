package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in string
		id string
		ok bool
	}{
		{"ec_abc_0123456789abcdefgh", "abc", true},
		{"ec_abc_short", "", false},
		{"xx_abc_0123456789abcdefgh", "", false},
		{"ec__0123456789abcdefgh", "", false},
		{"ec_abc", "", false},
		{"", "", false},
	} {
		id, _, ok := auth.Parse(c.in)
		if ok != c.ok || id != c.id {
			t.Errorf("Parse(%q) = %q %v", c.in, id, ok)
		}
	}
}

func TestHasherNeedsPepperAndIsKeyed(t *testing.T) {
	t.Parallel()
	if _, err := auth.NewHasher("court"); err == nil {
		t.Fatal("pepper trop court accepté")
	}
	a, _ := auth.NewHasher("pepper-aaaaaaaaaaaaaaaa")
	b, _ := auth.NewHasher("pepper-bbbbbbbbbbbbbbbb")
	if string(a.Hash("s")) == string(b.Hash("s")) {
		t.Fatal("l'empreinte ne dépend pas du pepper")
	}
	id, text, hash := a.New()
	pid, secret, ok := auth.Parse(text)
	if !ok || pid != id || string(a.Hash(secret)) != string(hash) {
		t.Fatalf("jeton %q incohérent", text)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	h, _ := auth.NewHasher(testenv.Pepper)
	if err := st.CreateHub(ctx, store.System, store.Hub{ID: "h", Name: "H", Communes: []string{"12202"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a := &auth.Authenticator{Store: st, Hasher: h, Now: func() time.Time { return now }}
	mk := func(role, hub string, communes []string, exp *time.Time) string {
		id, text, hash := h.New()
		if err := st.CreateToken(ctx, store.System, store.Token{ID: id, Hash: hash, Role: role, Name: "n", HubID: hub, Communes: communes, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		return text
	}
	hubTok := mk("hub", "h", nil, nil)
	p, err := a.Authenticate(ctx, hubTok)
	if err != nil || p.Role != auth.RoleHub || p.Scope.HubID != "h" || len(p.Scope.Communes) != 1 || p.Scope.All {
		t.Fatalf("hub: %+v %v", p, err)
	}
	th := mk("townhall", "", []string{"12145"}, nil)
	if p, err := a.Authenticate(ctx, th); err != nil || p.Scope.All || p.Scope.Communes[0] != "12145" || p.Scope.HubID != "" {
		t.Fatalf("mairie: %+v %v", p, err)
	}
	if p, err := a.Authenticate(ctx, mk("auditor", "", nil, nil)); err != nil || !p.Scope.All {
		t.Fatalf("auditeur: %+v %v", p, err)
	}
	soon := now.Add(time.Hour)
	exp := mk("admin", "", nil, &soon)
	if _, err := a.Authenticate(ctx, exp); err != nil {
		t.Fatalf("jeton valide refusé: %v", err)
	}
	now = soon
	if _, err := a.Authenticate(ctx, exp); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("jeton expiré accepté: %v", err)
	}
	id, _, _ := auth.Parse(hubTok)
	if err := st.RevokeToken(ctx, store.System, id); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, hubTok); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("jeton révoqué accepté: %v", err)
	}
	// Right id, wrong secret.
	tid, _, _ := auth.Parse(th)
	if _, err := a.Authenticate(ctx, "ec_"+tid+"_"+"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("mauvais secret accepté: %v", err)
	}
	// The database holds no secret: only its keyed hash.
	var n int
	_, secret, _ := auth.Parse(th)
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM tokens WHERE encode(hash, 'escape') LIKE '%' || $1 || '%' OR id LIKE '%' || $1 || '%'`, secret).Scan(&n); err != nil || n != 0 {
		t.Fatalf("secret retrouvé en base (%d) %v", n, err)
	}
}
