package api

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// Check is one line of an integrity report.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Report is the integrity report of an archived act version
// (INTERFACE.md, "Integrity report"): ok is the AND of every check.
type Report struct {
	ActID   string  `json:"act_id"`
	Version int     `json:"version"`
	OK      bool    `json:"ok"`
	Level   string  `json:"level"` // PAdES level verified: B-B, B-T, B-LT, B-LTA, or "" if the seal does not verify
	Checks  []Check `json:"checks"`
	// Timestamps is the chain of timestamps, in order: the signature's
	// (B-T), then each document timestamp (B-LTA, and each
	// re-timestamping).
	Timestamps []ReportTimestamp `json:"timestamps"`
	// Validation counts the validation material embedded after the seal
	// (B-LT); null if none.
	Validation *seal.DSSInfo `json:"validation"`
}

// ReportTimestamp is one timestamp of a seal.
type ReportTimestamp struct {
	Kind string    `json:"kind"` // "signature" or "document"
	Time time.Time `json:"time"`
	// Covered is how many bytes of the file a document timestamp covers.
	Covered int64 `json:"covered,omitempty"`
}

func (r *Report) add(name string, ok bool, detail string) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: detail})
}

// Verify builds the integrity report of an act's version (0: current):
// the object is there, its bytes are the ledger's, the file received is
// their exact prefix, the seal verifies (with its timestamp for B-T)
// against the trusted roots, and the object is locked in COMPLIANCE mode.
// The read is audited.
func (s *Server) Verify(ctx context.Context, p auth.Principal, actID string, version int) (Report, error) {
	v, err := s.Store.ArchivedVersion(ctx, p.Scope, actID, version)
	if err != nil {
		return Report{}, err
	}
	r := Report{ActID: v.ActID, Version: v.Version, Checks: []Check{}, Timestamps: []ReportTimestamp{}}
	// An unavailable store is an error (503), not a verdict; anything else
	// that keeps the object from being read is a missing object.
	missing := func(err error) (Report, error) {
		if err = blob.Classify(err); errors.Is(err, blob.ErrUnavailable) {
			return r, err
		}
		r.add("object_present", false, fmt.Sprintf("objet %s (version %s) illisible : %v", v.Key, v.VersionID, err))
		return s.finish(ctx, p, r)
	}
	obj, err := s.Blob.GetArchive(ctx, v.Key, v.VersionID)
	if err != nil {
		return missing(err)
	}
	f, err := os.CreateTemp("", "etatcivil-verify-*")
	if err != nil {
		obj.Close()
		return r, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), obj)
	obj.Close()
	if err != nil {
		return missing(err)
	}
	r.add("object_present", true, fmt.Sprintf("%s, version %s, %d octets", v.Key, v.VersionID, n))
	sum := hex.EncodeToString(h.Sum(nil))
	detail := fmt.Sprintf("lu %d octets de SHA-256 %s ; registre : %d octets de SHA-256 %s", n, sum, v.Size, v.SHA256)
	r.add("sha256_matches_ledger", n == v.Size && sum == v.SHA256, detail)
	if n != v.Size || sum != v.SHA256 {
		s.integrityAlert(ctx, p, v, fmt.Errorf("%w: %s", blob.ErrIntegrity, detail))
	}

	prefix := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return r, err
	}
	m, _ := io.Copy(prefix, io.LimitReader(f, v.OrigSize))
	orig := hex.EncodeToString(prefix.Sum(nil))
	r.add("original_is_prefix", m == v.OrigSize && orig == v.Original,
		fmt.Sprintf("les %d premiers octets ont le SHA-256 %s ; fichier reçu : %s", v.OrigSize, orig, v.Original))

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return r, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return r, err
	}
	info, err := seal.VerifyTimestamped(data, s.Roots, s.verifyTimestamp)
	if err != nil {
		r.add("seal_valid", false, err.Error())
	} else {
		r.Level = info.Level
		d := fmt.Sprintf("PAdES %s, %s", info.Level, info.Signer)
		if !info.TimestampTime.IsZero() {
			d += ", horodaté le " + info.TimestampTime.UTC().Format(time.RFC3339)
			r.Timestamps = append(r.Timestamps, ReportTimestamp{Kind: "signature", Time: info.TimestampTime.UTC()})
		}
		if n := info.DSS; n.Certs+n.OCSPs+n.CRLs > 0 {
			r.Validation = &n
			d += fmt.Sprintf(" ; données de validation : %d certificat(s), %d réponse(s) OCSP, %d liste(s) de révocation", n.Certs, n.OCSPs, n.CRLs)
		}
		for _, ts := range info.DocTimestamps {
			r.Timestamps = append(r.Timestamps, ReportTimestamp{Kind: "document", Time: ts.Time.UTC(), Covered: ts.Covered})
			d += " ; horodatage de document du " + ts.Time.UTC().Format(time.RFC3339)
		}
		r.add("seal_valid", true, d)
	}

	ret, err := s.Blob.Retention(ctx, v.Key, v.VersionID)
	if err != nil && errors.Is(blob.Classify(err), blob.ErrUnavailable) {
		return r, blob.Classify(err) // not a verdict: the store did not answer
	}
	switch {
	case err != nil:
		r.add("retention_locked", false, err.Error())
	default:
		now := time.Now()
		if s.Now != nil {
			now = s.Now()
		}
		r.add("retention_locked", ret.Mode == "COMPLIANCE" && ret.Until.After(now),
			fmt.Sprintf("%s jusqu'au %s", ret.Mode, ret.Until.Format(time.DateOnly)))
	}
	if s.Anchor != nil {
		ok, detail, err := s.Anchor.CheckAct(ctx, v.ActID)
		if err != nil {
			return r, err
		}
		r.add("audit_chain", ok, detail)
	}
	return s.finish(ctx, p, r)
}

func (s *Server) finish(ctx context.Context, p auth.Principal, r Report) (Report, error) {
	r.OK = len(r.Checks) > 0
	for _, c := range r.Checks {
		r.OK = r.OK && c.OK
	}
	err := s.Store.Audit(ctx, store.Event{Actor: p.Actor(), Action: "act.verify", ActID: r.ActID,
		Data: map[string]any{"version": r.Version, "ok": r.OK, "level": r.Level}})
	return r, err
}

// verifyTimestamp checks a signature timestamp against the trusted roots.
func (s *Server) verifyTimestamp(token, imprint []byte) (time.Time, error) {
	info, err := tsa.Verify(token, imprint, crypto.SHA256, s.Roots)
	return info.Time, err
}

func (s *Server) getVerification(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	version, err := queryInt(r, "version")
	if err != nil {
		return err
	}
	rep, err := s.Verify(r.Context(), p, r.PathValue("id"), version)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, rep)
}

// LoadRoots reads the trusted roots (PEM files) seals and timestamps are
// verified against.
func LoadRoots(files []string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("racines de confiance : %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("racines de confiance : aucun certificat PEM dans %s", f)
		}
	}
	return pool, nil
}
