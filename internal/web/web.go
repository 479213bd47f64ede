// Package web serves the pages town halls and hubs follow their acts
// with: server-rendered French HTML (html/template, embedded), usable
// without JavaScript, keyboard-navigable, and built for WCAG 2.1 AA.
//
// Sign-in takes an access token (or a one-time link sent by e-mail to the
// address registered for the token) and the purpose of reads; it opens a
// session whose cookie is HttpOnly, SameSite=Lax and Secure under TLS.
// Every form carries a CSRF token. Scopes are the token's, as in the API:
// another tenant's act answers 404.
package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/cog"
	"github.com/etatcivil/etatcivil/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Mailer sends one e-mail (one-time sign-in links).
type Mailer func(ctx context.Context, to, subject, body string) error

// Server serves the pages.
type Server struct {
	Store    *store.Store
	Auth     *auth.Authenticator
	API      *api.Server // PDFs and receipts go through the API's verified, audited path
	Communes *cog.Snapshot
	Logger   *slog.Logger
	// Mail sends sign-in links; nil disables sign-in by e-mail.
	Mail Mailer
	// BaseURL is the public address links in e-mails point to
	// (ETATCIVIL_PUBLIC_URL); without it, no sign-in by e-mail.
	BaseURL string
	// SessionTTL is how long a session lasts (8 h when zero).
	SessionTTL time.Duration
	// Jobs, if set, is River's web UI, served under /admin/jobs/ to
	// signed-in admins only (others: 404, as for anything out of scope).
	Jobs http.Handler

	pages map[string]*template.Template
}

const (
	sessionCookie  = "ec_session"
	preLoginCookie = "ec_prelogin"
)

// Handler returns the pages' handler.
func (s *Server) Handler() http.Handler {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.SessionTTL == 0 {
		s.SessionTTL = 8 * time.Hour
	}
	s.parse()
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /connexion", s.signInForm)
	mux.HandleFunc("POST /connexion", s.signIn)
	mux.HandleFunc("POST /connexion/lien", s.sendLink)
	mux.HandleFunc("GET /connexion/lien", s.linkForm)
	mux.HandleFunc("POST /connexion/lien/valider", s.useLink)
	mux.HandleFunc("POST /deconnexion", s.signedIn(s.signOut))
	mux.HandleFunc("POST /finalite", s.signedIn(s.changePurpose))
	mux.HandleFunc("GET /tableau-de-bord", s.signedIn(s.dashboard))
	mux.HandleFunc("GET /registres", s.signedIn(s.registers))
	mux.HandleFunc("GET /actes", s.signedIn(s.acts))
	mux.HandleFunc("GET /actes/{id}", s.signedIn(s.act))
	mux.HandleFunc("GET /actes/{id}/pdf", s.signedIn(s.pdf))
	mux.HandleFunc("GET /depots", s.signedIn(s.batches))
	mux.HandleFunc("GET /depots/{id}", s.signedIn(s.batch))
	mux.HandleFunc("GET /depots/{id}/recepisse", s.signedIn(s.receipt))
	if s.Jobs != nil {
		// River's UI posts JSON, not our forms: cross-origin requests are
		// refused by the browser's Sec-Fetch-Site / Origin headers
		// (http.CrossOriginProtection) instead of a form token.
		mux.Handle("/admin/jobs/", http.NewCrossOriginProtection().Handler(http.HandlerFunc(s.jobs)))
		mux.Handle("/admin/jobs", http.RedirectHandler("/admin/jobs/", http.StatusSeeOther))
	}
	return secureHeaders(mux)
}

// jobs serves River's UI to an admin. Its page runs scripts of its own
// (no inline script): the page policy is widened for it alone. Job args
// carry ids only, never index data.
func (s *Server) jobs(w http.ResponseWriter, r *http.Request) {
	se, err := s.session(r)
	if err != nil {
		if r.Method == http.MethodGet && !strings.Contains(r.URL.Path, "/api/") {
			http.Redirect(w, r, "/connexion?suite="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		s.error(w, r, nil, http.StatusUnauthorized, "Session expirée", "Votre session a expiré. Reconnectez-vous.")
		return
	}
	if se.Principal.Role != auth.RoleAdmin {
		s.fail(w, r, se, store.ErrNotFound)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := s.recordJobAction(r, se); err != nil {
			s.fail(w, r, se, err)
			return
		}
	}
	s.Jobs.ServeHTTP(w, r)
}

// maxJobActionBody bounds what the River UI may send for one action (a
// list of job ids, a queue's settings).
const maxJobActionBody = 64 << 10

// recordJobAction records, before River's UI acts on it, an admin's
// change through the UI (retry, cancel, delete of jobs; pause, resume of
// queues): action "jobs.ui" with the method, the UI's path and the
// request's JSON (job ids and queue names only: job args carry ids). No
// record, no change. The body is read here and handed on unchanged.
func (s *Server) recordJobAction(r *http.Request, se *session) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxJobActionBody))
	if err != nil {
		return fmt.Errorf("%w: requête de l'interface des travaux illisible ou trop grande", store.ErrInvalid)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	data := map[string]any{"method": r.Method, "path": strings.TrimPrefix(r.URL.Path, "/admin/jobs")}
	if len(body) > 0 {
		if json.Valid(body) {
			data["request"] = json.RawMessage(body)
		} else {
			data["request_bytes"] = len(body)
		}
	}
	return s.Store.Audit(r.Context(), store.Event{Actor: se.Principal.Actor(), Action: "jobs.ui", Purpose: se.Purpose, Data: data})
}

// secureHeaders sets what every page answers with: no framing, no
// sniffing, no referrer (sign-in links carry a code), a strict content
// policy (no script at all), and no caching of pages with personal data.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			w.Header().Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

// session is a signed-in request's context.
type session struct {
	store.Session
	cookie    string
	Principal auth.Principal
}

type handler func(w http.ResponseWriter, r *http.Request, se *session) error

// signedIn loads the session (or sends to the sign-in page), checks the
// CSRF token of every POST, and renders errors as pages.
func (s *Server) signedIn(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		se, err := s.session(r)
		if err != nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/connexion?suite="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.error(w, r, nil, http.StatusUnauthorized, "Session expirée", "Votre session a expiré. Reconnectez-vous.")
			return
		}
		if r.Method == http.MethodPost && !sameToken(r.PostFormValue("csrf"), se.CSRF) {
			s.error(w, r, se, http.StatusForbidden, "Formulaire expiré", "Ce formulaire n'est plus valide. Rechargez la page et recommencez.")
			return
		}
		if err := s.recordView(r, se); err != nil {
			s.fail(w, r, se, err)
			return
		}
		if err := h(w, r, se); err != nil {
			s.fail(w, r, se, err)
		}
	}
}

// pageViews are the pages' reads the audit log records as they are
// served, as the API's (api.views, the same action names): one event per
// page with the session's token and purpose, the page's route and the
// batch of its path, never the query's values (a surname searched for is
// personal data). The act page and its PDF record their own reads
// (act.read_persons, act.read_pdf).
var pageViews = map[string]string{
	"GET /tableau-de-bord":       "view.dashboard",
	"GET /registres":             "view.registers",
	"GET /actes":                 "view.acts",
	"GET /depots":                "view.batches",
	"GET /depots/{id}":           "view.batch",
	"GET /depots/{id}/recepisse": "view.receipt",
}

// recordView records the page read r, if it is one of pageViews, before
// it is served: no record, no page. A batch outside the session's scope
// is recorded too (an attempt), then answers 404.
func (s *Server) recordView(r *http.Request, se *session) error {
	action, ok := pageViews[r.Pattern]
	if !ok {
		return nil
	}
	return s.Store.Audit(r.Context(), store.Event{Actor: se.Principal.Actor(), Action: action, Purpose: se.Purpose,
		BatchID: api.ValidUUID(r.PathValue("id")), Data: map[string]any{"route": strings.TrimPrefix(r.Pattern, "GET ")}})
}

func (s *Server) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, errNoSession
	}
	st, err := s.Store.SessionByCookie(r.Context(), c.Value)
	if err != nil {
		return nil, errNoSession
	}
	p, err := s.Auth.ForToken(r.Context(), st.TokenID)
	if err != nil {
		return nil, errNoSession
	}
	return &session{Session: st, cookie: c.Value, Principal: p}, nil
}

var errNoSession = errors.New("pas de session")

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// fail maps an error to a page: 404 for anything out of scope or absent.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, se *session, err error) {
	var prob *api.Problem
	switch {
	case errors.As(err, &prob):
		// The API's own answers (PDF, receipts): its status and French detail.
		if prob.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "60")
		}
		if prob.Status >= 500 && prob.Status != http.StatusServiceUnavailable {
			s.Logger.Error("page", "path", r.URL.Path, "err", err)
		}
		s.error(w, r, se, prob.Status, prob.Title, prob.Detail)
	case errors.Is(err, blob.ErrUnavailable):
		w.Header().Set("Retry-After", "60")
		s.error(w, r, se, http.StatusServiceUnavailable, "Service momentanément indisponible", "Le stockage des actes ne répond pas. Réessayez dans quelques minutes.")
	case errors.Is(err, store.ErrNotFound):
		s.error(w, r, se, http.StatusNotFound, "Page introuvable", "Cette page n'existe pas, ou vous n'y avez pas accès.")
	case errors.Is(err, errForbidden):
		s.error(w, r, se, http.StatusForbidden, "Accès refusé", "Votre accès ne permet pas d'ouvrir cette page.")
	case errors.Is(err, store.ErrInvalid):
		s.error(w, r, se, http.StatusBadRequest, "Demande invalide", "Un des critères est invalide. Revenez à la page précédente.")
	default:
		s.Logger.Error("page", "path", r.URL.Path, "err", err)
		s.error(w, r, se, http.StatusInternalServerError, "Erreur", "Une erreur est survenue. Réessayez ; si elle se reproduit, contactez l'opérateur.")
	}
}

var errForbidden = errors.New("accès refusé")

func (s *Server) error(w http.ResponseWriter, r *http.Request, se *session, status int, title, detail string) {
	s.render(w, r, se, status, "error", map[string]any{"Title": title, "Detail": detail})
}

// cookie sets a cookie: HttpOnly, SameSite=Lax, Secure under TLS.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https", MaxAge: maxAge})
}

// preLogin returns the pre-sign-in CSRF value (set as a cookie), so that
// another site cannot sign a browser in with its own token.
func preLogin(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preLoginCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	setCookie(w, r, preLoginCookie, v, 3600)
	return v
}

func preLoginOK(r *http.Request) bool {
	c, err := r.Cookie(preLoginCookie)
	return err == nil && sameToken(r.PostFormValue("csrf"), c.Value)
}

// communes lists the communes a principal may choose between, with names.
func (s *Server) communes(p auth.Principal) []communeOption {
	var out []communeOption
	for _, code := range p.Scope.Communes {
		out = append(out, communeOption{Code: code, Name: s.communeName(code)})
	}
	slices.SortFunc(out, func(a, b communeOption) int { return strings.Compare(a.Name, b.Name) })
	return out
}

type communeOption struct{ Code, Name string }

func (s *Server) communeName(code string) string {
	if s.Communes != nil {
		if c, ok := s.Communes.Lookup(code); ok {
			return c.Name
		}
	}
	return code
}

// chosenCommune is the commune asked for, if the principal may see it
// ("" for the whole scope): one of its communes, or a commune whose acts
// its scope sees (an arrondissement, a commune déléguée, a former code).
func (s *Server) chosenCommune(r *http.Request, p auth.Principal) (string, error) {
	c := strings.TrimSpace(r.URL.Query().Get("commune"))
	if c == "" || p.Scope.All || slices.Contains(p.Scope.Communes, c) {
		return c, nil
	}
	ok, err := s.Store.CommuneInScope(r.Context(), p.Scope, c)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("commune %s: %w", c, store.ErrNotFound)
	}
	return c, nil
}
