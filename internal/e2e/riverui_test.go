package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/auth"
)

// pageClient is a cookie-keeping client of the pages, redirects not
// followed.
type pageClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newPageClient(t *testing.T, base string) *pageClient {
	jar, _ := cookiejar.New(nil)
	return &pageClient{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (p *pageClient) do(method, path string, body io.Reader, header map[string]string) (int, string, http.Header) {
	p.t.Helper()
	req, _ := http.NewRequest(method, p.base+path, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (p *pageClient) signIn(token string) {
	p.t.Helper()
	_, form, _ := p.do("GET", "/connexion", nil, nil)
	m := csrfField.FindStringSubmatch(form)
	if m == nil {
		p.t.Fatalf("formulaire de connexion sans jeton CSRF :\n%s", form)
	}
	v := url.Values{"csrf": {m[1]}, "token": {token}, "purpose": {"controle"}}
	code, _, h := p.do("POST", "/connexion", strings.NewReader(v.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if code != http.StatusSeeOther {
		p.t.Fatalf("connexion : %d vers %q", code, h.Get("Location"))
	}
}

// TestRiverUI: River's web UI is served at /admin/jobs/ to a signed-in
// admin, under a content policy without inline script; its API answers
// JSON; a cross-origin POST is refused; a town hall gets 404 and a
// visitor without session the sign-in page.
func TestRiverUI(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	anon := newPageClient(t, s.url)
	if code, _, h := anon.do("GET", "/admin/jobs/", nil, nil); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/connexion") {
		t.Errorf("sans session : %d vers %q", code, h.Get("Location"))
	}
	admin := newPageClient(t, s.url)
	admin.signIn(s.admin)
	code, page, h := admin.do("GET", "/admin/jobs/", nil, nil)
	if code != 200 || !strings.Contains(page, "<title>River</title>") {
		t.Fatalf("interface : %d\n%.300s", code, page)
	}
	csp := h.Get("Content-Security-Policy")
	_, script, _ := strings.Cut(csp, "script-src")
	script, _, _ = strings.Cut(script, ";")
	if !strings.Contains(script, "'self'") || strings.Contains(script, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("politique de contenu : %q", csp)
	}
	if code, body, _ := admin.do("GET", "/admin/jobs/api/jobs?state=completed&limit=5", nil, nil); code != 200 || !strings.HasPrefix(strings.TrimSpace(body), "{") {
		t.Errorf("API de l'interface : %d %.200s", code, body)
	}
	if code, _, _ := admin.do("POST", "/admin/jobs/api/jobs/cancel", strings.NewReader(`{"ids":["1"]}`),
		map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", "Origin": "https://ailleurs.example"}); code != http.StatusForbidden {
		t.Errorf("POST d'une autre origine : %d, attendu 403", code)
	}
	// An action through the UI is recorded under the admin's token before
	// River acts on it; the refused cross-origin one above is not.
	if code, body, _ := admin.do("POST", "/admin/jobs/api/jobs/cancel", strings.NewReader(`{"ids":["1"]}`),
		map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}); code >= 500 {
		t.Errorf("annulation par l'interface : %d %.200s", code, body)
	}
	db, err := pgx.Connect(context.Background(), s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	adminID, _, _ := auth.Parse(s.admin)
	var n int
	var path, ids string
	err = db.QueryRow(context.Background(), `SELECT count(*) OVER (), data->>'path', data->'request'->>'ids' FROM audit_events
		WHERE action = 'jobs.ui' AND actor = $1 AND data->>'method' = 'POST'`, adminID).Scan(&n, &path, &ids)
	if err != nil || n != 1 || path != "/api/jobs/cancel" || ids != `["1"]` {
		t.Errorf("action de l'interface dans le journal : %d %q %q (%v), une attendue", n, path, ids, err)
	}
	town := newPageClient(t, s.url)
	town.signIn(s.run(t, "token", "create", "--role", "townhall", "--commune", "12202", "--name", "mairie"))
	if code, _, _ := town.do("GET", "/admin/jobs/", nil, nil); code != http.StatusNotFound {
		t.Errorf("mairie : %d, attendu 404", code)
	}
	if code, _, _ := town.do("GET", "/admin/jobs/api/jobs?state=completed", nil, nil); code != http.StatusNotFound {
		t.Errorf("mairie, API : %d, attendu 404", code)
	}
}
