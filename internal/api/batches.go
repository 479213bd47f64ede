package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/manifest"
	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/store"
)

// createBatch accepts a manifest (JSON or CSV body), or the one-shot
// multipart form (a "manifest" part, then one part per file).
func (s *Server) createBatch(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		return s.createBatchMultipart(w, r, p)
	}
	if r.ContentLength > s.Limits.MaxManifestSize {
		return tooLarge("Le manifeste", s.Limits.MaxManifestSize)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.Limits.MaxManifestSize))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge("Le manifeste", s.Limits.MaxManifestSize)
	}
	if err != nil {
		return &Problem{Status: 400, Type: "body_unreadable", Title: "Corps illisible", Detail: "Le manifeste n'a pas pu être lu entièrement."}
	}
	name := "manifest.json"
	if ct == "text/csv" {
		name = "manifest.csv"
	}
	view, created, err := s.acceptManifest(r.Context(), p, name, data, r.Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return writeJSON(w, status, view)
}

// acceptManifest parses, checks and records a manifest.
func (s *Server) acceptManifest(ctx context.Context, p auth.Principal, name string, data []byte, key string) (store.BatchView, bool, error) {
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if key == "" {
		key = digest
	} else if !strings.EqualFold(key, digest) {
		return store.BatchView{}, false, &Problem{Status: 400, Type: "idempotency_key_mismatch", Title: "Clé d'idempotence incorrecte",
			Detail: "L'en-tête Idempotency-Key doit être le SHA-256 (hexadécimal) des octets du manifeste envoyé ; le manifeste a peut-être été altéré en route."}
	}
	m, err := manifest.Parse(name, data)
	if err != nil {
		return store.BatchView{}, false, err
	}
	if m.Hub == "" && p.Role == auth.RoleHub {
		m.Hub = p.HubID
	}
	if m.Hub == "" {
		return store.BatchView{}, false, &Problem{Status: 400, Type: "manifest_unparseable", Title: "Manifeste illisible", Detail: "Le manifeste ne nomme pas d'opérateur (« hub »)."}
	}
	if p.Role == auth.RoleHub && m.Hub != p.HubID {
		return store.BatchView{}, false, &Problem{Status: 403, Type: "hub_mismatch", Title: "Opérateur différent",
			Detail: fmt.Sprintf("Le manifeste est au nom de l'opérateur %q, le jeton de %q.", m.Hub, p.HubID)}
	}
	hub, err := s.Store.Hub(ctx, m.Hub)
	if errors.Is(err, store.ErrNotFound) {
		return store.BatchView{}, false, &Problem{Status: 400, Type: "hub_unknown", Title: "Opérateur inconnu",
			Detail: fmt.Sprintf("L'opérateur %q n'existe pas.", m.Hub)}
	}
	if err != nil {
		return store.BatchView{}, false, err
	}
	members := map[string]bool{}
	for _, c := range hub.Communes {
		members[c] = true
	}
	checker := manifest.Checker{
		Lookup: s.Communes.Lookup,
		Member: func(code string) bool {
			for _, c := range s.Communes.Chain(code) {
				if members[c] {
					return true
				}
			}
			return false
		},
		Now: s.Now,
	}
	checker.Check(m)
	// A file announced over the size limit can never be received (its PUT
	// gets 413): say so now, rather than "file_missing" at submit.
	for i := range m.Acts {
		if e := &m.Acts[i]; e.Problem == nil && e.Size > s.Limits.MaxFileSize {
			e.Problem = model.Reject(model.ReasonPDFTooLarge, fmt.Sprintf("(%d octets annoncés, maximum %d)", e.Size, s.Limits.MaxFileSize))
		}
	}
	nb := store.NewBatch{HubID: m.Hub, IdempotencyKey: strings.ToLower(key), Format: m.Format, ManifestSHA256: digest}
	for i := range m.Acts {
		e := &m.Acts[i]
		ne := store.NewEntry{File: e.File, Problem: e.Problem}
		if e.Problem == nil {
			idx, err := json.Marshal(e)
			if err != nil {
				return store.BatchView{}, false, err
			}
			flow := e.Flow
			if flow == "" {
				flow = model.FlowReprise
			}
			ne = store.NewEntry{File: e.File, Size: e.Size, SHA256: strings.ToLower(e.SHA256), Commune: e.Commune, Kind: string(e.Kind),
				Year: e.Year, Number: e.Number, Flow: string(flow), IndexData: idx, IndexDigest: e.IndexDigest(),
				Replaces: strings.ToLower(e.Replaces), RevisionReason: string(e.RevisionReason),
				CommuneChain: s.Communes.Chain(e.Commune)}
		}
		if len(e.Notes) > 0 && ne.Problem != nil {
			ne.Problem = &model.Rejection{Reason: ne.Problem.Reason, Message: e.Message()}
		}
		nb.Entries = append(nb.Entries, ne)
	}
	id, created, err := s.Store.CreateBatch(ctx, p.Actor(), nb)
	if err != nil {
		return store.BatchView{}, false, err
	}
	if created {
		s.Metrics.BatchesCreated.Add(1)
	}
	view, err := s.Store.Batch(ctx, store.Scope{All: true}, id)
	return view, created, err
}

func tooLarge(what string, limit int64) *Problem {
	return &Problem{Status: 413, Type: "too_large", Title: "Trop volumineux",
		Detail: fmt.Sprintf("%s dépasse la taille maximale de %d octets.", what, limit)}
}

// batchScope is the principal's reach over batches.
func batchScope(p auth.Principal) store.Scope {
	return store.Scope{All: p.Role == auth.RoleAdmin, HubID: p.HubID}
}

// batchInScope returns the batch, with every entry, if the principal may
// reach it.
func (s *Server) batchInScope(ctx context.Context, p auth.Principal, id string) (store.BatchView, error) {
	return s.Store.Batch(ctx, batchScope(p), id)
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	b, err := s.batchInScope(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, 200, b)
}

func (s *Server) submitBatch(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	if err := s.Store.BatchInScope(ctx, batchScope(p), r.PathValue("id")); err != nil {
		return err
	}
	if err := s.Store.Submit(ctx, p.Actor(), r.PathValue("id")); err != nil {
		return err
	}
	b, err := s.Store.Batch(ctx, store.Scope{All: true}, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, 200, b)
}

// putFile receives one file of a batch. The size limit is enforced from
// Content-Length before a byte is read; the body streams to the staging
// bucket while it is hashed.
func (s *Server) putFile(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s.Metrics.FilePuts.Add(1)
	if r.ContentLength < 0 {
		return &Problem{Status: 411, Type: "length_required", Title: "Longueur requise", Detail: "L'en-tête Content-Length est obligatoire."}
	}
	if r.ContentLength > s.Limits.MaxFileSize {
		return tooLarge("Le fichier", s.Limits.MaxFileSize)
	}
	ctx := r.Context()
	batchID, file := r.PathValue("id"), r.PathValue("file")
	// The batch's row only: reading its entries for each of its files
	// made a batch's upload quadratic (a 1,000-act batch read a million
	// entry rows, a fifth of the server's CPU while it ingested).
	if err := s.Store.BatchInScope(ctx, batchScope(p), batchID); err != nil {
		return err
	}
	slot, err := s.Store.UploadSlot(ctx, batchID, file)
	if errors.Is(err, store.ErrNotFound) {
		return &Problem{Status: 409, Type: "file_not_in_manifest", Title: "Fichier inattendu",
			Detail: fmt.Sprintf("Le fichier %q ne figure pas dans le manifeste du lot ; il est ignoré.", file)}
	}
	if err != nil {
		return err
	}
	if slot.Submitted && slot.State == model.StateExpected {
		return &Problem{Status: 409, Type: "batch_submitted", Title: "Lot déjà soumis", Detail: "Le lot a été soumis : il ne reçoit plus de fichiers."}
	}
	if slot.Received || slot.State != model.StateExpected && slot.State != model.StateRejected {
		return writeJSON(w, 200, map[string]any{"file": file, "status": "already_received"})
	}
	if slot.State == model.StateRejected {
		return &Problem{Status: 409, Type: "entry_rejected", Title: "Entrée refusée", Detail: "Cette entrée du manifeste est déjà refusée ; le fichier est ignoré."}
	}
	res, err := s.receive(ctx, p, slot, r.Body, r.ContentLength)
	if err != nil {
		return err
	}
	return s.answerReceived(w, file, res)
}

type received struct {
	match bool
	size  int64
	sha   string
}

// receive streams exactly size bytes of body to staging and records them.
func (s *Server) receive(ctx context.Context, p auth.Principal, slot store.Upload, body io.Reader, size int64) (received, error) {
	sha, err := s.Blob.PutStaging(ctx, slot.StagedKey, body, size)
	if errors.Is(err, blob.ErrShortBody) {
		return received{}, &Problem{Status: 400, Type: "body_incomplete", Title: "Corps incomplet", Detail: "Le fichier reçu est plus court ou plus long que Content-Length ; renvoyez-le."}
	}
	if err != nil {
		return received{}, err
	}
	return s.record(ctx, p, slot, size, sha)
}

func (s *Server) record(ctx context.Context, p auth.Principal, slot store.Upload, size int64, sha string) (received, error) {
	// The bytes are in: record them even if the client hangs up now, so
	// what is staged and what the ledger says never disagree.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	match, err := s.Store.FileReceived(ctx, p.Actor(), slot, size, sha, func(tx pgx.Tx) error {
		return s.Jobs.EnqueueValidate(ctx, tx, slot.EntryID)
	})
	if err != nil {
		return received{}, err
	}
	s.Metrics.FilesReceived.Add(1)
	s.Metrics.BytesReceived.Add(size)
	if !match {
		s.Metrics.FilesMismatch.Add(1)
	}
	return received{match: match, size: size, sha: sha}, nil
}

func (s *Server) answerReceived(w http.ResponseWriter, file string, res received) error {
	if !res.match {
		return &Problem{Status: 422, Type: string(model.ReasonChecksumMismatch), Title: "Empreinte différente",
			Detail: model.ReasonChecksumMismatch.Message(),
			Extra:  map[string]any{"file": file, "size": res.size, "sha256": res.sha}}
	}
	return writeJSON(w, 201, map[string]any{"file": file, "status": "received", "size": res.size, "sha256": res.sha})
}

// createBatchMultipart reads the one-shot form as a stream: the manifest
// part first, then each file part straight into staging, then submits.
func (s *Server) createBatchMultipart(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	mr, err := r.MultipartReader()
	if err != nil {
		return &Problem{Status: 400, Type: "multipart_invalid", Title: "Formulaire invalide", Detail: "Le corps multipart est illisible : " + err.Error()}
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "manifest" {
		return &Problem{Status: 400, Type: "multipart_invalid", Title: "Formulaire invalide", Detail: "La première partie doit s'appeler « manifest »."}
	}
	data, err := io.ReadAll(io.LimitReader(part, s.Limits.MaxManifestSize+1))
	if err != nil {
		return &Problem{Status: 400, Type: "body_unreadable", Title: "Corps illisible", Detail: "Le manifeste n'a pas pu être lu."}
	}
	if int64(len(data)) > s.Limits.MaxManifestSize {
		return tooLarge("Le manifeste", s.Limits.MaxManifestSize)
	}
	name := "manifest.json"
	if strings.HasSuffix(part.FileName(), ".csv") {
		name = "manifest.csv"
	}
	view, created, err := s.acceptManifest(ctx, p, name, data, r.Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	var problems []ProblemItem
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return &Problem{Status: 400, Type: "multipart_invalid", Title: "Formulaire invalide", Detail: "Le corps multipart est interrompu : " + err.Error()}
		}
		file := part.FileName()
		if file == "" {
			file = part.FormName()
		}
		if msg := s.receivePart(ctx, p, view.ID, file, part); msg != "" {
			problems = append(problems, ProblemItem{Pointer: file, Detail: msg})
		}
	}
	if err := s.Store.Submit(ctx, p.Actor(), view.ID); err != nil {
		return err
	}
	b, err := s.Store.Batch(ctx, store.Scope{All: true}, view.ID)
	if err != nil {
		return err
	}
	status := 200
	if created {
		status = 201
	}
	out := struct {
		store.BatchView
		Errors []ProblemItem `json:"errors,omitempty"`
	}{b, problems}
	return writeJSON(w, status, out)
}

// hashCounter hashes and counts what is read through it.
type hashCounter struct {
	r io.Reader
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (h *hashCounter) Read(b []byte) (int, error) {
	n, err := h.r.Read(b)
	h.n += int64(n)
	h.h.Write(b[:n])
	return n, err
}

// receivePart stores one file part. A part has no length of its own, so
// the manifest's size is streamed to staging while the whole part is
// hashed and counted; a part of another size is recorded as a mismatch.
// It returns a French message for a file that could not be taken.
func (s *Server) receivePart(ctx context.Context, p auth.Principal, batchID, file string, part io.Reader) string {
	defer io.Copy(io.Discard, io.LimitReader(part, s.Limits.MaxFileSize+1))
	slot, err := s.Store.UploadSlot(ctx, batchID, file)
	if err != nil {
		return fmt.Sprintf("fichier %q ignoré : absent du manifeste ou déjà traité.", file)
	}
	if slot.Received || slot.State != model.StateExpected {
		return ""
	}
	hc := &hashCounter{r: io.LimitReader(part, s.Limits.MaxFileSize+1), h: sha256.New()}
	_, perr := s.Blob.PutStaging(ctx, slot.StagedKey, io.LimitReader(hc, slot.Size), slot.Size)
	if _, err := io.Copy(io.Discard, hc); err != nil {
		return fmt.Sprintf("fichier %q interrompu.", file)
	}
	if hc.n > s.Limits.MaxFileSize {
		return fmt.Sprintf("fichier %q : dépasse la taille maximale.", file)
	}
	if perr != nil && !(errors.Is(perr, blob.ErrShortBody) && hc.n < slot.Size) {
		// Nothing was stored: record nothing (the file stays missing).
		return fmt.Sprintf("fichier %q : stockage indisponible, renvoyez-le.", file)
	}
	sha := hex.EncodeToString(hc.h.Sum(nil))
	if _, err := s.record(ctx, p, slot, hc.n, sha); err != nil {
		return fmt.Sprintf("fichier %q : %v", file, err)
	}
	return ""
}
