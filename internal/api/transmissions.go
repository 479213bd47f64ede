package api

import (
	"encoding/json"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/auth"
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
	if len(body.IDs) == 0 && body.Registry == "" && body.State == "" {
		return &Problem{Status: 400, Type: "invalid_request", Title: "Requête invalide",
			Detail: "Indiquez des identifiants, un registre ou un état : rien n'est relancé en bloc sans critère."}
	}
	done, err := s.Store.RetryTransmissions(r.Context(), p.Actor(), p.Scope, store.TransmissionFilter{IDs: body.IDs, Registry: body.Registry, State: body.State},
		func(tx pgx.Tx, id, connector string) error { return s.Jobs.EnqueueSend(r.Context(), tx, id, connector) })
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
