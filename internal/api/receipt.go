package api

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/receipt"
	"github.com/etatcivil/etatcivil/internal/seal"
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
	sealed, n, err := s.Sealer.Seal(ctx, bytes.NewReader(doc), int64(len(doc)), key, seal.Options{
		Reason: "Récépissé de dépôt du lot " + b.ID, Location: "France", Time: rc.Issued})
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
