package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/store"
)

var paris = func() *time.Location {
	l, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		return time.UTC
	}
	return l
}()

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func (s *Server) parse() {
	funcs := template.FuncMap{
		"kind":       func(k string) string { return label(kindLabels, k) },
		"state":      func(k string) string { return label(stateLabels, k) },
		"tstate":     func(k string) string { return label(transmissionLabels, k) },
		"attention":  func(k string) string { return label(attentionLabels, k) },
		"purpose":    func(k string) string { return label(purposeLabels, k) },
		"outcome":    func(k string) string { return label(outcomeLabels, k) },
		"role":       func(k auth.Role) string { return label(roleLabels, string(k)) },
		"nextStep":   func(k string) string { return nextSteps[k] },
		"refusal":    func(k string) string { return refusalSteps[k] },
		"commune":    s.communeName,
		"when":       func(t time.Time) string { return t.In(paris).Format("02/01/2006 à 15:04") },
		"whenp":      func(t *time.Time) string { return whenPtr(t) },
		"deref":      func(p *string) string { return derefStr(p) },
		"derefInt":   func(p *int) int { return derefInt(p) },
		"stateClass": stateClass,
		"gaps":       gapsText,
		"add":        func(a, b int) int { return a + b },
	}
	s.pages = map[string]*template.Template{}
	for _, name := range []string{"signin", "link", "error", "dashboard", "registers", "acts", "act", "batches", "batch"} {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
		s.pages[name] = t
	}
}

func label(m map[string]string, k string) string {
	if v, ok := m[k]; ok {
		return v
	}
	return k
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return t.In(paris).Format("02/01/2006 à 15:04")
}

func derefStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// stateClass is the CSS class of a state badge (colour is never the only
// sign: the badge carries the state in words).
func stateClass(state string) string {
	switch state {
	case "archived", "acknowledged":
		return "ok"
	case "rejected", "refused", "dead", "stalled":
		return "bad"
	case "overdue", "retrying":
		return "warn"
	}
	return "wait"
}

// gapsText writes a register's gaps: "3, 7 à 9".
func gapsText(gaps [][2]int) string {
	var parts []string
	for _, g := range gaps {
		if g[0] == g[1] {
			parts = append(parts, strconv.Itoa(g[0]))
		} else {
			parts = append(parts, fmt.Sprintf("%d à %d", g[0], g[1]))
		}
	}
	return strings.Join(parts, ", ")
}

// view is what every page's layout needs.
type view struct {
	Title    string
	Nav      string // the current section, for aria-current
	Session  *session
	Communes []communeOption
	Purposes []string
	Data     map[string]any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, se *session, status int, name string, data map[string]any) {
	v := view{Title: fmt.Sprint(data["Title"]), Nav: name, Session: se, Purposes: api.Purposes, Data: data}
	if se != nil {
		v.Communes = s.communes(se.Principal)
	}
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, v); err != nil {
		s.Logger.Error("gabarit", "page", name, "err", err)
		http.Error(w, "Erreur d'affichage.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	if _, err := s.session(r); err == nil {
		http.Redirect(w, r, "/tableau-de-bord", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/connexion", http.StatusSeeOther)
}

// next is where to go after sign-in: a path of this site only. The
// value is parsed, refused if it has a scheme, a host, a backslash or a
// control character, and rebuilt from its cleaned path and query, so that
// no form of it (/\\evil, /%09/evil, /./\\evil) can leave the site.
func next(v string) string {
	const home = "/tableau-de-bord"
	if strings.ContainsAny(v, "\\") || strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return home
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return home
	}
	p := path.Clean(u.Path)
	if strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\") {
		return home
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p
}

func (s *Server) signInForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, nil, http.StatusOK, "signin", map[string]any{"Title": "Connexion", "CSRF": preLogin(w, r),
		"Next": next(r.URL.Query().Get("suite")), "Mail": s.mailLinks(), "Sent": r.URL.Query().Get("envoye") == "1"})
}

func (s *Server) signInError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, nil, status, "signin", map[string]any{"Title": "Connexion", "CSRF": preLogin(w, r),
		"Next": next(r.PostFormValue("suite")), "Mail": s.mailLinks(), "Error": msg})
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if !preLoginOK(r) {
		s.signInError(w, r, http.StatusForbidden, "Le formulaire a expiré. Recommencez.")
		return
	}
	if s.API != nil && s.API.AuthBlocked(r) {
		s.signInError(w, r, http.StatusTooManyRequests, "Trop de tentatives avec un jeton invalide. Réessayez dans une minute.")
		return
	}
	purpose := r.PostFormValue("purpose")
	if !slices.Contains(api.Purposes, purpose) {
		s.signInError(w, r, http.StatusBadRequest, "Choisissez la finalité de vos consultations.")
		return
	}
	p, err := s.Auth.Authenticate(r.Context(), strings.TrimSpace(r.PostFormValue("token")))
	if err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) && s.API != nil {
			s.API.AuthFailed(r)
		}
		s.signInError(w, r, http.StatusUnauthorized, "Ce jeton d'accès n'est pas reconnu, a expiré ou a été révoqué.")
		return
	}
	s.open(w, r, p.TokenID, purpose, next(r.PostFormValue("suite")))
}

func (s *Server) open(w http.ResponseWriter, r *http.Request, tokenID, purpose, to string) {
	cookie, _, err := s.Store.CreateSession(r.Context(), tokenID, purpose, s.SessionTTL)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	setCookie(w, r, sessionCookie, cookie, int(s.SessionTTL.Seconds()))
	setCookie(w, r, preLoginCookie, "", -1)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// sendLink e-mails a one-time sign-in link to the address if a token is
// registered under it; the answer is the same either way.
func (s *Server) sendLink(w http.ResponseWriter, r *http.Request) {
	if !preLoginOK(r) {
		s.signInError(w, r, http.StatusForbidden, "Le formulaire a expiré. Recommencez.")
		return
	}
	if !s.mailLinks() {
		s.signInError(w, r, http.StatusNotFound, "La connexion par courriel n'est pas configurée ici.")
		return
	}
	email := strings.TrimSpace(r.PostFormValue("email"))
	if !strings.Contains(email, "@") || len(email) > 254 {
		s.signInError(w, r, http.StatusBadRequest, "Indiquez une adresse électronique valide.")
		return
	}
	codes, err := s.Store.CreateLoginLinks(r.Context(), email, 15*time.Minute)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	// Never from the request (Host is the sender's to choose): a link to
	// another site would hand it the code.
	base := strings.TrimRight(s.BaseURL, "/")
	for _, code := range codes {
		body := "Bonjour,\n\nPour vous connecter au suivi des actes d'état civil, ouvrez ce lien dans les 15 minutes :\n\n" +
			base + "/connexion/lien?code=" + url.QueryEscape(code) +
			"\n\nIl ne sert qu'une fois. Si vous n'avez rien demandé, ignorez ce message.\n"
		if err := s.Mail(r.Context(), email, "Votre lien de connexion", body); err != nil {
			s.Logger.Error("envoi du lien de connexion", "err", err) // never the address or the code
		}
	}
	http.Redirect(w, r, "/connexion?envoye=1", http.StatusSeeOther)
}

// linkForm asks to confirm a sign-in link (a GET never spends it: mail
// scanners open links).
func (s *Server) linkForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, nil, http.StatusOK, "link", map[string]any{"Title": "Connexion par lien", "CSRF": preLogin(w, r),
		"Code": r.URL.Query().Get("code")})
}

func (s *Server) useLink(w http.ResponseWriter, r *http.Request) {
	if !preLoginOK(r) {
		s.signInError(w, r, http.StatusForbidden, "Le formulaire a expiré. Rouvrez le lien reçu.")
		return
	}
	purpose := r.PostFormValue("purpose")
	if !slices.Contains(api.Purposes, purpose) {
		s.render(w, r, nil, http.StatusBadRequest, "link", map[string]any{"Title": "Connexion par lien", "CSRF": preLogin(w, r),
			"Code": r.PostFormValue("code"), "Error": "Choisissez la finalité de vos consultations."})
		return
	}
	tokenID, err := s.Store.UseLoginLink(r.Context(), r.PostFormValue("code"))
	if err != nil {
		s.signInError(w, r, http.StatusUnauthorized, "Ce lien de connexion n'est pas valide, a déjà servi ou a expiré. Demandez-en un nouveau.")
		return
	}
	if _, err := s.Auth.ForToken(r.Context(), tokenID); err != nil {
		s.signInError(w, r, http.StatusUnauthorized, "Le jeton d'accès lié à cette adresse a expiré ou a été révoqué.")
		return
	}
	s.open(w, r, tokenID, purpose, "/tableau-de-bord")
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request, se *session) error {
	if err := s.Store.DeleteSession(r.Context(), se.cookie); err != nil {
		return err
	}
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/connexion", http.StatusSeeOther)
	return nil
}

func (s *Server) changePurpose(w http.ResponseWriter, r *http.Request, se *session) error {
	purpose := r.PostFormValue("purpose")
	if !slices.Contains(api.Purposes, purpose) {
		return store.ErrInvalid
	}
	if err := s.Store.SetSessionPurpose(r.Context(), se.cookie, se.TokenID, purpose); err != nil {
		return err
	}
	http.Redirect(w, r, next(r.PostFormValue("suite")), http.StatusSeeOther)
	return nil
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, se *session) error {
	commune, err := s.chosenCommune(r, se.Principal)
	if err != nil {
		return err
	}
	d, err := s.Store.Dashboard(r.Context(), se.Principal.Scope, commune, 50)
	if err != nil {
		return err
	}
	// Rows per register (year, kind), columns per state.
	type row struct {
		Year   int
		Kind   string
		Counts map[string]int
		Total  int
	}
	var rows []*row
	index := map[string]*row{}
	for _, c := range d.Counts {
		k := fmt.Sprintf("%d/%s", c.Year, c.Kind)
		if index[k] == nil {
			index[k] = &row{Year: c.Year, Kind: c.Kind, Counts: map[string]int{}}
			rows = append(rows, index[k])
		}
		index[k].Counts[c.State] += c.Count
		index[k].Total += c.Count
	}
	title := "Tableau de bord"
	if commune != "" {
		title += " — " + s.communeName(commune)
	}
	s.render(w, r, se, http.StatusOK, "dashboard", map[string]any{"Title": title, "Commune": commune, "D": d, "Rows": rows,
		"States": []string{"archived", "received", "validated", "sealed", "stalled", "rejected"}})
	return nil
}

func (s *Server) registers(w http.ResponseWriter, r *http.Request, se *session) error {
	commune, err := s.chosenCommune(r, se.Principal)
	if err != nil {
		return err
	}
	year, _ := strconv.Atoi(r.URL.Query().Get("year"))
	kind := r.URL.Query().Get("kind")
	if kind != "" && !model.Kind(kind).Valid() {
		return store.ErrInvalid
	}
	list, err := s.Store.Registers(r.Context(), se.Principal.Scope, commune, year, kind)
	if err != nil {
		return err
	}
	s.render(w, r, se, http.StatusOK, "registers", map[string]any{"Title": "Registres : numéros reçus et lacunes", "Commune": commune,
		"Year": year, "Kind": kind, "Kinds": model.Kinds, "Registers": list})
	return nil
}

func (s *Server) acts(w http.ResponseWriter, r *http.Request, se *session) error {
	commune, err := s.chosenCommune(r, se.Principal)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	year, _ := strconv.Atoi(q.Get("year"))
	f := store.ActFilter{Commune: commune, Year: year, Kind: q.Get("kind"), State: q.Get("state"), RegistryState: q.Get("transmission"),
		Q: q.Get("q"), Limit: 50, Cursor: q.Get("page")}
	if f.Kind != "" && !model.Kind(f.Kind).Valid() {
		return store.ErrInvalid
	}
	if f.State != "" && stateLabels[f.State] == "" || f.RegistryState != "" && transmissionLabels[f.RegistryState] == "" {
		return store.ErrInvalid
	}
	list, nextPage, total, err := s.Store.ListActs(r.Context(), se.Principal.Scope, f)
	if err != nil {
		return err
	}
	more := ""
	if nextPage != "" {
		v := url.Values{}
		for k, vs := range q {
			if k != "page" {
				v[k] = vs
			}
		}
		v.Set("page", nextPage)
		more = "/actes?" + v.Encode()
	}
	s.render(w, r, se, http.StatusOK, "acts", map[string]any{"Title": "Actes", "Commune": commune, "F": f, "Acts": list, "Total": total,
		"More": more, "First": q.Get("page") != "", "Kinds": model.Kinds,
		"States":        []string{"archived", "rejected", "stalled", "received", "validated", "sealed"},
		"Transmissions": []string{"refused", "dead", "overdue", "retrying", "sent", "pending", "acknowledged"}})
	return nil
}

// timelineItem is one line of an act's timeline: a version's state or a
// transmission attempt.
type timelineItem struct {
	At      time.Time
	Version int
	What    string
	Detail  string
	Class   string
}

func (s *Server) act(w http.ResponseWriter, r *http.Request, se *session) error {
	if crossSite(r) {
		return errForbidden
	}
	id := r.PathValue("id")
	if _, err := s.Store.Act(r.Context(), se.Principal.Scope, id, false); err != nil {
		return err
	}
	// The page shows the persons: a read of personal data, audited with
	// the session's purpose in the same transaction.
	a, err := s.Store.ActWithPersonsRead(r.Context(), se.Principal.Scope, id, se.Principal.Actor(), se.Purpose, "consultation de la page de l'acte")
	if err != nil {
		return err
	}
	var tl []timelineItem
	for _, h := range a.History {
		tl = append(tl, timelineItem{At: h.At, Version: h.Version, What: label(stateLabels, h.State), Class: stateClass(h.State)})
	}
	for _, t := range a.Transmissions {
		for _, h := range t.History {
			d := label(outcomeLabels, h.Outcome)
			if h.Error != nil {
				d += " : " + *h.Error
			}
			tl = append(tl, timelineItem{At: h.At, Version: t.Version, What: "Transmission à « " + t.Registry + " »", Detail: d,
				Class: stateClass(map[string]string{"acknowledged": "acknowledged", "refused": "refused", "refused_locally": "refused"}[h.Outcome])})
		}
	}
	slices.SortStableFunc(tl, func(x, y timelineItem) int { return x.At.Compare(y.At) })
	var persons []struct {
		Role       string   `json:"role"`
		Surname    string   `json:"surname"`
		GivenNames []string `json:"given_names"`
		Sex        string   `json:"sex"`
		BirthDate  string   `json:"birth_date"`
		BirthPlace string   `json:"birth_place"`
	}
	if len(a.Persons) > 0 {
		_ = json.Unmarshal(a.Persons, &persons)
	}
	canPDF := slices.Contains([]auth.Role{auth.RoleHub, auth.RoleTownhall, auth.RoleAuditor, auth.RoleAdmin}, se.Principal.Role) && a.CurrentVersion != nil
	s.render(w, r, se, http.StatusOK, "act", map[string]any{"Title": fmt.Sprintf("Acte de %s n° %d (%d) — %s",
		strings.ToLower(label(kindLabels, a.Kind)), a.Number, a.Year, s.communeName(a.Commune)), "A": a, "Timeline": tl, "PDF": canPDF, "Persons": persons})
	return nil
}

func (s *Server) pdf(w http.ResponseWriter, r *http.Request, se *session) error {
	if crossSite(r) {
		return errForbidden
	}
	r.Header.Set("Etatcivil-Purpose", se.Purpose)
	r.Header.Del("Etatcivil-Reason")
	return s.API.ServePDF(w, r, se.Principal)
}

func (s *Server) batches(w http.ResponseWriter, r *http.Request, se *session) error {
	p := se.Principal
	if p.Role != auth.RoleHub && p.Role != auth.RoleAdmin {
		return errForbidden
	}
	list, err := s.Store.ListBatches(r.Context(), p.HubID, 200)
	if err != nil {
		return err
	}
	s.render(w, r, se, http.StatusOK, "batches", map[string]any{"Title": "Dépôts", "Batches": list})
	return nil
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request, se *session) error {
	p := se.Principal
	if p.Role != auth.RoleHub && p.Role != auth.RoleAdmin {
		return errForbidden
	}
	b, err := s.Store.Batch(r.Context(), p.Scope, r.PathValue("id"))
	if err != nil {
		return err
	}
	s.render(w, r, se, http.StatusOK, "batch", map[string]any{"Title": "Dépôt du " + b.CreatedAt.In(paris).Format("02/01/2006 à 15:04"), "B": b})
	return nil
}

func (s *Server) receipt(w http.ResponseWriter, r *http.Request, se *session) error {
	p := se.Principal
	if p.Role != auth.RoleHub && p.Role != auth.RoleAdmin {
		return errForbidden
	}
	return s.API.ServeReceipt(w, r, p)
}

// mailLinks reports whether sign-in by e-mailed link is on: it needs a
// mailer and the site's public address (links are never built from the
// request's Host).
func (s *Server) mailLinks() bool { return s.Mail != nil && s.BaseURL != "" }

// crossSite reports a request another site made the browser send (a link
// or a form elsewhere): reads of personal data are audited in the
// session's name, so they must come from these pages or be typed by the
// person (Sec-Fetch-Site none).
func crossSite(r *http.Request) bool {
	v := r.Header.Get("Sec-Fetch-Site")
	return v != "" && v != "same-origin" && v != "none"
}
