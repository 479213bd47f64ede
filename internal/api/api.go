// Package api serves etatcivil's HTTP API. Every route is declared once in
// Routes (method, pattern, roles, scope, handler); the router and the
// authorisation tests are both built from that table.
package api

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/etatcivil/etatcivil/internal/auditlog"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/cog"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/manifest"
	"github.com/etatcivil/etatcivil/internal/reqid"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
)

// ScopeKind says how a route limits what a caller reaches; the
// authorisation test uses it to try each route on its own tenant's object
// and on another's.
type ScopeKind int

// Route scopes.
const (
	// ScopeNone: nothing tenant-specific in the path.
	ScopeNone ScopeKind = iota
	// ScopeBatch: {id} is a batch; a hub reaches its own only.
	ScopeBatch
	// ScopeAct: {id} is an act; hubs and town halls reach their communes' only.
	ScopeAct
)

// Route is one entry of the route table.
type Route struct {
	Method  string
	Pattern string
	Roles   []auth.Role
	Scope   ScopeKind
	Handler func(s *Server, w http.ResponseWriter, r *http.Request, p auth.Principal) error
}

var (
	hubAdmin   = []auth.Role{auth.RoleHub, auth.RoleAdmin}
	auditAdmin = []auth.Role{auth.RoleAuditor, auth.RoleAdmin}
	everyRole  = []auth.Role{auth.RoleHub, auth.RoleTownhall, auth.RoleAuditor, auth.RoleAdmin}
)

// Routes is the route table.
var Routes = []Route{
	{"POST", "/api/v1/batches", hubAdmin, ScopeNone, (*Server).createBatch},
	{"GET", "/api/v1/batches", hubAdmin, ScopeNone, (*Server).listBatches},
	{"GET", "/api/v1/batches/{id}", hubAdmin, ScopeBatch, (*Server).getBatch},
	{"PUT", "/api/v1/batches/{id}/files/{file}", hubAdmin, ScopeBatch, (*Server).putFile},
	{"POST", "/api/v1/batches/{id}/submit", hubAdmin, ScopeBatch, (*Server).submitBatch},
	{"GET", "/api/v1/batches/{id}/receipt", hubAdmin, ScopeBatch, (*Server).getReceipt},
	{"GET", "/api/v1/acts", everyRole, ScopeNone, (*Server).listActs},
	{"GET", "/api/v1/acts/{id}", everyRole, ScopeAct, (*Server).getAct},
	{"GET", "/api/v1/acts/{id}/pdf", everyRole, ScopeAct, (*Server).getPDF},
	{"GET", "/api/v1/acts/{id}/verification", []auth.Role{auth.RoleAuditor, auth.RoleAdmin}, ScopeAct, (*Server).getVerification},
	{"GET", "/api/v1/audit/verify", auditAdmin, ScopeNone, (*Server).auditVerify},
	{"GET", "/api/v1/audit/events", auditAdmin, ScopeNone, (*Server).auditEvents},
	{"GET", "/api/v1/audit/export", auditAdmin, ScopeNone, (*Server).auditExport},
	{"GET", "/api/v1/fixity", auditAdmin, ScopeNone, (*Server).fixityReport},
	{"POST", "/api/v1/acts/retry", hubAdmin, ScopeNone, (*Server).retryActs},
	{"GET", "/api/v1/communes/{code}", everyRole, ScopeNone, (*Server).getCommune},
	{"GET", "/api/v1/transmissions", everyRole, ScopeNone, (*Server).listTransmissions},
	{"POST", "/api/v1/transmissions/retry", hubAdmin, ScopeNone, (*Server).retryTransmissions},
	{"POST", "/api/v1/transmissions/flush", []auth.Role{auth.RoleAdmin}, ScopeNone, (*Server).flushTransmissions},
	{"POST", "/api/v1/transmissions/backfill", []auth.Role{auth.RoleAdmin}, ScopeNone, (*Server).backfillTransmissions},
	{"GET", "/api/v1/registries", everyRole, ScopeNone, (*Server).registries},
	{"GET", "/api/v1/dashboard", everyRole, ScopeNone, (*Server).dashboard},
	{"GET", "/api/v1/registers", everyRole, ScopeNone, (*Server).registers},
}

// views are the reads the audit log records as they are served, one
// event per request, so that every access is attributable to a person
// (its token): the action per route. Reads that record their own event
// (PDFs, person data, the audit routes) are not here. The event names
// the route and the act or batch of the path, never the query's values
// (a surname searched for is personal data).
var views = map[string]string{
	"GET /api/v1/acts":                   "view.acts",
	"GET /api/v1/acts/{id}":              "view.act",
	"GET /api/v1/acts/{id}/verification": "view.verification",
	"GET /api/v1/batches":                "view.batches",
	"GET /api/v1/batches/{id}":           "view.batch",
	"GET /api/v1/batches/{id}/receipt":   "view.receipt",
	"GET /api/v1/dashboard":              "view.dashboard",
	"GET /api/v1/registers":              "view.registers",
	"GET /api/v1/transmissions":          "view.transmissions",
}

// recordView records the read r of route rt, if it is one of views,
// before it is served: an access the log cannot record is refused.
func (s *Server) recordView(r *http.Request, rt Route, p auth.Principal) error {
	action, ok := views[rt.Method+" "+rt.Pattern]
	if !ok || (rt.Pattern == "/api/v1/acts/{id}" && r.URL.Query().Get("persons") == "1") {
		return nil
	}
	e := store.Event{Actor: p.Actor(), Action: action, Data: map[string]any{"route": rt.Pattern}}
	switch rt.Scope {
	case ScopeAct:
		e.ActID = ValidUUID(r.PathValue("id"))
	case ScopeBatch:
		e.BatchID = ValidUUID(r.PathValue("id"))
	}
	return s.Store.Audit(r.Context(), e)
}

// Server holds the API's dependencies.
type Server struct {
	// Anchor verifies the audit checkpoints (nil: the chain alone).
	Anchor *auditlog.Anchor
	// Fixity reports fixity audits (nil: no report).
	Fixity *auditlog.Fixity
	Store  *store.Store
	Blob   *blob.Store
	Jobs   *ingest.Client
	// Roots are the trusted roots seals and timestamps are verified
	// against (ETATCIVIL_TRUST_ROOTS); nil: the system's.
	Roots    *x509.CertPool
	Auth     *auth.Authenticator
	Communes *cog.Snapshot
	Logger   *slog.Logger
	Limits   Limits
	Now      func() time.Time
	Metrics  *Metrics
	Sealer   seal.Sealer // seals deposit receipts
	// Timestamp obtains signature timestamps for B-T receipts (nil: none).
	Timestamp seal.Timestamper
	Keys      *ingest.KeyRing // hubs' seals

	failures failureLimiter
}

// Limits bounds requests.
type Limits struct {
	MaxFileSize           int64
	MaxManifestSize       int64
	AuthFailuresPerMinute int
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed (ETATCIVIL_TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
}

// Handler builds the router from Routes.
func (s *Server) Handler() http.Handler {
	if s.Metrics == nil {
		s.Metrics = NewMetrics()
	}
	mux := http.NewServeMux()
	for _, rt := range Routes {
		mux.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt))
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, &Problem{Status: 404, Type: "not_found", Title: "Introuvable", Detail: "Cette adresse n'existe pas dans l'API."})
	})
	return s.logged(mux)
}

// wrap authenticates, authorises by role, and maps the handler's error.
func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := s.clientIP(r)
		if s.failures.blocked(ip, s.Limits.AuthFailuresPerMinute) {
			w.Header().Set("Retry-After", "60")
			writeProblem(w, &Problem{Status: 429, Type: "too_many_failures", Title: "Trop d'échecs d'authentification",
				Detail: "Trop de tentatives avec un jeton invalide depuis cette adresse. Réessayez dans une minute."})
			return
		}
		tok, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="etatcivil"`)
			writeProblem(w, &Problem{Status: 401, Type: "unauthenticated", Title: "Authentification requise",
				Detail: "Fournissez un jeton d'accès dans l'en-tête Authorization: Bearer."})
			return
		}
		p, err := s.Auth.Authenticate(r.Context(), tok)
		if err != nil {
			if errors.Is(err, auth.ErrUnauthenticated) {
				s.failures.fail(ip)
			}
			s.fail(w, r, err)
			return
		}
		if !slices.Contains(rt.Roles, p.Role) {
			writeProblem(w, &Problem{Status: 403, Type: "forbidden", Title: "Accès refusé",
				Detail: fmt.Sprintf("Le rôle %s n'a pas accès à cette opération.", p.Role)})
			return
		}
		if err := s.recordView(r, rt, p); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := rt.Handler(s, w, r, p); err != nil {
			s.fail(w, r, err)
		}
	})
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail"`
	Errors []ProblemItem  `json:"errors,omitempty"`
	Extra  map[string]any `json:"-"`
}

// ProblemItem is one of several problems.
type ProblemItem struct {
	Pointer string `json:"pointer,omitempty"`
	Detail  string `json:"detail"`
}

func (p *Problem) Error() string { return p.Type + ": " + p.Detail }

func writeProblem(w http.ResponseWriter, p *Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	body := map[string]any{"type": p.Type, "title": p.Title, "status": p.Status, "detail": p.Detail}
	if len(p.Errors) > 0 {
		body["errors"] = p.Errors
	}
	for k, v := range p.Extra {
		body[k] = v
	}
	_ = json.NewEncoder(w).Encode(body)
}

// errorTable maps named errors to statuses, in order.
var errorTable = []struct {
	err    error
	status int
	typ    string
	title  string
}{
	{auth.ErrUnauthenticated, 401, "unauthenticated", "Authentification requise"},
	{store.ErrNotFound, 404, "not_found", "Introuvable"},
	{store.ErrConflict, 409, "conflict", "Conflit"},
	{store.ErrInvalid, 400, "invalid_request", "Requête invalide"},
	{manifest.ErrUnparseable, 400, "manifest_unparseable", "Manifeste illisible"},
	{blob.ErrUnavailable, 503, "storage_unavailable", "Stockage indisponible"},
}

// fail writes err as a problem document.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var p *Problem
	if errors.As(err, &p) {
		writeProblem(w, p)
		return
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			if e.status == 503 {
				w.Header().Set("Retry-After", "30")
			}
			if e.status == 401 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="etatcivil"`)
			}
			detail := err.Error()
			if e.status >= 500 {
				// Storage internals stay in the log, not in answers.
				s.Logger.Warn("stockage indisponible", "route", r.Pattern, "err", err)
				detail = "Le stockage ne répond pas pour le moment. Réessayez dans quelques instants."
			}
			writeProblem(w, &Problem{Status: e.status, Type: e.typ, Title: e.title, Detail: detail})
			return
		}
	}
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	s.Logger.Error("erreur interne", "route", r.Pattern, "err", err)
	// A database outage is the only common cause: say so, and when to retry.
	w.Header().Set("Retry-After", "30")
	writeProblem(w, &Problem{Status: 503, Type: "unavailable", Title: "Service momentanément indisponible",
		Detail: "Le service ne peut pas traiter la demande pour le moment. Réessayez dans quelques instants."})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := cutPrefixFold(h, "Bearer ")
	return tok, ok && tok != ""
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !equalFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// clientIP is the address failed authentications are counted against:
// the connection's peer, or, when the peer is one of the trusted reverse
// proxies (ETATCIVIL_TRUSTED_PROXIES), the nearest address in its
// X-Forwarded-For that is not itself a trusted proxy. Behind a proxy
// whose address is not declared, every client shares the proxy's count.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		a, err := netip.ParseAddr(h)
		if err != nil {
			return host // a malformed chain: count the proxy
		}
		if !s.trusted(a.String()) {
			return a.String()
		}
	}
	return host
}

func (s *Server) trusted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.Limits.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// failureLimiter counts failed authentications per client address in
// one-minute windows.
type failureLimiter struct {
	mu sync.Mutex
	m  map[string]*window
}

type window struct {
	start time.Time
	n     int
}

func (f *failureLimiter) fail(ip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]*window{}
	}
	now := time.Now()
	w := f.m[ip]
	if w == nil || now.Sub(w.start) > time.Minute {
		if len(f.m) > 100000 { // bound memory under a spray of addresses
			clear(f.m)
		}
		w = &window{start: now}
		f.m[ip] = w
	}
	w.n++
}

func (f *failureLimiter) blocked(ip string, max int) bool {
	if max <= 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.m[ip]
	return w != nil && time.Since(w.start) <= time.Minute && w.n >= max
}

// statusWriter records the status for the access log and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = 200
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// logged writes one access-log line per request: method, route pattern,
// status, duration. Never the query string, nor any header (tokens,
// purposes and reasons stay out of logs).
func (s *Server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The request's id: the caller's X-Request-Id if it is a plain
		// token, else a fresh one; answered back, logged, and carried into
		// the jobs the request creates.
		id := r.Header.Get("X-Request-Id")
		if !reqid.Valid(id) {
			id = reqid.New()
		}
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(reqid.With(r.Context(), id))
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = 200
		}
		s.Metrics.Request(sw.status)
		s.Metrics.Route(r.Method, r.Pattern, sw.status, time.Since(start))
		// The route and the id in its path (a batch or an act: ids only),
		// never the query string or the headers (INTERFACE.md).
		s.Logger.Info("requête", "method", r.Method, "route", r.Pattern, "id", ValidUUID(r.PathValue("id")), "status", sw.status,
			"ms", time.Since(start).Milliseconds(), "bytes", sw.bytes, "request_id", id)
	})
}

func queryInt(r *http.Request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, &Problem{Status: 400, Type: "invalid_parameter", Title: "Paramètre invalide",
			Detail: fmt.Sprintf("Le paramètre %q doit être un entier positif.", name)}
	}
	return n, nil
}

// The web pages authenticate their own way (a session) but share the
// API's limiter of failed sign-ins and serve PDFs through the same
// verified, audited path.

// AuthBlocked reports whether r's address failed authentication too often.
func (s *Server) AuthBlocked(r *http.Request) bool {
	return s.failures.blocked(s.clientIP(r), s.Limits.AuthFailuresPerMinute)
}

// AuthFailed counts one failed authentication from r's address.
func (s *Server) AuthFailed(r *http.Request) { s.failures.fail(s.clientIP(r)) }

// ServePDF serves an act's sealed PDF to p (the purpose in r's
// Etatcivil-Purpose header), checked against the ledger and audited as
// a read through the pages (channel "web").
func (s *Server) ServePDF(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return s.servePDF(w, r, p, "web")
}

// ServeReceipt serves a batch's sealed deposit receipt to p.
func (s *Server) ServeReceipt(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return s.getReceipt(w, r, p)
}
