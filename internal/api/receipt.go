package api

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/receipt"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// getReceipt returns the deposit receipt of a finished batch: a PDF
// sealed with the hub's seal.
func (s *Server) getReceipt(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	b, err := s.batchInScope(ctx, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	lines, err := s.Store.ReceiptLines(ctx, b.ID)
	if err != nil {
		return err
	}
	hub, err := s.Store.Hub(ctx, b.Hub)
	if err != nil {
		return err
	}
	sha, err := s.Store.ManifestSHA256(ctx, b.ID)
	if err != nil {
		return err
	}
	rc := receipt.Receipt{BatchID: b.ID, Hub: b.Hub, HubName: hub.Name, CreatedAt: b.CreatedAt, Issued: time.Now(), Manifest: sha}
	if b.SubmittedAt != nil {
		rc.SubmittedAt = *b.SubmittedAt
	}
	for _, l := range lines {
		rc.Lines = append(rc.Lines, receipt.Line(l))
	}
	key, err := s.Keys.For(ctx, b.Hub)
	if err != nil {
		return err
	}
	doc := rc.PDF()
	// The receipt is sealed as the hub's acts are, at its level: B-T
	// receipts carry a signature timestamp, or are not issued.
	opts := seal.Options{Reason: "Récépissé de dépôt du lot " + b.ID, Location: "France", Time: rc.Issued}
	level, err := s.Store.HubSealLevel(ctx, b.Hub)
	if err != nil {
		return err
	}
	if level == "B-T" {
		if s.Timestamp == nil {
			return &Problem{Status: 503, Type: "tsa_unavailable", Title: "Horodatage indisponible",
				Detail: "Aucune autorité d'horodatage n'est configurée : le récépissé, scellé au niveau B-T, ne peut pas être émis."}
		}
		opts.Timestamp = s.Timestamp
	}
	sealed, n, err := s.Sealer.Seal(ctx, bytes.NewReader(doc), int64(len(doc)), key, opts)
	if errors.Is(err, tsa.ErrUnavailable) || errors.Is(err, tsa.ErrBadResponse) {
		w.Header().Set("Retry-After", "60")
		return &Problem{Status: 503, Type: "tsa_unavailable", Title: "Horodatage indisponible",
			Detail: "L'autorité d'horodatage ne répond pas : réessayez dans quelques minutes."}
	}
	if err != nil {
		return err
	}
	defer sealed.Close()
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.Header().Set("Content-Disposition", `attachment; filename="recepisse-`+b.ID+`.pdf"`)
	_, _ = io.Copy(w, sealed)
	return nil
}
