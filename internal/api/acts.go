package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/store"
)

// Purposes are the accepted values of Etatcivil-Purpose.
var Purposes = []string{"delivrance_copie", "mise_a_jour", "controle", "contentieux", "archivage", "autre"}

// purpose reads the purpose of a read of personal data, or fails with 400
// purpose_required.
func purpose(r *http.Request) (string, string, error) {
	p := r.Header.Get("Etatcivil-Purpose")
	if !slices.Contains(Purposes, p) {
		return "", "", &Problem{Status: 400, Type: "purpose_required", Title: "Finalité requise",
			Detail: "Toute lecture de données personnelles doit indiquer sa finalité dans l'en-tête Etatcivil-Purpose : delivrance_copie, mise_a_jour, controle, contentieux, archivage ou autre."}
	}
	reason := r.Header.Get("Etatcivil-Reason")
	if !utf8.ValidString(reason) {
		return "", "", &Problem{Status: 400, Type: "reason_invalid", Title: "Motif illisible",
			Detail: "L'en-tête Etatcivil-Reason doit être du texte UTF-8."}
	}
	if r := []rune(reason); len(r) > 500 {
		reason = string(r[:500])
	}
	return p, reason, nil
}

func (s *Server) listActs(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	q := r.URL.Query()
	year, err := queryInt(r, "year")
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = 50
	}
	if limit > 1000 {
		limit = 1000
	}
	kind := q.Get("kind")
	if kind != "" && !model.Kind(kind).Valid() {
		return &Problem{Status: 400, Type: "invalid_parameter", Title: "Paramètre invalide",
			Detail: "kind doit valoir naissance, mariage, deces ou reconnaissance."}
	}
	if st := q.Get("state"); st != "" && !slices.Contains(model.States, model.State(st)) {
		return badEnum("state", st, stringsOf(model.States))
	}
	if st := q.Get("registry_state"); st != "" && !slices.Contains(model.TransmissionStates, st) {
		return badEnum("registry_state", st, model.TransmissionStates)
	}
	number, err := queryInt(r, "number")
	if err != nil {
		return err
	}
	acts, next, total, err := s.Store.ListActs(r.Context(), p.Scope, store.ActFilter{
		Commune: q.Get("commune"), Year: year, Kind: kind, State: q.Get("state"), RegistryState: q.Get("registry_state"), Q: q.Get("q"),
		Number: number, Surname: q.Get("surname"), Limit: limit, Cursor: q.Get("cursor"),
	})
	if err != nil {
		return err
	}
	if acts == nil {
		acts = []store.ActSummary{}
	}
	var nextv *string
	if next != "" {
		nextv = &next
	}
	return writeJSON(w, 200, map[string]any{"acts": acts, "next": nextv, "total": total})
}

// getAct returns an act. Scope is checked before purpose: outside the
// caller's scope the answer is 404 with or without a purpose.
func (s *Server) getAct(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	id := r.PathValue("id")
	persons := r.URL.Query().Get("persons") == "1"
	if !persons {
		a, err := s.Store.Act(ctx, p.Scope, id, false)
		if err != nil {
			return err
		}
		return writeJSON(w, 200, a)
	}
	if _, err := s.Store.Act(ctx, p.Scope, id, false); err != nil {
		return err
	}
	purp, reason, err := purpose(r)
	if err != nil {
		return err
	}
	a, err := s.Store.ActWithPersonsRead(ctx, p.Scope, id, p.Actor(), purp, reason)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, a)
}

func (s *Server) retryActs(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var body struct {
		IDs []string `json:"ids"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
			return &Problem{Status: 400, Type: "invalid_request", Title: "Requête invalide", Detail: "Corps JSON attendu : {\"ids\": [...]}."}
		}
	}
	if body.IDs == nil {
		body.IDs = []string{}
	}
	done, err := s.Store.RetryStalled(r.Context(), p.Actor(), p.Scope, body.IDs, func(tx pgx.Tx, entryID string, st model.State) error {
		return s.Jobs.EnqueueFor(r.Context(), tx, entryID, st)
	})
	if err != nil {
		return err
	}
	if done == nil {
		done = []string{}
	}
	return writeJSON(w, 200, map[string]any{"retried": done})
}

func (s *Server) getCommune(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	code := r.PathValue("code")
	c, ok := s.Communes.Lookup(code)
	if !ok {
		return &Problem{Status: 404, Type: "not_found", Title: "Introuvable", Detail: fmt.Sprintf("Le code %q n'est pas dans le COG.", code)}
	}
	return writeJSON(w, 200, map[string]any{"commune": c, "chain": s.Communes.Chain(code)})
}
