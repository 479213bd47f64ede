package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/store"
)

// getPDF serves an archived, sealed PDF. Scope first (404), then purpose
// (400); the object version is read into a temporary file and its SHA-256
// compared with the ledger before the first byte is sent. A mismatch
// raises an integrity alert and sends nothing.
func (s *Server) getPDF(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return s.servePDF(w, r, p, "api")
}

// servePDF serves a PDF read through channel (api, web; exports record
// theirs as "export"), which its read event names.
func (s *Server) servePDF(w http.ResponseWriter, r *http.Request, p auth.Principal, channel string) error {
	ctx := r.Context()
	version, err := queryInt(r, "version")
	if err != nil {
		return err
	}
	v, err := s.Store.ArchivedVersion(ctx, p.Scope, r.PathValue("id"), version)
	if err != nil {
		return err
	}
	purp, reason, err := purpose(r)
	if err != nil {
		return err
	}
	f, sum, n, err := s.fetchVerified(ctx, v)
	if errors.Is(err, blob.ErrIntegrity) {
		s.integrityAlert(ctx, p, v, err)
		return &Problem{Status: 500, Type: "integrity_error", Title: "Intégrité rompue",
			Detail: fmt.Sprintf("La version %d de l'acte archivé ne correspond pas au registre (empreinte ou taille différente). Aucune donnée n'est envoyée ; une alerte d'intégrité a été levée.", v.Version)}
	}
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// The read and its audit record commit together: no record, no data.
	err = s.Store.Transact(ctx, func(tx pgx.Tx) error {
		return store.AuditTx(ctx, tx, store.Event{Actor: p.Actor(), Action: "act.read_pdf", ActID: v.ActID, Purpose: purp, Reason: reason,
			Data: map[string]any{"version": v.Version, "sha256": hex.EncodeToString(sum), "channel": channel}})
	})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="acte-%s-v%d.pdf"`, v.ActID, v.Version))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Etatcivil-Version", strconv.Itoa(v.Version))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, _ = io.Copy(w, f)
	return nil
}

// fetchVerified copies one archive version to a temporary file, hashing
// it, and checks size and SHA-256 against the ledger.
func (s *Server) fetchVerified(ctx context.Context, v store.ArchivedVersion) (*os.File, []byte, int64, error) {
	obj, err := s.Blob.GetArchive(ctx, v.Key, v.VersionID)
	if err != nil {
		return nil, nil, 0, err
	}
	defer obj.Close()
	f, err := os.CreateTemp("", "etatcivil-pdf-*")
	if err != nil {
		return nil, nil, 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), obj)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, nil, 0, blob.Classify(err)
	}
	sum := h.Sum(nil)
	if n != v.Size || hex.EncodeToString(sum) != v.SHA256 {
		f.Close()
		os.Remove(f.Name())
		return nil, nil, 0, fmt.Errorf("%w: %s (version %s) : %d octets de SHA-256 %x, le registre dit %d octets de SHA-256 %s",
			blob.ErrIntegrity, v.Key, v.VersionID, n, sum, v.Size, v.SHA256)
	}
	return f, sum, n, nil
}

// integrityAlert records an integrity failure where operators look: the
// audit log, the error log and the metrics.
func (s *Server) integrityAlert(ctx context.Context, p auth.Principal, v store.ArchivedVersion, cause error) {
	s.Metrics.IntegrityAlerts.Add(1)
	s.Logger.Error("ALERTE INTÉGRITÉ", "act", v.ActID, "version", v.Version, "key", v.Key, "version_id", v.VersionID, "err", cause)
	err := s.Store.Audit(context.WithoutCancel(ctx), store.Event{Actor: p.Actor(), Action: "integrity.alert", ActID: v.ActID,
		Data: map[string]any{"version": v.Version, "object_key": v.Key, "version_id": v.VersionID, "problem": cause.Error()}})
	if err != nil {
		s.Logger.Error("alerte d'intégrité non journalisée", "err", err)
	}
}
