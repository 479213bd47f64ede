package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/etatcivil/etatcivil/internal/auth"
)

// chrome starts Debian's Chromium, headless, reaching nothing but
// loopback (ETATCIVIL_TEST_CHROMIUM, set by make test).
func chrome(t *testing.T) context.Context {
	t.Helper()
	exe := os.Getenv("ETATCIVIL_TEST_CHROMIUM")
	if exe == "" {
		t.Fatal("ETATCIVIL_TEST_CHROMIUM non défini : lancez les tests par « make test » (qui installe chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 768),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	// The pages allow no script; axe-core is injected by the test.
	bypass := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true})
		return err
	})
	if err := chromedp.Do(ctx, bypass); err != nil {
		t.Fatalf("chromium : %v", err)
	}
	return ctx
}

// artefacts is where screenshots are kept (ETATCIVIL_TEST_ARTIFACTS, set
// by make test; a temporary directory otherwise).
func artefacts(t *testing.T) string {
	dir := os.Getenv("ETATCIVIL_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// axeViolation is one rule axe-core found broken.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any  `json:"target"`
		HTML   string `json:"html"`
	} `json:"nodes"`
}

// axe injects axe-core (ETATCIVIL_TEST_AXE, pinned by make test) into the
// page and fails on any WCAG 2 A/AA violation.
func axe(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	for _, v := range axeViolations(t, ctx, where) {
		var nodes []string
		for _, n := range v.Nodes {
			nodes = append(nodes, n.HTML)
		}
		t.Errorf("%s : axe %s (%s) : %s\n  %s", where, v.ID, v.Impact, v.Help, strings.Join(nodes, "\n  "))
	}
}

// axeViolations runs axe-core on the page and returns what it found.
func axeViolations(t *testing.T, ctx context.Context, where string) []axeViolation {
	t.Helper()
	path := os.Getenv("ETATCIVIL_TEST_AXE")
	if path == "" {
		t.Fatal("ETATCIVIL_TEST_AXE non défini : lancez les tests par « make test » (qui installe axe-core)")
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	run := `axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}, resultTypes: ["violations"]})
		.then(r => JSON.stringify({violations: r.violations, passes: r.passes.length}))`
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](string(src))); err != nil {
		t.Fatalf("axe sur %s : %v", where, err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](run, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe sur %s : %v", where, err)
	}
	var res struct {
		Violations []axeViolation `json:"violations"`
		Passes     int            `json:"passes"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Passes == 0 {
		t.Errorf("%s : axe n'a rien vérifié", where)
	}
	return res.Violations
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("texte de %s : %v", sel, err)
	}
	return s
}

// TestBrowserTownHall: in a real Chromium, a town-hall secretary signs in
// with the keyboard, finds a rejected act by surname, opens it, reads the
// French reason, checks a gap in a register's numbering, and cannot open
// another commune's act by URL. Every page passes axe-core (WCAG 2 A/AA).
func TestBrowserTownHall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := chrome(t)
	dir := artefacts(t)
	token := f.s.Token(t, auth.RoleTownhall, "", "12202")

	// Sign-in: the first Tab reaches the skip link; the form is filled
	// with the keyboard.
	if err := chromedp.Do(ctx, chromedp.Navigate(f.s.URL+"/"), chromedp.WaitVisible(chromedp.ID("token")), chromedp.KeyEvent(kb.Tab)); err != nil {
		t.Fatal(err)
	}
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(focused) != "Aller au contenu" {
		t.Errorf("premier arrêt du clavier : %q, attendu le lien d'évitement", focused)
	}
	kind, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("token"), "type"))
	if err != nil || kind.Value != "password" {
		t.Fatalf("champ du jeton de type %q (%v)", kind.Value, err)
	}
	screenshot(t, ctx, dir, "01-connexion")
	axe(t, ctx, "connexion")
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.ID("token")), chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("purpose-controle")), chromedp.Focus(chromedp.ID("token")), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(`//h1[contains(., "Tableau de bord")]`)); err != nil {
		t.Fatalf("connexion : %v", err)
	}
	if s := text(t, ctx, "main"); !strings.Contains(s, "Refusé au dépôt") || !strings.Contains(s, "Naissance n° 2 (2024)") {
		t.Fatalf("tableau de bord :\n%s", s)
	}
	screenshot(t, ctx, dir, "02-tableau-de-bord")
	axe(t, ctx, "tableau de bord")
	// Control: the same page without its language fails axe, so a clean
	// result above means something.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.documentElement.removeAttribute("lang")`)); err != nil {
		t.Fatal(err)
	}
	if v := axeViolations(t, ctx, "contrôle"); len(v) == 0 || v[0].ID != "html-has-lang" {
		t.Fatalf("axe ne voit pas une page sans langue : %+v", v)
	}

	// Find the rejected act by surname and open it.
	if err := chromedp.Do(ctx, chromedp.Navigate(f.s.URL+"/actes"), chromedp.WaitVisible(chromedp.ID("q"))); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, "liste des actes")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("q"), "martin"), chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(`//p[@role="status" and contains(., "1 acte(s)")]`)); err != nil {
		t.Fatalf("recherche : %v", err)
	}
	screenshot(t, ctx, dir, "03-recherche")
	if err := chromedp.Do(ctx, chromedp.Click(`//a[contains(., "Naissance n° 2")]`), chromedp.WaitVisible(`//h2[@id="pourquoi"]`)); err != nil {
		t.Fatalf("ouverture de l'acte : %v", err)
	}
	if s := text(t, ctx, "main"); !strings.Contains(s, "Le fichier n'est pas un PDF") || !strings.Contains(s, "Que faire") {
		t.Fatalf("page de l'acte :\n%s", s)
	}
	screenshot(t, ctx, dir, "04-acte-refuse")
	axe(t, ctx, "page de l'acte")

	// A register's gap.
	if err := chromedp.Do(ctx, chromedp.Navigate(f.s.URL+"/registres"), chromedp.WaitVisible(`//table`)); err != nil {
		t.Fatal(err)
	}
	if s := text(t, ctx, "table"); !strings.Contains(s, "n° 3 à 4") {
		t.Fatalf("registres :\n%s", s)
	}
	screenshot(t, ctx, dir, "05-registres")
	axe(t, ctx, "registres")

	// Another commune's act, by URL.
	if err := chromedp.Do(ctx, chromedp.Navigate(f.s.URL+"/actes/"+f.millau), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
		t.Fatal(err)
	}
	if s := text(t, ctx, "main"); !strings.Contains(s, "Page introuvable") || strings.Contains(s, "BERNARD") || strings.Contains(s, "Bernard") {
		t.Fatalf("acte d'une autre commune :\n%s", s)
	}
	screenshot(t, ctx, dir, "06-autre-commune")
	axe(t, ctx, "page introuvable")
}

// TestBrowserHub: a hub's pages (dashboard across communes, batches, a
// batch) pass axe-core too.
func TestBrowserHub(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := chrome(t)
	dir := artefacts(t)
	token := f.s.Token(t, auth.RoleHub, "h")
	if err := chromedp.Do(ctx, chromedp.Navigate(f.s.URL+"/connexion"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(`//h1[contains(., "Tableau de bord")]`)); err != nil {
		t.Fatalf("connexion : %v", err)
	}
	axe(t, ctx, "tableau de bord de l'opérateur")
	for i, p := range []string{"/depots", "/registres?commune=12145", "/actes?commune=12202"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(f.s.URL+p), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
			t.Fatal(err)
		}
		screenshot(t, ctx, dir, fmt.Sprintf("%02d%s", i+1, strings.NewReplacer("/", "-", "?", "-", "=", "-").Replace(p)))
		axe(t, ctx, p)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(f.s.URL+"/depots"), chromedp.Click(`//a[starts-with(@href, "/depots/") and not(contains(@href, "recepisse"))]`),
		chromedp.WaitVisible(`//caption[contains(., "Fichiers du dépôt")]`)); err != nil {
		t.Fatalf("dépôt : %v", err)
	}
	screenshot(t, ctx, dir, "04-depot")
	axe(t, ctx, "dépôt")
	// An archived act's page (persons, versions, timeline).
	if err := chromedp.Do(ctx, chromedp.Navigate(f.s.URL+"/actes/"+f.millau), chromedp.WaitVisible(`//caption[contains(., "Personnes")]`)); err != nil {
		t.Fatalf("acte archivé : %v", err)
	}
	screenshot(t, ctx, dir, "05-acte-archive")
	axe(t, ctx, "acte archivé")
	// Signed out: the one-time link's confirmation page.
	if err := chromedp.Do(ctx, chromedp.Click(`//button[contains(., "Se déconnecter")]`), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Navigate(f.s.URL+"/connexion/lien?code=abc"), chromedp.WaitVisible(`//legend`)); err != nil {
		t.Fatalf("lien de connexion : %v", err)
	}
	axe(t, ctx, "confirmation du lien")
}
