package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/etatcivil/etatcivil/internal/auditlog"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/store"
)

// auditVerify recomputes the audit chain and checks every checkpoint
// (auditors and admins): every chained event in place and unchanged, and
// how many are not yet anchored. The check is itself audited.
func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var rep auditlog.Report
	if s.Anchor != nil {
		var err error
		if rep, err = s.Anchor.Verify(r.Context()); err != nil {
			return err
		}
	} else {
		c, err := s.Store.VerifyChain(r.Context())
		if err != nil {
			return err
		}
		rep = auditlog.Report{OK: c.OK, Chained: c.Chained, Unanchored: c.Unanchored, Failures: []auditlog.Failure{}}
		for _, f := range c.Failures {
			rep.Failures = append(rep.Failures, auditlog.Failure{Seq: f.Seq, Problem: f.Problem})
		}
	}
	if err := s.Store.Audit(r.Context(), store.Event{Actor: p.Actor(), Action: "audit.verify",
		Data: map[string]any{"ok": rep.OK, "chained": rep.Chained, "failures": len(rep.Failures), "checkpoints": rep.Checkpoints}}); err != nil {
		return err
	}
	return writeJSON(w, 200, rep)
}

// queryTime reads an RFC 3339 time or a date (YYYY-MM-DD, midnight UTC).
func queryTime(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, &Problem{Status: 400, Type: "invalid_parameter", Title: "Paramètre invalide",
		Detail: fmt.Sprintf("Le paramètre %q doit être une date (AAAA-MM-JJ) ou un instant RFC 3339.", name)}
}

// auditEvents answers "who read act X" and "what did token Y read"
// (auditors and admins); the query is itself an audit event.
func (s *Server) auditEvents(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	q := r.URL.Query()
	f := store.AuditFilter{ActID: q.Get("act"), Actor: q.Get("actor")}
	var err error
	if f.From, err = queryTime(r, "from"); err != nil {
		return err
	}
	if f.To, err = queryTime(r, "to"); err != nil {
		return err
	}
	if f.Limit, err = queryInt(r, "limit"); err != nil {
		return err
	}
	if f.Limit == 0 || f.Limit > 1000 {
		f.Limit = min(cmpOr(f.Limit, 100), 1000)
	}
	after, err := queryInt(r, "cursor")
	if err != nil {
		return err
	}
	f.After = int64(after)
	if f.ActID == "" && f.Actor == "" {
		return &Problem{Status: 400, Type: "invalid_parameter", Title: "Paramètre manquant",
			Detail: "Indiquez un acte (act=ID) ou un auteur (actor=ID du jeton)."}
	}
	events, next, err := s.Store.AuditEvents(r.Context(), f)
	if err != nil {
		return err
	}
	if err := s.Store.Audit(r.Context(), store.Event{Actor: p.Actor(), Action: "audit.log", ActID: ValidUUID(f.ActID),
		Data: map[string]any{"act": f.ActID, "actor": f.Actor, "from": q.Get("from"), "to": q.Get("to"), "events": len(events)}}); err != nil {
		return err
	}
	var nextv *string
	if next != 0 {
		n := fmt.Sprint(next)
		nextv = &n
	}
	return writeJSON(w, 200, map[string]any{"events": events, "next": nextv})
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// ValidUUID returns s if it is a UUID (an act the event may name), "" otherwise.
func ValidUUID(s string) string {
	if len(s) != 36 {
		return ""
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return ""
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default:
			return ""
		}
	}
	return s
}

// auditExport streams a bundle of a commune's acts for a year (auditors
// and admins), which audit check verifies offline. Every PDF it carries
// is a read: the purpose is required, and one act.read_pdf event per act
// is recorded before a byte is sent.
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if s.Anchor == nil || s.Anchor.Key == nil {
		return &Problem{Status: 503, Type: "export_unavailable", Title: "Export indisponible",
			Detail: "Le serveur n'a pas de cachet par défaut (ETATCIVIL_SEAL_CERT/ETATCIVIL_SEAL_KEY) pour sceller l'export."}
	}
	commune := r.URL.Query().Get("commune")
	year, err := queryInt(r, "year")
	if err != nil {
		return err
	}
	if commune == "" || year == 0 {
		return &Problem{Status: 400, Type: "invalid_parameter", Title: "Paramètre manquant",
			Detail: "Indiquez la commune (commune=code INSEE) et l'année (year=AAAA)."}
	}
	if _, ok := s.Communes.Lookup(commune); !ok {
		return &Problem{Status: 400, Type: "unknown_commune", Title: "Commune inconnue",
			Detail: fmt.Sprintf("%q n'est pas un code commune du COG.", commune)}
	}
	purp, reason, err := purpose(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	versions, err := s.Store.ExportVersions(ctx, commune, year)
	if err != nil {
		return err
	}
	if err := s.Store.RecordExport(ctx, p.Actor(), purp, reason, commune, year, versions); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="etatcivil-%s-%d.tar"`, commune, year))
	w.Header().Set("Cache-Control", "no-store")
	_, err = s.Anchor.Export(ctx, w, auditlog.ExportRequest{Commune: commune, Year: year, Actor: p.Actor(), Versions: versions,
		Verify: func(ctx context.Context, actID string, version int) (any, bool, error) {
			rep, err := s.Verify(ctx, p, actID, version)
			if err != nil {
				return nil, false, err
			}
			ok := false
			for _, c := range rep.Checks {
				if c.Name == "sha256_matches_ledger" {
					ok = c.OK
				}
			}
			return rep, ok, nil
		}})
	if err != nil {
		// Part of the bundle may be sent: cut the connection so that the
		// client sees a failed transfer, never a short bundle.
		s.Logger.Error("export interrompu", "commune", commune, "year", year, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// fixityReport sums up the fixity audits (auditors and admins).
func (s *Server) fixityReport(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	period := 30 * 24 * time.Hour
	if s.Fixity != nil && s.Fixity.Period > 0 {
		period = s.Fixity.Period
	}
	rep, err := s.Store.Fixity(r.Context(), period)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, rep)
}
