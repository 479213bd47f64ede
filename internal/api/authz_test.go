package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// routeSpec says how to call one route of api.Routes as a caller allowed
// to: build makes the request for a target (a batch id, an act id, or ""
// for ScopeNone routes), and ok is the status expected on a target in the
// caller's scope.
type routeSpec struct {
	build func(target string) apiReq
	ok    int
}

// authzFixture is the world the matrix runs in.
type authzFixture struct {
	s                    *testenv.Stack
	batchH1, batchH2     string // batches of hubs h1 and h2
	actH1, actH2         string // their acts (12202 and 12145)
	manifestH1           []byte // the manifest of batchH1
	pdfH1, pdfH2         []byte
	hub1, hub2, townhall string // tokens
	auditor, admin       string
}

// principal is a caller of the matrix.
type principal struct {
	name  string
	role  auth.Role
	token string
}

// newToken creates a token as testenv.Stack.Token does, with an expiry,
// and returns its id and text.
func newToken(t *testing.T, s *testenv.Stack, role auth.Role, expires *time.Time) (string, string) {
	t.Helper()
	id, text, hash := s.Hasher.New()
	err := s.Store.CreateToken(context.Background(), store.System, store.Token{ID: id, Hash: hash, Role: string(role),
		Name: "test " + string(role) + " à échéance", ExpiresAt: expires})
	if err != nil {
		t.Fatal(err)
	}
	return id, text
}

func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "h1", "12202")
	s.Hub(t, "h2", "12145")
	s.Hub(t, "h3", "12218") // only the commune nouvelle of Conques-en-Rouergue
	f := authzFixture{
		s:        s,
		hub1:     s.Token(t, auth.RoleHub, "h1"),
		hub2:     s.Token(t, auth.RoleHub, "h2"),
		townhall: s.Token(t, auth.RoleTownhall, "", "12202"),
		auditor:  s.Token(t, auth.RoleAuditor, ""),
		admin:    s.Token(t, auth.RoleAdmin, ""),
		pdfH1:    goodPDF(11),
		pdfH2:    goodPDF(12),
	}
	hub3 := s.Token(t, auth.RoleHub, "h3")
	townhallConques := s.Token(t, auth.RoleTownhall, "", "12218")

	// Tokens that must all get 401. The expired, revoked and wrong-secret
	// ones are admin tokens: were they accepted, they would reach everything.
	past := time.Now().Add(-time.Hour)
	_, expired := newToken(t, s, auth.RoleAdmin, &past)
	revokedID, revoked := newToken(t, s, auth.RoleAdmin, nil)
	if err := s.Store.RevokeToken(ctx, store.System, revokedID); err != nil {
		t.Fatal(err)
	}
	adminID, _, ok := auth.Parse(f.admin)
	if !ok {
		t.Fatalf("jeton admin illisible: %q", f.admin)
	}
	unauthenticated := []principal{
		{"sans jeton", "", ""},
		{"jeton vide", "", " "},
		{"jeton quelconque", "", "n-importe-quoi"},
		{"jeton inconnu", "", "ec_zzzzzzzzzzzzz_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopq"},
		{"mauvais secret", "", "ec_" + adminID + "_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopq"},
		{"jeton expiré", "", expired},
		{"jeton révoqué", "", revoked},
	}

	// One validated act per hub, and one of Conques (12076, commune
	// déléguée of 12218) uploaded by h3, whose only member is 12218.
	f.manifestH1 = manifestBytes(t, "h1", act("a.pdf", f.pdfH1, 1))
	b1 := uploadBatch(t, client.New(s.URL, f.hub1), f.manifestH1, map[string][]byte{"a.pdf": f.pdfH1})
	b2 := uploadBatch(t, client.New(s.URL, f.hub2), manifestBytes(t, "h2", entryFor("a.pdf", f.pdfH2, "12145", 1)), map[string][]byte{"a.pdf": f.pdfH2})
	pdfConques := goodPDF(13)
	b3 := uploadBatch(t, client.New(s.URL, hub3), manifestBytes(t, "h3", entryFor("conques.pdf", pdfConques, "12076", 1)),
		map[string][]byte{"conques.pdf": pdfConques})
	for _, b := range []store.BatchView{b1, b2, b3} {
		if len(b.Acts) != 1 || b.Acts[0].State != "archived" || b.Acts[0].ID == nil || b.State != "done" {
			t.Fatalf("lot %s (%s): état %s, entrées %v", b.ID, b.Hub, b.State, b.Acts)
		}
	}
	f.batchH1, f.batchH2 = b1.ID, b2.ID
	f.actH1, f.actH2 = *b1.Acts[0].ID, *b2.Acts[0].ID
	actConques := *b3.Acts[0].ID

	specs := map[string]routeSpec{
		"POST /api/v1/batches": {ok: 200, build: func(string) apiReq {
			// The same manifest again: 200 with the existing batch, and
			// nothing changes.
			return apiReq{path: "/api/v1/batches", body: f.manifestH1,
				header: http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {key(f.manifestH1)}}}
		}},
		"GET /api/v1/batches/{id}": {ok: 200, build: func(id string) apiReq {
			return apiReq{path: "/api/v1/batches/" + id}
		}},
		"PUT /api/v1/batches/{id}/files/{file}": {ok: 200, build: func(id string) apiReq {
			// Both batches name a.pdf, already received: 200 already_received.
			body := f.pdfH1
			if id == f.batchH2 {
				body = f.pdfH2
			}
			return apiReq{path: "/api/v1/batches/" + id + "/files/a.pdf", body: body,
				header: http.Header{"Content-Type": {"application/pdf"}}}
		}},
		"GET /api/v1/batches/{id}/receipt": {ok: 200, build: func(id string) apiReq {
			return apiReq{path: "/api/v1/batches/" + id + "/receipt"}
		}},
		"POST /api/v1/batches/{id}/submit": {ok: 200, build: func(id string) apiReq {
			return apiReq{path: "/api/v1/batches/" + id + "/submit"}
		}},
		"GET /api/v1/acts": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/acts"}
		}},
		"GET /api/v1/acts/{id}": {ok: 200, build: func(id string) apiReq {
			return apiReq{path: "/api/v1/acts/" + id}
		}},
		"GET /api/v1/acts/{id}/pdf": {ok: 200, build: func(id string) apiReq {
			return apiReq{path: "/api/v1/acts/" + id + "/pdf", header: http.Header{"Etatcivil-Purpose": {"controle"}}}
		}},
		"GET /api/v1/acts/{id}/verification": {ok: 200, build: func(id string) apiReq {
			return apiReq{path: "/api/v1/acts/" + id + "/verification"}
		}},
		"GET /api/v1/audit/verify": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/audit/verify"}
		}},
		"GET /api/v1/audit/events": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/audit/events?actor=system"}
		}},
		"GET /api/v1/audit/export": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/audit/export?commune=12202&year=2021", header: http.Header{"Etatcivil-Purpose": {"controle"}}}
		}},
		"GET /api/v1/fixity": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/fixity"}
		}},
		"POST /api/v1/acts/retry": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/acts/retry", body: []byte(`{"ids": []}`),
				header: http.Header{"Content-Type": {"application/json"}}}
		}},
		"GET /api/v1/transmissions": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/transmissions"}
		}},
		"POST /api/v1/transmissions/retry": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/transmissions/retry", body: []byte(`{"state": "dead"}`),
				header: http.Header{"Content-Type": {"application/json"}}}
		}},
		"POST /api/v1/transmissions/backfill": {ok: 404, build: func(string) apiReq {
			// No registries file in this test: the registry is unknown, which
			// an admin is told (404) and others never reach (403).
			return apiReq{path: "/api/v1/transmissions/backfill", body: []byte(`{"registry": "insee"}`), header: http.Header{"Content-Type": {"application/json"}}}
		}},
		"GET /api/v1/dashboard": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/dashboard"}
		}},
		"GET /api/v1/registers": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/registers"}
		}},
		"GET /api/v1/batches": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/batches"}
		}},
		"GET /api/v1/registries": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/registries"}
		}},
		"POST /api/v1/transmissions/flush": {ok: 202, build: func(string) apiReq {
			return apiReq{path: "/api/v1/transmissions/flush", body: []byte(`{}`), header: http.Header{"Content-Type": {"application/json"}}}
		}},
		"GET /api/v1/communes/{code}": {ok: 200, build: func(string) apiReq {
			return apiReq{path: "/api/v1/communes/12202"}
		}},
	}

	// The roles INTERFACE.md gives the documented routes: the table must
	// not widen them.
	documented := map[string][]auth.Role{
		"GET /api/v1/batches/{id}":  {auth.RoleHub, auth.RoleAdmin},
		"GET /api/v1/acts":          {auth.RoleHub, auth.RoleTownhall, auth.RoleAuditor, auth.RoleAdmin},
		"GET /api/v1/acts/{id}":     {auth.RoleHub, auth.RoleTownhall, auth.RoleAuditor, auth.RoleAdmin},
		"GET /api/v1/acts/{id}/pdf": {auth.RoleHub, auth.RoleTownhall, auth.RoleAuditor, auth.RoleAdmin},
	}

	authenticated := []principal{
		{"hub h1", auth.RoleHub, f.hub1},
		{"mairie 12202", auth.RoleTownhall, f.townhall},
		{"auditeur", auth.RoleAuditor, f.auditor},
		{"admin", auth.RoleAdmin, f.admin},
	}
	// Every role must be tried, so a new role cannot slip through.
	for _, r := range auth.Roles {
		if !slices.ContainsFunc(authenticated, func(p principal) bool { return p.role == r }) {
			t.Fatalf("rôle %s absent de la matrice", r)
		}
	}

	const missingUUID = "00000000-0000-4000-8000-000000000000"
	seen := map[string]bool{}
	for _, rt := range api.Routes {
		name := rt.Method + " " + rt.Pattern
		seen[name] = true
		spec, ok := specs[name]
		if !ok {
			t.Errorf("route %s sans requête de test : ajoutez-la à la matrice d'autorisation", name)
			continue
		}
		if want, ok := documented[name]; ok && !sameRoles(rt.Roles, want) {
			t.Errorf("%s: rôles %v, INTERFACE.md dit %v", name, rt.Roles, want)
		}
		var own, other string
		switch rt.Scope {
		case api.ScopeNone:
		case api.ScopeBatch:
			own, other = f.batchH1, f.batchH2
		case api.ScopeAct:
			own, other = f.actH1, f.actH2
		default:
			t.Fatalf("%s: portée %d inconnue de la matrice", name, rt.Scope)
		}
		call := func(p principal, target string) apiReq {
			r := spec.build(target)
			r.method = rt.Method
			return r
		}

		for _, p := range unauthenticated {
			what := name + " / " + p.name
			r := send(t, s.URL, p.token, call(p, own))
			wantProblem(t, what, r, 401, "unauthenticated")
		}

		for _, p := range authenticated {
			what := name + " / " + p.name
			if !slices.Contains(rt.Roles, p.role) {
				wantProblem(t, what, send(t, s.URL, p.token, call(p, own)), 403, "forbidden")
				if rt.Scope != api.ScopeNone {
					// The role check comes first: another tenant's object
					// gives 403 as well, never a hint of its existence.
					wantProblem(t, what+" (autre)", send(t, s.URL, p.token, call(p, other)), 403, "forbidden")
				}
				continue
			}
			expectOK := func(what string, r apiResp) {
				t.Helper()
				if r.status != spec.ok {
					t.Fatalf("%s: statut %d, attendu %d: %s", what, r.status, spec.ok, r.body)
				}
			}
			switch rt.Scope {
			case api.ScopeNone:
				expectOK(what, send(t, s.URL, p.token, call(p, "")))
				continue
			case api.ScopeBatch:
				switch p.role {
				case auth.RoleHub:
					expectOK(what+" (son lot)", send(t, s.URL, p.token, call(p, own)))
					wantProblem(t, what+" (lot de h2)", send(t, s.URL, p.token, call(p, other)), 404, "not_found")
				case auth.RoleAdmin:
					expectOK(what+" (lot de h1)", send(t, s.URL, p.token, call(p, own)))
					expectOK(what+" (lot de h2)", send(t, s.URL, p.token, call(p, other)))
				default:
					t.Fatalf("%s: aucune attente pour le rôle %s sur un lot", what, p.role)
				}
			case api.ScopeAct:
				switch p.role {
				case auth.RoleHub, auth.RoleTownhall:
					expectOK(what+" (acte de 12202)", send(t, s.URL, p.token, call(p, own)))
					wantProblem(t, what+" (acte de 12145)", send(t, s.URL, p.token, call(p, other)), 404, "not_found")
				case auth.RoleAuditor, auth.RoleAdmin:
					expectOK(what+" (acte de 12202)", send(t, s.URL, p.token, call(p, own)))
					expectOK(what+" (acte de 12145)", send(t, s.URL, p.token, call(p, other)))
				default:
					t.Fatalf("%s: aucune attente pour le rôle %s sur un acte", what, p.role)
				}
			}
			// An object that does not exist, or an id that is not one, is
			// 404 for everyone allowed.
			wantProblem(t, what+" (inexistant)", send(t, s.URL, p.token, call(p, missingUUID)), 404, "not_found")
			wantProblem(t, what+" (id invalide)", send(t, s.URL, p.token, call(p, "pas-un-identifiant")), 404, "")
		}
	}
	for name := range specs {
		if !seen[name] {
			t.Errorf("la matrice décrit %s, absente de api.Routes", name)
		}
	}

	// Hub h2 posting h1's manifest: a hub that differs from the token's.
	r := send(t, s.URL, f.hub2, apiReq{method: "POST", path: "/api/v1/batches", body: f.manifestH1,
		header: http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {key(f.manifestH1)}}})
	wantProblem(t, "POST /api/v1/batches, manifeste de h1 avec le jeton de h2", r, 403, "")

	// Listing: each caller sees exactly the acts in its scope.
	all := []string{f.actH1, f.actH2, actConques}
	for _, tc := range []struct {
		who, token, query string
		want              []string
	}{
		{"hub h1", f.hub1, "", []string{f.actH1}},
		{"hub h2", f.hub2, "", []string{f.actH2}},
		{"hub h3 (12218)", hub3, "", []string{actConques}},
		{"mairie 12202", f.townhall, "", []string{f.actH1}},
		{"mairie 12218", townhallConques, "", []string{actConques}},
		{"auditeur", f.auditor, "", all},
		{"admin", f.admin, "", all},
		{"admin, commune=12218", f.admin, "?commune=12218", []string{actConques}},
		{"admin, commune=12076", f.admin, "?commune=12076", []string{actConques}},
		{"mairie 12202, commune=12145", f.townhall, "?commune=12145", nil},
	} {
		r := send(t, s.URL, tc.token, apiReq{method: "GET", path: "/api/v1/acts" + tc.query})
		if r.status != 200 {
			t.Fatalf("liste (%s): statut %d: %s", tc.who, r.status, r.body)
		}
		var page struct {
			Acts  []store.ActSummary `json:"acts"`
			Next  *string            `json:"next"`
			Total int                `json:"total"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range page.Acts {
			got = append(got, a.ID)
		}
		if page.Total != len(tc.want) || !sameSet(got, tc.want) || page.Next != nil {
			t.Errorf("liste (%s): total %d, actes %v, next %v ; attendus %d: %v", tc.who, page.Total, got, page.Next, len(tc.want), tc.want)
		}
		if strings.Contains(string(r.body), `"persons"`) || strings.Contains(string(r.body), "MARTIN") {
			t.Errorf("liste (%s): données personnelles dans la liste: %s", tc.who, r.body)
		}
	}

	// Commune nouvelle: the town hall of 12218 reaches the act of Conques
	// (12076), and the one of 12202 does not, nor the reverse.
	for _, tc := range []struct {
		who, token, act string
		want            int
	}{
		{"mairie 12218 → acte de 12076", townhallConques, actConques, 200},
		{"hub h3 → acte de 12076", hub3, actConques, 200},
		{"mairie 12218 → acte de 12202", townhallConques, f.actH1, 404},
		{"mairie 12202 → acte de 12076", f.townhall, actConques, 404},
		{"hub h1 → acte de 12076", f.hub1, actConques, 404},
	} {
		r := send(t, s.URL, tc.token, apiReq{method: "GET", path: "/api/v1/acts/" + tc.act})
		if r.status != tc.want {
			t.Errorf("%s: statut %d, attendu %d: %s", tc.who, r.status, tc.want, r.body)
		}
		if tc.want == 200 {
			var a store.ActView
			if err := json.Unmarshal(r.body, &a); err != nil {
				t.Fatal(err)
			}
			if a.ID != tc.act || a.Commune != "12076" {
				t.Errorf("%s: acte %s commune %s", tc.who, a.ID, a.Commune)
			}
		}
	}
}

func sameRoles(a, b []auth.Role) bool {
	x := slices.Clone(a)
	y := slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func sameSet(a, b []string) bool {
	x := slices.Clone(a)
	y := slices.Clone(b)
	sort.Strings(x)
	sort.Strings(y)
	return len(x) == len(y) && (len(x) == 0 || slices.Equal(x, y))
}
