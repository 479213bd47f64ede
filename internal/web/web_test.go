package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.ChildMain()
	os.Exit(m.Run())
}

// fixture is a stack with hub "h" (Rodez 12202, Millau 12145) and a batch:
// Rodez births n° 1, 2 and 5 (n° 3 and 4 missing), n° 2 (MARTIN) rejected
// as not a PDF; a Millau death n° 1.
type fixture struct {
	s        *testenv.Stack
	hub      *client.Client
	rejected string // the act id of MARTIN's rejected birth
	millau   string // the act id of the Millau death
	mail     *mailbox
}

type mailbox struct {
	mu   sync.Mutex
	sent []string
}

func (m *mailbox) send(_ context.Context, to, subject, body string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, to+"\n"+subject+"\n"+body)
	return nil
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	mb := &mailbox{}
	s := testenv.NewStack(t, testenv.StackOptions{Mail: mb.send})
	s.Hub(t, "h", "12202", "12145")
	hub := client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
	ctx := context.Background()
	person := func(role, surname string) map[string]any {
		return map[string]any{"role": role, "surname": surname, "given_names": []string{"Jeanne"}, "sex": "F",
			"birth_date": "2024-03-01", "birth_place": "Rodez (Aveyron)"}
	}
	act := func(file string, data []byte, commune, kind string, number int, surname string) map[string]any {
		sum := sha256.Sum256(data)
		role := "titulaire"
		if kind == "deces" {
			role = "defunt"
		}
		return map[string]any{"file": file, "size": len(data), "sha256": hex.EncodeToString(sum[:]), "commune": commune, "kind": kind,
			"year": 2024, "number": number, "act_date": "2024-03-02", "event_date": "2024-03-01", "flow": "reprise",
			"persons": []any{person(role, surname)}}
	}
	files := map[string][]byte{
		"n1.pdf": pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 1, DPI: 72}),
		"n2.pdf": []byte("ceci n'est pas un PDF"),
		"n5.pdf": pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 5, DPI: 72}),
		"d1.pdf": pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 9, DPI: 72}),
	}
	acts := []any{act("n1.pdf", files["n1.pdf"], "12202", "naissance", 1, "Durand"), act("n2.pdf", files["n2.pdf"], "12202", "naissance", 2, "Martin"),
		act("n5.pdf", files["n5.pdf"], "12202", "naissance", 5, "Lefèvre"), act("d1.pdf", files["d1.pdf"], "12145", "deces", 1, "Bernard")}
	m, _ := json.Marshal(map[string]any{"hub": "h", "acts": acts})
	ms := sha256.Sum256(m)
	b, _, err := hub.CreateBatch(ctx, m, false, hex.EncodeToString(ms[:]))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := hub.PutFile(ctx, b.ID, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := hub.Submit(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	got, _, err := hub.WaitBatch(wctx, b.ID, nil)
	if err != nil || got.Counts.Archived != 3 || got.Counts.Rejected != 1 {
		t.Fatalf("lot : %+v %v", got.Counts, err)
	}
	f := &fixture{s: s, hub: hub, mail: mb}
	for _, e := range got.Acts {
		switch e.File {
		case "n2.pdf":
			f.rejected = *e.ID
		case "d1.pdf":
			f.millau = *e.ID
		}
	}
	return f
}

// browser is a cookie-keeping HTTP client of the pages.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) post(path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("pas de jeton CSRF dans la page :\n%s", page)
	}
	return m[1]
}

// signIn signs b in with token and purpose; it returns the dashboard.
func (b *browser) signIn(token, purpose string) string {
	b.t.Helper()
	_, form, _ := b.get("/connexion")
	code, _, h := b.post("/connexion", url.Values{"csrf": {csrfOf(b.t, form)}, "token": {token}, "purpose": {purpose}})
	if code != http.StatusSeeOther || h.Get("Location") != "/tableau-de-bord" {
		b.t.Fatalf("connexion : %d vers %q", code, h.Get("Location"))
	}
	code, page, _ := b.get("/tableau-de-bord")
	if code != 200 {
		b.t.Fatalf("tableau de bord : %d\n%s", code, page)
	}
	return page
}

// TestTownHallPages: a town hall signs in, sees its dashboard with the
// rejected act first, its register's gap, finds the act by surname, reads
// the French reason and what to do; another commune's act answers 404;
// the read of persons is audited with the session's purpose.
func TestTownHallPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b := newBrowser(t, f.s.URL)

	// Signed out: the sign-in form, with a password field.
	code, _, h := b.get("/")
	if code != http.StatusSeeOther || h.Get("Location") != "/connexion" {
		t.Fatalf("/ déconnecté : %d %q", code, h.Get("Location"))
	}
	_, form, hdr := b.get("/connexion")
	if !strings.Contains(form, `type="password"`) || !strings.Contains(form, `lang="fr"`) {
		t.Fatalf("formulaire de connexion :\n%s", form)
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP : %q", csp)
	}
	// A wrong token is refused, in French.
	if code, page, _ := b.post("/connexion", url.Values{"csrf": {csrfOf(t, form)}, "token": {"ec_nope_0123456789abcdef0123"}, "purpose": {"controle"}}); code != 401 || !strings.Contains(page, "pas reconnu") {
		t.Fatalf("mauvais jeton : %d", code)
	}
	// Without the pre-sign-in CSRF value, nothing happens.
	if code, _, _ := newBrowser(t, f.s.URL).post("/connexion", url.Values{"csrf": {"x"}, "token": {"y"}, "purpose": {"controle"}}); code != 403 {
		t.Fatalf("connexion sans CSRF : %d", code)
	}

	rodez := f.s.Token(t, auth.RoleTownhall, "", "12202")
	dash := b.signIn(rodez, "controle")
	for _, want := range []string{"À traiter en priorité", "Refusé au dépôt", "Naissance n° 2 (2024)", "Le fichier n&#39;est pas un PDF"} {
		if !strings.Contains(dash, want) && !strings.Contains(dash, strings.ReplaceAll(want, "&#39;", "'")) {
			t.Errorf("tableau de bord sans %q", want)
		}
	}
	if strings.Contains(dash, "Décès") {
		t.Error("le tableau de bord de Rodez montre un acte de Millau")
	}
	// The register's gap.
	_, regs, _ := b.get("/registres")
	if !strings.Contains(regs, "n° 3 à 4") || !strings.Contains(regs, "2 manquant(s)") {
		t.Fatalf("registres sans la lacune 3 à 4 :\n%s", regs)
	}
	// Search by surname, accents and case ignored.
	_, list, _ := b.get("/actes?q=martin")
	if !strings.Contains(list, "/actes/"+f.rejected) || !strings.Contains(list, "1 acte(s) trouvé(s)") {
		t.Fatalf("recherche « martin » :\n%s", list)
	}
	if _, list, _ := b.get("/actes?q=lefevre"); !strings.Contains(list, "1 acte(s) trouvé(s)") {
		t.Fatalf("recherche « lefevre » sans accent :\n%s", list)
	}
	// The act page: the French reason and what to do.
	code, page, _ := b.get("/actes/" + f.rejected)
	if code != 200 || !strings.Contains(page, "Pourquoi cet acte a été refusé") || !strings.Contains(page, "Numérisez l&#39;acte en PDF") {
		t.Fatalf("page de l'acte refusé (%d) :\n%s", code, page)
	}
	if !strings.Contains(page, "MARTIN") && !strings.Contains(page, "Martin") {
		t.Error("la page de l'acte ne montre pas les personnes")
	}
	var audited int
	if err := f.s.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'act.read_persons' AND act_id = $1 AND purpose = 'controle'`,
		f.rejected).Scan(&audited); err != nil || audited != 1 {
		t.Fatalf("lecture des personnes auditée %d fois (%v)", audited, err)
	}
	// Another commune's act, by URL: 404, as if it did not exist.
	if code, _, _ := b.get("/actes/" + f.millau); code != 404 {
		t.Fatalf("acte de Millau vu de Rodez : %d", code)
	}
	if code, _, _ := b.get("/actes/" + f.millau + "/pdf"); code != 404 {
		t.Fatalf("PDF de Millau vu de Rodez : %d", code)
	}
	if code, _, _ := b.get("/tableau-de-bord?commune=12145"); code != 404 {
		t.Fatalf("tableau de bord de Millau vu de Rodez : %d", code)
	}
	// A town hall has no batches page.
	if code, _, _ := b.get("/depots"); code != 403 {
		t.Fatalf("dépôts vus d'une mairie : %d", code)
	}
	// Changing the purpose needs the CSRF token; with it, it changes.
	if code, _, _ := b.post("/finalite", url.Values{"purpose": {"archivage"}}); code != 403 {
		t.Fatalf("finalité sans CSRF : %d", code)
	}
	if code, _, _ := b.post("/finalite", url.Values{"purpose": {"archivage"}, "csrf": {csrfOf(t, dash)}, "suite": {"/actes"}}); code != 303 {
		t.Fatalf("finalité : %d", code)
	}
	b.get("/actes/" + f.rejected)
	if err := f.s.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'act.read_persons' AND act_id = $1 AND purpose = 'archivage'`,
		f.rejected).Scan(&audited); err != nil || audited != 1 {
		t.Fatalf("lecture après changement de finalité auditée %d fois (%v)", audited, err)
	}
	// Sign-out ends the session.
	if code, _, _ := b.post("/deconnexion", url.Values{"csrf": {csrfOf(t, dash)}}); code != 303 {
		t.Fatalf("déconnexion : %d", code)
	}
	if code, _, h := b.get("/actes"); code != 303 || !strings.HasPrefix(h.Get("Location"), "/connexion") {
		t.Fatalf("après déconnexion : %d %q", code, h.Get("Location"))
	}
}

// TestHubPagesAndLinkSignIn: a hub signs in with a one-time e-mail link
// (spent once), sees both member communes, its batches and the receipt.
func TestHubPagesAndLinkSignIn(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.s.Token(t, auth.RoleHub, "h")
	id, _, _ := auth.Parse(tok)
	if err := f.s.Store.SetTokenEmail(context.Background(), store.System, id, "Secretariat@Example.org"); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, f.s.URL)
	_, form, _ := b.get("/connexion")
	for _, addr := range []string{"secretariat@example.org", "inconnu@example.org"} {
		code, _, h := b.post("/connexion/lien", url.Values{"csrf": {csrfOf(t, form)}, "email": {addr}})
		if code != 303 || h.Get("Location") != "/connexion?envoye=1" {
			t.Fatalf("demande de lien (%s) : %d %q", addr, code, h.Get("Location"))
		}
	}
	f.mail.mu.Lock()
	sent := append([]string(nil), f.mail.sent...)
	f.mail.mu.Unlock()
	if len(sent) != 1 || !strings.HasPrefix(sent[0], "secretariat@example.org\n") {
		t.Fatalf("courriels : %q", sent)
	}
	link := regexp.MustCompile(`/connexion/lien\?code=[A-Za-z0-9_%-]+`).FindString(sent[0])
	if link == "" {
		t.Fatalf("pas de lien dans %q", sent[0])
	}
	_, confirm, _ := b.get(link)
	code := regexp.MustCompile(`name="code" value="([^"]+)"`).FindStringSubmatch(confirm)
	if code == nil {
		t.Fatalf("page du lien :\n%s", confirm)
	}
	use := url.Values{"csrf": {csrfOf(t, confirm)}, "code": {code[1]}, "purpose": {"mise_a_jour"}}
	if st, _, h := b.post("/connexion/lien/valider", use); st != 303 || h.Get("Location") != "/tableau-de-bord" {
		t.Fatalf("connexion par lien : %d %q", st, h.Get("Location"))
	}
	if st, _, _ := newBrowser(t, f.s.URL).post("/connexion/lien/valider", use); st != 403 && st != 401 {
		t.Fatalf("lien rejoué : %d", st)
	}
	_, dash, _ := b.get("/tableau-de-bord")
	if !strings.Contains(dash, "Décès") || !strings.Contains(dash, "Naissance") || !strings.Contains(dash, "Toutes mes communes") {
		t.Fatalf("tableau de bord de l'opérateur :\n%s", dash)
	}
	_, deposits, _ := b.get("/depots")
	m := regexp.MustCompile(`href="/depots/([0-9a-f-]{36})"`).FindStringSubmatch(deposits)
	if m == nil || !strings.Contains(deposits, "Récépissé") {
		t.Fatalf("dépôts :\n%s", deposits)
	}
	if st, page, _ := b.get("/depots/" + m[1]); st != 200 || !strings.Contains(page, "n2.pdf") {
		t.Fatalf("dépôt : %d", st)
	}
	st, pdf, hdr := b.get("/depots/" + m[1] + "/recepisse")
	if st != 200 || hdr.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(pdf, "%PDF-") {
		t.Fatalf("récépissé : %d %s", st, hdr.Get("Content-Type"))
	}
	st, pdf, hdr = b.get("/actes/" + f.millau + "/pdf")
	if st != 200 || !strings.HasPrefix(pdf, "%PDF-") || hdr.Get("Repr-Digest") == "" {
		t.Fatalf("PDF de l'acte : %d", st)
	}
	var audited int
	if err := f.s.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'act.read_pdf' AND act_id = $1 AND purpose = 'mise_a_jour'`,
		f.millau).Scan(&audited); err != nil || audited != 1 {
		t.Fatalf("lecture du PDF auditée %d fois (%v)", audited, err)
	}
}

// TestEveryPageReadIsAttributed: each page a signed-in person reads
// records exactly one audit event under their token, with the session's
// purpose, before it is served: the API's view.* events, or the act
// page's and the PDF's own reads. A batch out of scope is recorded as an
// attempt and answers 404. The surname searched for is not recorded.
func TestEveryPageReadIsAttributed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	tok := f.s.Token(t, auth.RoleHub, "h")
	actor, _, _ := auth.Parse(tok)
	b := newBrowser(t, f.s.URL)
	b.signIn(tok, "controle")
	_, deposits, _ := b.get("/depots")
	batch := regexp.MustCompile(`href="/depots/([0-9a-f-]{36})"`).FindStringSubmatch(deposits)
	if batch == nil {
		t.Fatalf("dépôts :\n%s", deposits)
	}
	// A batch the hub cannot see (none has this id): 404, recorded.
	foreign := "00000000-0000-4000-8000-000000000000"
	events := func() (n int, last map[string]any) {
		t.Helper()
		var action, purpose, route, batchID string
		err := f.s.Store.Pool.QueryRow(ctx, `SELECT count(*) OVER (), action, coalesce(purpose, ''), coalesce(data->>'route', ''), coalesce(batch_id::text, '')
			FROM audit_events WHERE actor = $1 AND (action LIKE 'view.%' OR action LIKE 'act.read%') ORDER BY id DESC LIMIT 1`, actor).
			Scan(&n, &action, &purpose, &route, &batchID)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return n, map[string]any{"action": action, "purpose": purpose, "route": route, "batch": batchID}
	}
	pages := []struct {
		path, action, route, batch string
		status                     int
	}{
		{"/tableau-de-bord", "view.dashboard", "/tableau-de-bord", "", 200},
		{"/registres", "view.registers", "/registres", "", 200},
		{"/actes?q=martin", "view.acts", "/actes", "", 200},
		{"/depots", "view.batches", "/depots", "", 200},
		{"/depots/" + batch[1], "view.batch", "/depots/{id}", batch[1], 200},
		{"/depots/" + batch[1] + "/recepisse", "view.receipt", "/depots/{id}/recepisse", batch[1], 200},
		{"/depots/" + foreign, "view.batch", "/depots/{id}", foreign, 404},
		{"/actes/" + f.millau, "act.read_persons", "", "", 200},
		{"/actes/" + f.millau + "/pdf", "act.read_pdf", "", "", 200},
	}
	for _, p := range pages {
		before, _ := events()
		code, _, _ := b.get(p.path)
		after, last := events()
		if code != p.status || after != before+1 {
			t.Errorf("%s : %d, %d événement(s) d'audit (1 attendu)", p.path, code, after-before)
			continue
		}
		if last["action"] != p.action || last["purpose"] != "controle" || p.route != "" && (last["route"] != p.route || last["batch"] != p.batch) {
			t.Errorf("%s : événement %v", p.path, last)
		}
	}
	var leaked int
	if err := f.s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE actor = $1 AND data::text ILIKE '%martin%'`, actor).Scan(&leaked); err != nil || leaked != 0 {
		t.Fatalf("le nom cherché figure dans %d événement(s) (%v)", leaked, err)
	}
}

// TestLinkRequestsLimited: the sign-in form cannot flood a mailbox: past
// store.MaxLoginLinks links per token in their lifetime, a request sends
// nothing, and is answered exactly as the others (nothing to tell apart).
func TestLinkRequestsLimited(t *testing.T) {
	t.Parallel()
	mb := &mailbox{}
	s := testenv.NewStack(t, testenv.StackOptions{Mail: mb.send})
	s.Hub(t, "h", "12202")
	id, _, _ := auth.Parse(s.Token(t, auth.RoleHub, "h"))
	if err := s.Store.SetTokenEmail(context.Background(), store.System, id, "mairie@example.org"); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, s.URL)
	_, form, _ := b.get("/connexion")
	for i := range store.MaxLoginLinks + 3 {
		code, _, h := b.post("/connexion/lien", url.Values{"csrf": {csrfOf(t, form)}, "email": {"mairie@example.org"}})
		if code != 303 || h.Get("Location") != "/connexion?envoye=1" {
			t.Fatalf("demande n° %d : %d %q", i+1, code, h.Get("Location"))
		}
	}
	mb.mu.Lock()
	n := len(mb.sent)
	mb.mu.Unlock()
	if n != store.MaxLoginLinks {
		t.Fatalf("%d courriels envoyés pour %d demandes, au plus %d attendus", n, store.MaxLoginLinks+3, store.MaxLoginLinks)
	}
}

// TestAPIParity: what the pages show comes from the API too.
func TestAPIParity(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	townhall := client.New(f.s.URL, f.s.Token(t, auth.RoleTownhall, "", "12202"))
	raw, err := townhall.Get(ctx, "/api/v1/registers", nil)
	if err != nil {
		t.Fatal(err)
	}
	var regs struct {
		Registers []store.Register `json:"registers"`
	}
	if err := json.Unmarshal(raw, &regs); err != nil || len(regs.Registers) != 1 || fmt.Sprint(regs.Registers[0].Gaps) != "[[3 4]]" || regs.Registers[0].Count != 3 {
		t.Fatalf("registres : %s %v", raw, err)
	}
	raw, err = townhall.Get(ctx, "/api/v1/dashboard", nil)
	if err != nil {
		t.Fatal(err)
	}
	var d store.Dashboard
	if err := json.Unmarshal(raw, &d); err != nil || d.Total != 3 || len(d.Attention) != 1 || d.Attention[0].What != "rejected" || d.Attention[0].ActID != f.rejected {
		t.Fatalf("tableau de bord : %s %v", raw, err)
	}
	raw, err = townhall.Get(ctx, "/api/v1/acts?q=MARTIN&state=rejected", nil)
	if err != nil || !strings.Contains(string(raw), f.rejected) || !strings.Contains(string(raw), `"total":1`) {
		t.Fatalf("recherche : %s %v", raw, err)
	}
	raw, err = f.hub.Get(ctx, "/api/v1/batches", nil)
	if err != nil || !strings.Contains(string(raw), `"rejected":1`) || !strings.Contains(string(raw), `"archived":3`) {
		t.Fatalf("dépôts : %s %v", raw, err)
	}
}
