package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/store"
)

func (s *Server) listTransmissions(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	list, err := s.Store.Transmissions(r.Context(), p.Scope, store.TransmissionFilter{Registry: q.Get("registry"), State: q.Get("state"), Limit: limit})
	if err != nil {
		return err
	}
	if list == nil {
		list = []store.TransmissionItem{}
	}
	return writeJSON(w, 200, map[string]any{"transmissions": list})
}

// retryTransmissions re-drives transmissions that are dead, refused,
// overdue or retrying: by id, registry or state.
func (s *Server) retryTransmissions(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var body struct {
		IDs      []string `json:"ids"`
		Registry string   `json:"registry"`
		State    string   `json:"state"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		return &Problem{Status: 400, Type: "invalid_request", Title: "Requête invalide",
			Detail: `Corps JSON attendu : {"ids": [...], "registry": "…", "state": "dead"}.`}
	}
	if body.State != "" && !slices.Contains(retryStates, body.State) {
		return badEnum("state", body.State, retryStates)
	}
	if len(body.IDs) == 0 && body.Registry == "" && body.State == "" {
		return &Problem{Status: 400, Type: "invalid_request", Title: "Requête invalide",
			Detail: "Indiquez des identifiants, un registre ou un état : rien n'est relancé en bloc sans critère."}
	}
	done, err := s.Store.RetryTransmissions(r.Context(), p.Actor(), p.Scope, store.TransmissionFilter{IDs: body.IDs, Registry: body.Registry, State: body.State},
		s.Jobs.Redrive(r.Context()))
	if err != nil {
		return err
	}
	if done == nil {
		done = []string{}
	}
	return writeJSON(w, 200, map[string]any{"retried": done})
}

// flushTransmissions builds at once the lots a cadence would hold back.
func (s *Server) flushTransmissions(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var body struct {
		Registry string `json:"registry"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
			return &Problem{Status: 400, Type: "invalid_request", Title: "Requête invalide", Detail: `Corps JSON attendu : {"registry": "…"} (facultatif).`}
		}
	}
	if err := s.Jobs.Flush(r.Context(), body.Registry); err != nil {
		return err
	}
	return writeJSON(w, 202, map[string]any{"flushing": body.Registry})
}

// registries gives, per registry, counts by state, the oldest
// transmission still owed and the overdue list, in the caller's scope.
func (s *Server) registries(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	list, err := s.Store.RegistriesStats(r.Context(), p.Scope)
	if err != nil {
		return err
	}
	if list == nil {
		list = []store.RegistryStats{}
	}
	return writeJSON(w, 200, map[string]any{"registries": list})
}

// backfillTransmissions applies a registry's current rule to versions
// archived before it, one page at a time ({"registry", "after", "limit"}).
func (s *Server) backfillTransmissions(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var body struct {
		Registry string `json:"registry"`
		After    string `json:"after"`
		Limit    int    `json:"limit"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil || body.Registry == "" {
		return &Problem{Status: 400, Type: "invalid_request", Title: "Requête invalide",
			Detail: `Corps JSON attendu : {"registry": "…", "after": "…" (facultatif), "limit": 1000 (facultatif)}.`}
	}
	if body.Limit <= 0 || body.Limit > 5000 {
		body.Limit = 1000
	}
	res, err := s.Jobs.Backfill(r.Context(), p.Actor(), body.Registry, body.After, body.Limit)
	if errors.Is(err, ingest.ErrUnknownRegistry) {
		return &Problem{Status: 404, Type: "registry_unknown", Title: "Registre inconnu", Detail: err.Error()}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, 200, res)
}

// dashboard is a commune's (or the caller's whole scope's) overview:
// counts by register and state, transmissions by registry and state, and
// what needs attention first.
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	d, err := s.Store.Dashboard(r.Context(), p.Scope, r.URL.Query().Get("commune"), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, d)
}

// registers gives each register's completeness: numbers received and
// gaps in the sequence.
func (s *Server) registers(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	year, err := queryInt(r, "year")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if k := q.Get("kind"); k != "" && !model.Kind(k).Valid() {
		return badEnum("kind", k, stringsOf(model.Kinds))
	}
	list, err := s.Store.Registers(r.Context(), p.Scope, q.Get("commune"), year, q.Get("kind"))
	if err != nil {
		return err
	}
	if list == nil {
		list = []store.Register{}
	}
	return writeJSON(w, 200, map[string]any{"registers": list})
}

// listBatches lists a hub's batches (every hub's for an admin).
func (s *Server) listBatches(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	hub := p.HubID
	if p.Role == auth.RoleAdmin {
		hub = r.URL.Query().Get("hub")
	}
	list, err := s.Store.ListBatches(r.Context(), hub, limit)
	if err != nil {
		return err
	}
	if list == nil {
		list = []store.BatchItem{}
	}
	return writeJSON(w, 200, map[string]any{"batches": list})
}

// retryStates are the states transmissions retry re-drives.
var retryStates = []string{"dead", "refused", "overdue", "retrying"}

// stringsOf lists values of a string type as strings, for messages.
func stringsOf[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

// badEnum is the 400 of a parameter outside its values.
func badEnum(name, got string, want []string) error {
	return &Problem{Status: 400, Type: "invalid_parameter", Title: "Paramètre invalide",
		Detail: fmt.Sprintf("%s vaut « %s » ; valeurs admises : %s.", name, got, strings.Join(want, ", "))}
}
