package api_test

// The OpenAPI description (schemas/openapi.yaml) against the route table
// and against real answers: every route of api.Routes is described, and
// every answer the tests below get from a real stack is validated with
// kin-openapi, as is every request they send.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/registry"
	"github.com/etatcivil/etatcivil/internal/registrysim"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
	"github.com/etatcivil/etatcivil/schemas"
)

// loadSpec loads and validates schemas/openapi.yaml and builds a router
// on it.
func loadSpec(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(schemas.OpenAPI)
	if err != nil {
		t.Fatalf("openapi.yaml illisible: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml invalide: %v", err)
	}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("routeur OpenAPI: %v", err)
	}
	return doc, r
}

var oaScopeNames = map[api.ScopeKind]string{api.ScopeNone: "none", api.ScopeBatch: "batch", api.ScopeAct: "act"}

// stringList reads an extension's list of strings.
func oaStrings(v any) []string {
	var out []string
	switch l := v.(type) {
	case []any:
		for _, x := range l {
			s, _ := x.(string)
			out = append(out, s)
		}
	case []string:
		out = l
	}
	return out
}

// specDrift lists the differences between the operations of doc and a
// route table: routes not described, operations not routed, and roles or
// scopes that differ from x-roles / x-scope.
func specDrift(doc *openapi3.T, routes []api.Route) []string {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op
		}
	}
	var problems []string
	routed := map[string]bool{}
	for _, rt := range routes {
		name := rt.Method + " " + rt.Pattern
		routed[name] = true
		op, ok := ops[name]
		if !ok {
			problems = append(problems, "route "+name+" absente de openapi.yaml")
			continue
		}
		var roles []string
		for _, r := range rt.Roles {
			roles = append(roles, string(r))
		}
		specRoles := oaStrings(op.Extensions["x-roles"])
		slices.Sort(roles)
		slices.Sort(specRoles)
		if !slices.Equal(roles, specRoles) {
			problems = append(problems, fmt.Sprintf("%s : x-roles %v, la table dit %v", name, specRoles, roles))
		}
		if sc, _ := op.Extensions["x-scope"].(string); sc != oaScopeNames[rt.Scope] {
			problems = append(problems, fmt.Sprintf("%s : x-scope %q, la table dit %q", name, sc, oaScopeNames[rt.Scope]))
		}
	}
	for name := range ops {
		if !routed[name] {
			problems = append(problems, "opération "+name+" de openapi.yaml absente de api.Routes")
		}
	}
	sort.Strings(problems)
	return problems
}

// TestOpenAPIRoutes: the description and the route table name the same
// operations, with the same roles and scopes, both ways.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	doc, _ := loadSpec(t)
	for _, p := range specDrift(doc, api.Routes) {
		t.Error(p)
	}
	// The check itself must see drift: a route added, one removed, a role
	// widened.
	noop := func(*api.Server, http.ResponseWriter, *http.Request, auth.Principal) error { return nil }
	added := append(slices.Clone(api.Routes), api.Route{Method: "DELETE", Pattern: "/api/v1/acts/{id}", Roles: []auth.Role{auth.RoleAdmin}, Handler: noop})
	if d := specDrift(doc, added); len(d) != 1 || !strings.Contains(d[0], "DELETE /api/v1/acts/{id}") {
		t.Errorf("route ajoutée non vue: %v", d)
	}
	if d := specDrift(doc, api.Routes[1:]); len(d) != 1 || !strings.Contains(d[0], api.Routes[0].Pattern) {
		t.Errorf("route retirée non vue: %v", d)
	}
	widened := slices.Clone(api.Routes)
	for i, rt := range widened {
		if rt.Method == "POST" && rt.Pattern == "/api/v1/transmissions/flush" {
			widened[i].Roles = []auth.Role{auth.RoleAdmin, auth.RoleTownhall}
		}
	}
	if d := specDrift(doc, widened); len(d) != 1 || !strings.Contains(d[0], "x-roles") {
		t.Errorf("rôle élargi non vu: %v", d)
	}
}

// bearerAuth is the spec's bearerAuth scheme as the validator checks a
// request: a non-empty Bearer token in Authorization.
func oaBearer(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecuritySchemeName != "bearerAuth" {
		return fmt.Errorf("schéma de sécurité %q inconnu", in.SecuritySchemeName)
	}
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); !ok || strings.TrimSpace(tok) == "" {
		return errors.New("pas de jeton Bearer")
	}
	return nil
}

// specCalls sends requests to a stack, validates each request and each
// answer against the spec, and records which statuses each operation gave.
type specCalls struct {
	base   string
	router routers.Router
	seen   map[string]map[int]bool
}

// oaCall is one exchange of the test.
type oaCall struct {
	what  string
	token string
	req   apiReq
	want  int
	// typ is the problem type expected (for a problem answer), if set.
	typ string
	// offSpec: the request breaks the spec on purpose (no token, a value
	// out of its enum…): its validation must fail; the answer is still
	// validated.
	offSpec bool
	// chunked sends the body without Content-Length.
	chunked bool
}

// oaExchange performs req (chunked: without Content-Length) and returns
// the whole answer.
func oaExchange(t *testing.T, base, token string, req apiReq, chunked bool) apiResp {
	t.Helper()
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
		if chunked {
			body = struct{ io.Reader }{body} // unknown length: chunked
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, req.method, base+req.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: lecture: %v", req.method, req.path, err)
	}
	return apiResp{status: resp.StatusCode, header: resp.Header, body: data}
}

// requestInput builds the validator's view of a request.
func (sc *specCalls) requestInput(t *testing.T, token string, req apiReq) *openapi3filter.RequestValidationInput {
	t.Helper()
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequest(req.method, sc.base+req.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	route, params, err := sc.router.FindRoute(hr)
	if err != nil {
		t.Fatalf("%s %s : aucune opération de openapi.yaml: %v", req.method, req.path, err)
	}
	return &openapi3filter.RequestValidationInput{Request: hr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: oaBearer, MultiError: true}}
}

// validateAnswer checks an answer against the operation of in.
func validateAnswer(in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) error {
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), out)
}

// do performs c, validating its request and its answer.
func (sc *specCalls) do(t *testing.T, c oaCall) apiResp {
	t.Helper()
	in := sc.requestInput(t, c.token, c.req)
	op := in.Route.Method + " " + in.Route.Path
	err := openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case c.offSpec && err == nil:
		t.Errorf("%s (%s) : la requête devait sortir du contrat et le validateur l'accepte", c.what, op)
	case !c.offSpec && err != nil:
		t.Errorf("%s (%s) : requête hors contrat: %v", c.what, op, err)
	}
	r := oaExchange(t, sc.base, c.token, c.req, c.chunked)
	if r.status != c.want {
		t.Fatalf("%s (%s) : statut %d, attendu %d: %s", c.what, op, r.status, c.want, r.body)
	}
	if err := validateAnswer(in, r.status, r.header, r.body); err != nil {
		t.Errorf("%s (%s) : réponse %d hors contrat: %v\ncorps: %s", c.what, op, r.status, err, oaClip(r.body))
	}
	if strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
		p := r.problem(t)
		if fmt.Sprint(p["status"]) != strconv.Itoa(r.status) {
			t.Errorf("%s : status %v dans le corps, %d en HTTP", c.what, p["status"], r.status)
		}
		if c.typ != "" && p["type"] != c.typ {
			t.Errorf("%s : type %v, attendu %q: %s", c.what, p["type"], c.typ, r.body)
		}
	} else if c.typ != "" {
		t.Errorf("%s : problème %q attendu, Content-Type %q", c.what, c.typ, r.header.Get("Content-Type"))
	}
	if sc.seen[op] == nil {
		sc.seen[op] = map[int]bool{}
	}
	sc.seen[op][r.status] = true
	return r
}

func oaClip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

func oaJSONHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

func oaDecode[T any](t *testing.T, r apiResp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("JSON illisible: %v: %s", err, oaClip(r.body))
	}
	return v
}

// oaRegistriesYAML routes every archived act to three registries of the
// simulator: one that acknowledges, one that refuses, one that is down.
const oaRegistriesYAML = `registries:
  - id: ok
    connector: http
    endpoint: %s/http/ok
    route: {}
  - id: strict
    connector: http
    endpoint: %s/http/strict
    route: {}
  - id: down
    connector: http
    endpoint: %s/http/down
    route: {}
    retry: {initial_backoff: 50ms, max_backoff: 100ms, max_attempts: 2}
`

func oaSim(t *testing.T, f registrysim.Faults) string {
	t.Helper()
	sim := registrysim.New()
	if err := sim.SetFaults(f); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestOpenAPIResponses calls every route on a real stack holding real
// data (archived and rejected acts, batches in every state, transmissions
// acknowledged, refused and dead) and validates every request and answer,
// errors included, against openapi.yaml.
func TestOpenAPIResponses(t *testing.T) {
	t.Parallel()
	doc, router := loadSpec(t)

	cfg, err := registry.Parse("registries.yaml", fmt.Appendf(nil, oaRegistriesYAML,
		oaSim(t, registrysim.Faults{}), oaSim(t, registrysim.Faults{RefuseRate: 1}), oaSim(t, registrysim.Faults{ErrorRate: 1})))
	if err != nil {
		t.Fatal(err)
	}
	routes := &registry.Routes{}
	routes.Set(cfg)
	const maxFile, maxManifest = 200_000, 1 << 16
	s := testenv.NewStack(t, testenv.StackOptions{
		Tune:   func(d *ingest.Deps) { d.Routes = routes },
		Limits: api.Limits{MaxFileSize: maxFile, MaxManifestSize: maxManifest, AuthFailuresPerMinute: 3},
	})
	s.Hub(t, "h1", "12202")
	s.Hub(t, "h2", "12145")
	hub1 := s.Token(t, auth.RoleHub, "h1")
	hub2 := s.Token(t, auth.RoleHub, "h2")
	townhall := s.Token(t, auth.RoleTownhall, "", "12202")
	auditor := s.Token(t, auth.RoleAuditor, "")
	admin := s.Token(t, auth.RoleAdmin, "")
	sc := &specCalls{base: s.URL, router: router, seen: map[string]map[int]bool{}}
	c1 := client.New(s.URL, hub1)

	good := pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 1, DPI: 72})
	bad := []byte("pas un pdf")
	if len(good) >= maxFile {
		t.Fatalf("PDF de test de %d octets, limite %d", len(good), maxFile)
	}

	// Batch A (h1): one good file, one bad, sent and checked step by step.
	manifestA := manifestBytes(t, "h1", act("bon.pdf", good, 1), act("mauvais.pdf", bad, 2))
	postA := apiReq{method: "POST", path: "/api/v1/batches", body: manifestA,
		header: http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {key(manifestA)}}}
	ra := sc.do(t, oaCall{what: "création du lot A", token: hub1, req: postA, want: 201})
	batchA := oaDecode[store.BatchView](t, ra).ID
	sc.do(t, oaCall{what: "PUT bon.pdf", token: hub1, want: 201, req: apiReq{method: "PUT", path: "/api/v1/batches/" + batchA + "/files/bon.pdf",
		body: good, header: http.Header{"Content-Type": {"application/pdf"}}}})
	sc.do(t, oaCall{what: "PUT mauvais.pdf", token: hub1, want: 201, req: apiReq{method: "PUT", path: "/api/v1/batches/" + batchA + "/files/mauvais.pdf",
		body: bad, header: http.Header{"Content-Type": {"application/pdf"}}}})
	sc.do(t, oaCall{what: "même manifeste", token: hub1, req: postA, want: 200})
	sc.do(t, oaCall{what: "soumission du lot A", token: hub1, want: 200, req: apiReq{method: "POST", path: "/api/v1/batches/" + batchA + "/submit"}})
	a := waitBatch(t, c1, batchA)
	goodAct, badAct := entryByFile(t, a, "bon.pdf"), entryByFile(t, a, "mauvais.pdf")
	if goodAct.State != "archived" || badAct.State != "rejected" || badAct.Reason == nil || *badAct.Reason != "not_pdf" || goodAct.ID == nil || badAct.ID == nil {
		t.Fatalf("lot A: %s, %s", describe(goodAct), describe(badAct))
	}
	actGood, actBad := *goodAct.ID, *badAct.ID

	// Batch B (h2): another tenant's batch and act.
	pdfB := pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 2, DPI: 72})
	b := uploadBatch(t, client.New(s.URL, hub2), manifestBytes(t, "h2", entryFor("b.pdf", pdfB, "12145", 1)), map[string][]byte{"b.pdf": pdfB})
	if b.Acts[0].ID == nil || b.Acts[0].State != "archived" {
		t.Fatalf("lot B: %s", describe(b.Acts[0]))
	}
	batchB, actB := b.ID, *b.Acts[0].ID

	// Batch C (h1): left receiving, for the upload errors.
	pdfC, pdfLate := pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 3, DPI: 72}), pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 4, DPI: 72})
	manifestC := manifestBytes(t, "h1", act("faux.pdf", pdfC, 3), act("tard.pdf", pdfLate, 4))
	rc := sc.do(t, oaCall{what: "création du lot C", token: hub1, want: 201, req: apiReq{method: "POST", path: "/api/v1/batches", body: manifestC,
		header: http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {key(manifestC)}}}})
	batchC := oaDecode[store.BatchView](t, rc).ID
	put := func(batch, file string, body []byte) apiReq {
		return apiReq{method: "PUT", path: "/api/v1/batches/" + batch + "/files/" + file, body: body, header: http.Header{"Content-Type": {"application/pdf"}}}
	}
	sc.do(t, oaCall{what: "PUT d'autres octets", token: hub1, want: 422, typ: "checksum_mismatch", req: put(batchC, "faux.pdf", pdfLate)})
	// After a mismatch the right bytes are still taken; then the file is in.
	sc.do(t, oaCall{what: "PUT des bons octets", token: hub1, want: 201, req: put(batchC, "faux.pdf", pdfC)})
	sc.do(t, oaCall{what: "PUT déjà reçu", token: hub1, want: 200, req: put(batchC, "faux.pdf", pdfC)})
	sc.do(t, oaCall{what: "PUT hors manifeste", token: hub1, want: 409, typ: "file_not_in_manifest", req: put(batchC, "inconnu.pdf", good)})
	sc.do(t, oaCall{what: "PUT trop gros", token: hub1, want: 413, typ: "too_large", req: put(batchC, "tard.pdf", make([]byte, maxFile+1))})
	sc.do(t, oaCall{what: "PUT sans Content-Length", token: hub1, want: 411, typ: "length_required", chunked: true, req: put(batchC, "tard.pdf", pdfLate)})
	sc.do(t, oaCall{what: "récépissé d'un lot en cours", token: hub1, want: 409, typ: "conflict",
		req: apiReq{method: "GET", path: "/api/v1/batches/" + batchC + "/receipt"}})

	// Batch D (h1): the one-shot multipart form, with a stray part.
	pdfD := pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 5, DPI: 72})
	manifestD := manifestBytes(t, "h1", act("multi.pdf", pdfD, 5))
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	for _, p := range []struct {
		name string
		data []byte
	}{{"manifest", manifestD}, {"multi.pdf", pdfD}, {"egare.pdf", good}} {
		file := p.name
		if file == "manifest" {
			file = "manifest.json"
		}
		w, err := mw.CreateFormFile(p.name, file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	rd := sc.do(t, oaCall{what: "formulaire en une fois", token: hub1, want: 201, req: apiReq{method: "POST", path: "/api/v1/batches", body: form.Bytes(),
		header: http.Header{"Content-Type": {mw.FormDataContentType()}, "Idempotency-Key": {key(manifestD)}}}})
	if !strings.Contains(string(rd.body), `"errors"`) || !strings.Contains(string(rd.body), "egare.pdf") {
		t.Errorf("formulaire: la partie égarée n'est pas signalée: %s", rd.body)
	}
	if d := waitBatch(t, c1, oaDecode[store.BatchView](t, rd).ID); d.Acts[0].State != "archived" {
		t.Fatalf("lot D: %s", describe(d.Acts[0]))
	}

	// Transmissions: four archived acts (A's good file, B's, C's faux.pdf
	// once its right bytes came, D's), three registries each; wait until
	// every one is acknowledged, refused or dead.
	deadline := time.Now().Add(120 * time.Second)
	for {
		r := send(t, s.URL, admin, apiReq{method: "GET", path: "/api/v1/transmissions"})
		list := oaDecode[struct {
			Transmissions []store.TransmissionItem `json:"transmissions"`
		}](t, r).Transmissions
		settled := len(list) == 12
		for _, tr := range list {
			settled = settled && slices.Contains([]string{"acknowledged", "refused", "dead"}, tr.State)
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transmissions non abouties: %s", r.body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	const missing = "00000000-0000-4000-8000-000000000000"
	get := func(path string, h ...string) apiReq {
		r := apiReq{method: "GET", path: path, header: http.Header{}}
		for i := 0; i+1 < len(h); i += 2 {
			r.header.Set(h[i], h[i+1])
		}
		return r
	}
	purpose := []string{"Etatcivil-Purpose", "controle", "Etatcivil-Reason", "vérification du contrat"}

	calls := []oaCall{
		// Batches.
		{what: "lots du hub", token: hub1, want: 200, req: get("/api/v1/batches")},
		{what: "lots de h1 (admin)", token: admin, want: 200, req: get("/api/v1/batches?hub=h1&limit=10")},
		{what: "lots, limite négative", token: hub1, want: 400, typ: "invalid_parameter", offSpec: true, req: get("/api/v1/batches?limit=-1")},
		{what: "lot A", token: hub1, want: 200, req: get("/api/v1/batches/" + batchA)},
		{what: "lot C en réception", token: admin, want: 200, req: get("/api/v1/batches/" + batchC)},
		{what: "lot de h2 par h1", token: hub1, want: 404, typ: "not_found", req: get("/api/v1/batches/" + batchB)},
		{what: "lot au mauvais identifiant", token: hub1, want: 404, typ: "not_found", req: get("/api/v1/batches/pas-un-identifiant")},
		{what: "PUT après archivage", token: hub1, want: 200, req: put(batchA, "bon.pdf", good)},
		{what: "PUT dans le lot de h2", token: hub1, want: 404, typ: "not_found", req: put(batchB, "b.pdf", pdfB)},
		{what: "soumission du lot de h2", token: hub1, want: 404, typ: "not_found", req: apiReq{method: "POST", path: "/api/v1/batches/" + batchB + "/submit"}},
		{what: "nouvelle soumission", token: hub1, want: 200, req: apiReq{method: "POST", path: "/api/v1/batches/" + batchA + "/submit"}},
		{what: "récépissé", token: hub1, want: 200, req: get("/api/v1/batches/" + batchA + "/receipt")},
		{what: "récépissé (admin, lot de h2)", token: admin, want: 200, req: get("/api/v1/batches/" + batchB + "/receipt")},
		{what: "récépissé du lot de h2", token: hub1, want: 404, typ: "not_found", req: get("/api/v1/batches/" + batchB + "/receipt")},
		{what: "manifeste illisible", token: hub1, want: 400, typ: "manifest_unparseable", offSpec: true,
			req: apiReq{method: "POST", path: "/api/v1/batches", body: []byte("pas du json"), header: oaJSONHeader()}},
		{what: "clé d'idempotence fausse", token: hub1, want: 400, typ: "idempotency_key_mismatch",
			req: apiReq{method: "POST", path: "/api/v1/batches", body: manifestA,
				header: http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {strings.Repeat("0", 64)}}}},
		{what: "manifeste de h1 avec le jeton de h2", token: hub2, want: 403, typ: "hub_mismatch", req: postA},
		{what: "manifeste trop gros", token: hub1, want: 413, typ: "too_large",
			req: apiReq{method: "POST", path: "/api/v1/batches", body: fmt.Appendf(nil, `{"hub": "h1", "acts": [], "note": %q}`, strings.Repeat("x", maxManifest)), header: oaJSONHeader()}},
		{what: "opérateur inconnu", token: admin, want: 400, typ: "hub_unknown",
			req: apiReq{method: "POST", path: "/api/v1/batches", body: manifestBytes(t, "inconnu", act("x.pdf", good, 9)), header: oaJSONHeader()}},

		// Acts.
		{what: "actes (mairie)", token: townhall, want: 200, req: get("/api/v1/acts")},
		{what: "actes, page de 1 (admin)", token: admin, want: 200, req: get("/api/v1/acts?limit=1")},
		{what: "actes filtrés", token: auditor, want: 200, req: get("/api/v1/acts?commune=12202&year=2021&kind=naissance&state=archived&registry_state=refused&q=MARTIN")},
		{what: "actes, curseur faux", token: hub1, want: 400, typ: "invalid_request", req: get("/api/v1/acts?cursor=pas-un-curseur")},
		{what: "actes, type inconnu", token: hub1, want: 400, typ: "invalid_parameter", offSpec: true, req: get("/api/v1/acts?kind=chat")},
		{what: "actes, année illisible", token: hub1, want: 400, typ: "invalid_parameter", offSpec: true, req: get("/api/v1/acts?year=deux")},
		{what: "acte archivé", token: hub1, want: 200, req: get("/api/v1/acts/" + actGood)},
		{what: "acte refusé", token: townhall, want: 200, req: get("/api/v1/acts/" + actBad)},
		{what: "acte et personnes", token: auditor, want: 200, req: get("/api/v1/acts/"+actGood+"?persons=1", purpose...)},
		{what: "personnes sans finalité", token: hub1, want: 400, typ: "purpose_required", req: get("/api/v1/acts/" + actGood + "?persons=1")},
		{what: "acte de h2 par h1", token: hub1, want: 404, typ: "not_found", req: get("/api/v1/acts/"+actB+"?persons=1", purpose...)},
		{what: "acte inexistant", token: admin, want: 404, typ: "not_found", req: get("/api/v1/acts/" + missing)},
		{what: "PDF", token: townhall, want: 200, req: get("/api/v1/acts/"+actGood+"/pdf", purpose...)},
		{what: "PDF, version 1", token: admin, want: 200, req: get("/api/v1/acts/"+actB+"/pdf?version=1", "Etatcivil-Purpose", "archivage")},
		{what: "PDF sans finalité", token: hub1, want: 400, typ: "purpose_required", offSpec: true, req: get("/api/v1/acts/" + actGood + "/pdf")},
		{what: "PDF, finalité inconnue", token: hub1, want: 400, typ: "purpose_required", offSpec: true,
			req: get("/api/v1/acts/"+actGood+"/pdf", "Etatcivil-Purpose", "curiosite")},
		{what: "PDF de h2 par h1", token: hub1, want: 404, typ: "not_found", req: get("/api/v1/acts/"+actB+"/pdf", purpose...)},
		{what: "PDF d'une version absente", token: hub1, want: 404, typ: "not_found", req: get("/api/v1/acts/"+actGood+"/pdf?version=7", purpose...)},
		{what: "PDF d'un acte refusé", token: hub1, want: 404, typ: "not_found", req: get("/api/v1/acts/"+actBad+"/pdf", purpose...)},
		{what: "PDF, version illisible", token: hub1, want: 400, typ: "invalid_parameter", offSpec: true, req: get("/api/v1/acts/"+actGood+"/pdf?version=v1", purpose...)},
		{what: "vérification de la chaîne d'audit", token: auditor, want: 200, req: get("/api/v1/audit/verify")},
		{what: "journal d'un acte", token: auditor, want: 200, req: get("/api/v1/audit/events?act=" + actGood + "&from=2020-01-01&to=2100-01-01T00:00:00Z&limit=2")},
		{what: "journal d'un jeton", token: admin, want: 200, req: get("/api/v1/audit/events?actor=system")},
		{what: "journal sans acte ni auteur", token: auditor, want: 400, typ: "invalid_parameter", req: get("/api/v1/audit/events")},
		{what: "journal, date illisible", token: auditor, want: 400, typ: "invalid_parameter", req: get("/api/v1/audit/events?actor=x&from=hier")},
		{what: "journal (mairie)", token: townhall, want: 403, typ: "forbidden", req: get("/api/v1/audit/events?act=" + actGood)},
		{what: "export", token: auditor, want: 200, req: get("/api/v1/audit/export?commune=12202&year=2021", purpose...)},
		{what: "export sans finalité", token: auditor, want: 400, typ: "purpose_required", offSpec: true, req: get("/api/v1/audit/export?commune=12202&year=2021")},
		{what: "export sans année", token: admin, want: 400, typ: "invalid_parameter", offSpec: true, req: get("/api/v1/audit/export?commune=12202", purpose...)},
		{what: "export, commune inconnue", token: admin, want: 400, typ: "unknown_commune", req: get("/api/v1/audit/export?commune=99999&year=2021", purpose...)},
		{what: "export (opérateur)", token: hub1, want: 403, typ: "forbidden", req: get("/api/v1/audit/export?commune=12202&year=2021", purpose...)},
		{what: "fixité", token: auditor, want: 200, req: get("/api/v1/fixity")},
		{what: "rapport d'intégrité", token: auditor, want: 200, req: get("/api/v1/acts/" + actGood + "/verification")},
		{what: "rapport d'intégrité d'un acte refusé", token: admin, want: 404, typ: "not_found", req: get("/api/v1/acts/" + actBad + "/verification")},
		{what: "relance d'actes", token: hub1, want: 200, req: apiReq{method: "POST", path: "/api/v1/acts/retry", body: []byte(`{"ids": []}`), header: oaJSONHeader()}},
		{what: "relance d'actes sans corps", token: admin, want: 200, req: apiReq{method: "POST", path: "/api/v1/acts/retry"}},
		{what: "relance d'actes, corps illisible", token: hub1, want: 400, typ: "invalid_request", offSpec: true,
			req: apiReq{method: "POST", path: "/api/v1/acts/retry", body: []byte("ids"), header: oaJSONHeader()}},

		// Reference.
		{what: "commune", token: townhall, want: 200, req: get("/api/v1/communes/12202")},
		{what: "commune déléguée", token: hub1, want: 200, req: get("/api/v1/communes/12076")},
		{what: "commune inconnue", token: auditor, want: 404, typ: "not_found", req: get("/api/v1/communes/99999")},

		// Follow-up.
		{what: "transmissions", token: auditor, want: 200, req: get("/api/v1/transmissions")},
		{what: "transmissions mortes (mairie)", token: townhall, want: 200, req: get("/api/v1/transmissions?state=dead&registry=down&limit=5")},
		{what: "transmissions, limite illisible", token: hub1, want: 400, typ: "invalid_parameter", offSpec: true, req: get("/api/v1/transmissions?limit=beaucoup")},
		{what: "registres destinataires", token: admin, want: 200, req: get("/api/v1/registries")},
		{what: "registres destinataires (hub)", token: hub2, want: 200, req: get("/api/v1/registries")},
		{what: "tableau de bord", token: townhall, want: 200, req: get("/api/v1/dashboard")},
		{what: "tableau de bord d'une commune", token: admin, want: 200, req: get("/api/v1/dashboard?commune=12202&limit=10")},
		{what: "tableau de bord, limite négative", token: admin, want: 400, typ: "invalid_parameter", offSpec: true, req: get("/api/v1/dashboard?limit=-2")},
		{what: "registres d'actes", token: hub1, want: 200, req: get("/api/v1/registers")},
		{what: "registres d'actes filtrés", token: auditor, want: 200, req: get("/api/v1/registers?commune=12202&year=2021&kind=naissance")},
		// Values out of the spec's enums: 400, named.
		{what: "registres d'actes, type inconnu", token: auditor, want: 400, typ: "invalid_parameter", offSpec: true, req: get("/api/v1/registers?kind=chat")},
		{what: "actes, état inconnu", token: auditor, want: 400, typ: "invalid_parameter", offSpec: true, req: get("/api/v1/acts?state=zombie")},
		{what: "actes, état de transmission inconnu", token: auditor, want: 400, typ: "invalid_parameter", offSpec: true, req: get("/api/v1/acts?registry_state=zombie")},
		{what: "registres d'actes, année illisible", token: auditor, want: 400, typ: "invalid_parameter", offSpec: true, req: get("/api/v1/registers?year=MMXXI")},
	}
	for _, c := range calls {
		sc.do(t, c)
	}

	// What the answers must hold for the spec to have been tried on real
	// values: a next page, persons, transmissions in every final state,
	// attention items, a commune with a parent.
	if r := sc.do(t, oaCall{what: "actes, page de 1", token: admin, want: 200, req: get("/api/v1/acts?limit=1")}); oaDecode[struct {
		Next *string `json:"next"`
	}](t, r).Next == nil {
		t.Errorf("pas de page suivante: %s", r.body)
	}
	r := sc.do(t, oaCall{what: "acte et personnes", token: admin, want: 200, req: get("/api/v1/acts/"+actGood+"?persons=1", purpose...)})
	full := oaDecode[store.ActView](t, r)
	states := map[string]bool{}
	for _, tr := range full.Transmissions {
		states[tr.State] = true
		if len(tr.History) == 0 {
			t.Errorf("transmission sans tentative: %+v", tr)
		}
	}
	if len(full.Persons) == 0 || string(full.Persons) == "[]" || !states["acknowledged"] || !states["refused"] || !states["dead"] {
		t.Errorf("acte: personnes %s, transmissions %v", full.Persons, states)
	}
	r = sc.do(t, oaCall{what: "tableau de bord", token: admin, want: 200, req: get("/api/v1/dashboard")})
	for _, w := range []string{`"what":"rejected"`, `"what":"refused"`, `"what":"dead"`} {
		if !strings.Contains(string(r.body), w) {
			t.Errorf("tableau de bord sans %s: %s", w, oaClip(r.body))
		}
	}
	if r := sc.do(t, oaCall{what: "commune déléguée", token: admin, want: 200, req: get("/api/v1/communes/12076")}); !strings.Contains(string(r.body), `"parent"`) {
		t.Errorf("commune déléguée sans parent: %s", r.body)
	}

	// Operations that change state, once the reads are done.
	for _, c := range []oaCall{
		{what: "relance des transmissions mortes", token: admin, want: 200, req: apiReq{method: "POST", path: "/api/v1/transmissions/retry", body: []byte(`{"state": "dead"}`), header: oaJSONHeader()}},
		{what: "relance par registre (hub)", token: hub1, want: 200, req: apiReq{method: "POST", path: "/api/v1/transmissions/retry", body: []byte(`{"registry": "strict", "ids": []}`), header: oaJSONHeader()}},
		{what: "relance sans critère", token: admin, want: 400, typ: "invalid_request", req: apiReq{method: "POST", path: "/api/v1/transmissions/retry", body: []byte(`{}`), header: oaJSONHeader()}},
		{what: "relance, état inconnu", token: admin, want: 400, typ: "invalid_parameter", offSpec: true, req: apiReq{method: "POST", path: "/api/v1/transmissions/retry", body: []byte(`{"state": "zombie"}`), header: oaJSONHeader()}},
		{what: "flush", token: admin, want: 202, req: apiReq{method: "POST", path: "/api/v1/transmissions/flush", body: []byte(`{"registry": "ok"}`), header: oaJSONHeader()}},
		{what: "flush sans corps", token: admin, want: 202, req: apiReq{method: "POST", path: "/api/v1/transmissions/flush"}},
		{what: "flush, corps illisible", token: admin, want: 400, typ: "invalid_request", offSpec: true, req: apiReq{method: "POST", path: "/api/v1/transmissions/flush", body: []byte("{"), header: oaJSONHeader()}},
		{what: "backfill", token: admin, want: 200, req: apiReq{method: "POST", path: "/api/v1/transmissions/backfill", body: []byte(`{"registry": "ok", "limit": 10}`), header: oaJSONHeader()}},
		{what: "backfill d'un registre inconnu", token: admin, want: 404, typ: "registry_unknown", req: apiReq{method: "POST", path: "/api/v1/transmissions/backfill", body: []byte(`{"registry": "insee"}`), header: oaJSONHeader()}},
		{what: "backfill sans registre", token: admin, want: 400, typ: "invalid_request", offSpec: true, req: apiReq{method: "POST", path: "/api/v1/transmissions/backfill", body: []byte(`{}`), header: oaJSONHeader()}},
	} {
		sc.do(t, c)
	}

	// Every route: 401 without a token, and 403 for a role the table
	// never allows.
	sample := map[string]apiReq{}
	for _, c := range calls {
		in := sc.requestInput(t, c.token, c.req)
		name := in.Route.Method + " " + in.Route.Path
		if _, ok := sample[name]; !ok && c.want < 300 {
			sample[name] = c.req
		}
	}
	sample["POST /api/v1/batches"] = postA
	sample["POST /api/v1/transmissions/retry"] = apiReq{method: "POST", path: "/api/v1/transmissions/retry", body: []byte(`{"state": "dead"}`), header: oaJSONHeader()}
	sample["POST /api/v1/transmissions/flush"] = apiReq{method: "POST", path: "/api/v1/transmissions/flush", body: []byte(`{}`), header: oaJSONHeader()}
	sample["POST /api/v1/transmissions/backfill"] = apiReq{method: "POST", path: "/api/v1/transmissions/backfill", body: []byte(`{"registry": "ok"}`), header: oaJSONHeader()}
	tokens := map[auth.Role]string{auth.RoleHub: hub1, auth.RoleTownhall: townhall, auth.RoleAuditor: auditor, auth.RoleAdmin: admin}
	for _, rt := range api.Routes {
		name := rt.Method + " " + rt.Pattern
		req, ok := sample[name]
		if !ok {
			t.Errorf("%s : aucune requête de test", name)
			continue
		}
		sc.do(t, oaCall{what: name + " sans jeton", want: 401, typ: "unauthenticated", offSpec: true, req: req})
		for _, role := range auth.Roles {
			if !slices.Contains(rt.Roles, role) {
				sc.do(t, oaCall{what: name + " par " + string(role), token: tokens[role], want: 403, typ: "forbidden", req: req})
			}
		}
	}

	oaNegativeControls(t, sc, hub1, batchA, actGood)

	// Last, as it blocks this address for a minute: too many bad tokens.
	for i := range 3 {
		sc.do(t, oaCall{what: fmt.Sprintf("jeton faux n°%d", i+1), token: "ec_zzzzzzzzzzzzz_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopq",
			want: 401, typ: "unauthenticated", req: get("/api/v1/acts")})
	}
	sc.do(t, oaCall{what: "trop d'échecs", token: admin, want: 429, typ: "too_many_failures", req: get("/api/v1/dashboard")})

	// Every operation answered at least one success and a 401, each
	// validated; what the spec documents and no test reached is listed.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			got := sc.seen[name]
			ok2xx := false
			for st := range got {
				ok2xx = ok2xx || st/100 == 2
			}
			if !ok2xx || !got[401] {
				t.Errorf("%s : statuts validés %v, il faut un succès et 401", name, oaStatuses(got))
			}
			var untried []string
			for code := range op.Responses.Map() {
				if n, err := strconv.Atoi(code); err != nil || !got[n] {
					untried = append(untried, code)
				}
			}
			sort.Strings(untried)
			t.Logf("%-40s validés %v ; documentés non essayés %v", name, oaStatuses(got), untried)
		}
	}
}

func oaStatuses(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// negativeControls alters real answers and checks that validation fails:
// the spec is strict enough to catch drift.
func oaNegativeControls(t *testing.T, sc *specCalls, token, batchID, actID string) {
	t.Helper()
	type answer struct {
		in     *openapi3filter.RequestValidationInput
		status int
		header http.Header
		body   map[string]any
	}
	fetch := func(path string) answer {
		req := apiReq{method: "GET", path: path}
		in := sc.requestInput(t, token, req)
		r := oaExchange(t, sc.base, token, req, false)
		if r.status != 200 {
			t.Fatalf("%s : %d %s", path, r.status, r.body)
		}
		return answer{in: in, status: r.status, header: r.header, body: oaDecode[map[string]any](t, r)}
	}
	batch := fetch("/api/v1/batches/" + batchID)
	actAns := fetch("/api/v1/acts/" + actID)
	notFound := sc.requestInput(t, token, apiReq{method: "GET", path: "/api/v1/acts/" + actID})

	// clone deep-copies a decoded JSON value.
	clone := func(v map[string]any) map[string]any {
		b, _ := json.Marshal(v)
		var out map[string]any
		json.Unmarshal(b, &out)
		return out
	}
	problem := map[string]any{"type": "not_found", "title": "Introuvable", "status": 404, "detail": "acte introuvable"}
	problemHeader := http.Header{"Content-Type": {"application/problem+json"}, "Cache-Control": {"no-store"}}
	cases := []struct {
		name   string
		a      answer
		alter  func(body map[string]any, h http.Header) int // returns the status to validate
		wantOK bool
	}{
		{"lot tel quel", batch, func(map[string]any, http.Header) int { return 200 }, true},
		{"acte tel quel", actAns, func(map[string]any, http.Header) int { return 200 }, true},
		{"problème tel quel", answer{in: notFound, header: problemHeader, body: problem}, func(map[string]any, http.Header) int { return 404 }, true},
		{"lot sans counts", batch, func(b map[string]any, _ http.Header) int { delete(b, "counts"); return 200 }, false},
		{"entrée à l'état inconnu", batch, func(b map[string]any, _ http.Header) int {
			b["acts"].([]any)[0].(map[string]any)["state"] = "frozen"
			return 200
		}, false},
		{"lot à l'état inconnu", batch, func(b map[string]any, _ http.Header) int { b["state"] = "paused"; return 200 }, false},
		{"champ en trop", batch, func(b map[string]any, _ http.Header) int { b["owner"] = "h1"; return 200 }, false},
		{"entry_id absent", batch, func(b map[string]any, _ http.Header) int {
			delete(b["acts"].([]any)[0].(map[string]any), "entry_id")
			return 200
		}, false},
		{"submitted_at illisible", batch, func(b map[string]any, _ http.Header) int { b["submitted_at"] = "hier"; return 200 }, false},
		{"type d'acte inconnu", actAns, func(b map[string]any, _ http.Header) int { b["kind"] = "bapteme"; return 200 }, false},
		{"current_version en texte", actAns, func(b map[string]any, _ http.Header) int { b["current_version"] = "1"; return 200 }, false},
		{"hub nul", batch, func(b map[string]any, _ http.Header) int { b["hub"] = nil; return 200 }, false},
		{"versions sans sha256", actAns, func(b map[string]any, _ http.Header) int {
			delete(b["versions"].([]any)[0].(map[string]any), "sha256")
			return 200
		}, false},
		{"transmission à l'état inconnu", actAns, func(b map[string]any, _ http.Header) int {
			b["transmissions"].([]any)[0].(map[string]any)["state"] = "lost"
			return 200
		}, false},
		{"sans Cache-Control", batch, func(_ map[string]any, h http.Header) int { h.Del("Cache-Control"); return 200 }, false},
		{"statut non documenté", batch, func(map[string]any, http.Header) int { return 418 }, false},
		{"problème sans detail", answer{in: notFound, header: problemHeader, body: problem}, func(b map[string]any, _ http.Header) int {
			delete(b, "detail")
			return 404
		}, false},
		{"problème servi en JSON", answer{in: notFound, header: problemHeader, body: problem}, func(_ map[string]any, h http.Header) int {
			h.Set("Content-Type", "application/json")
			return 404
		}, false},
	}
	for _, c := range cases {
		body, h := clone(c.a.body), c.a.header.Clone()
		status := c.alter(body, h)
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		err = validateAnswer(c.a.in, status, h, data)
		switch {
		case c.wantOK && err != nil:
			t.Errorf("contrôle %q : réponse réelle refusée: %v", c.name, err)
		case !c.wantOK && err == nil:
			t.Errorf("contrôle négatif %q : la réponse altérée passe la validation", c.name)
		}
	}
}

// TestOpenAPIUnavailable: the 503 problem (with Retry-After) of an API
// whose S3 is down, validated like any other answer.
func TestOpenAPIUnavailable(t *testing.T) {
	t.Parallel()
	_, router := loadSpec(t)
	dead, err := blob.New(blob.Config{Endpoint: "127.0.0.1:1", Region: "us-east-1", AccessKey: "x", SecretKey: "y", Archive: "archive", Staging: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	s := testenv.NewStack(t, testenv.StackOptions{APIBlob: dead, NoWorkers: true})
	s.Hub(t, "h1", "12202")
	tok := s.Token(t, auth.RoleHub, "h1")
	sc := &specCalls{base: s.URL, router: router, seen: map[string]map[int]bool{}}
	pdf := pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 1, DPI: 72})
	m := manifestBytes(t, "h1", act("a.pdf", pdf, 1))
	r := sc.do(t, oaCall{what: "création", token: tok, want: 201, req: apiReq{method: "POST", path: "/api/v1/batches", body: m,
		header: http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {key(m)}}}})
	id := oaDecode[store.BatchView](t, r).ID
	sc.do(t, oaCall{what: "PUT sans S3", token: tok, want: 503, typ: "storage_unavailable",
		req: apiReq{method: "PUT", path: "/api/v1/batches/" + id + "/files/a.pdf", body: pdf, header: http.Header{"Content-Type": {"application/pdf"}}}})
}
