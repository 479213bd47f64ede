package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"
)

// CheckResult is one property the archive bucket must have.
type CheckResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Check probes the archive bucket for what etatcivil relies on: versioning
// and object lock on, SHA-256 checksums kept, If-None-Match honoured,
// retention readable per version, deletion of a locked version refused.
// It writes one small probe object locked COMPLIANCE for probeRetention
// (keep it short: it cannot be deleted before then).
func (s *Store) Check(ctx context.Context, probeRetention time.Duration) ([]CheckResult, error) {
	var out []CheckResult
	add := func(name string, ok bool, detail string) { out = append(out, CheckResult{name, ok, detail}) }
	b := s.cfg.Archive

	if ok, err := s.c.BucketExists(ctx, b); err != nil {
		return nil, Classify(err)
	} else if !ok {
		add("bucket_exists", false, fmt.Sprintf("le seau %q n'existe pas", b))
		return out, nil
	}
	add("bucket_exists", true, b)

	vc, err := s.c.GetBucketVersioning(ctx, b)
	add("versioning_enabled", err == nil && vc.Enabled(), errDetail(err, "versioning: "+vc.Status))

	enabled, mode, validity, unit, err := s.c.GetObjectLockConfig(ctx, b)
	lockDetail := "object lock: " + enabled
	if err != nil {
		lockDetail = err.Error()
	} else if mode != nil {
		lockDetail = fmt.Sprintf("défaut %s %v %v", *mode, derefU(validity), derefUnit(unit))
	}
	add("object_lock_enabled", err == nil && enabled == "Enabled", lockDetail)

	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	key := fmt.Sprintf("_etatcivil/s3check/%s-%x", time.Now().UTC().Format("20060102T150405Z"), nonce)
	body := []byte("etatcivil s3 check " + key)
	sum := sha256.Sum256(body)
	until := time.Now().Add(probeRetention).UTC().Truncate(time.Second)
	info, err := s.c.PutObject(ctx, b, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{
		Checksum:             minio.ChecksumSHA256,
		DisableContentSha256: true, // see PutStaging
		Mode:                 minio.Compliance,
		RetainUntilDate:      until,
	})
	if err != nil {
		add("put_locked_object", false, err.Error())
		return out, nil
	}
	add("put_locked_object", true, key)

	st, err := s.c.StatObject(ctx, b, key, minio.StatObjectOptions{VersionID: info.VersionID, Checksum: true})
	want := base64.StdEncoding.EncodeToString(sum[:])
	add("sha256_checksum_kept", err == nil && st.ChecksumSHA256 == want,
		errDetail(err, fmt.Sprintf("attendu %s, reçu %q", hex.EncodeToString(sum[:]), st.ChecksumSHA256)))

	again := minio.PutObjectOptions{Checksum: minio.ChecksumSHA256, DisableContentSha256: true, Mode: minio.Compliance, RetainUntilDate: until}
	again.SetMatchETagExcept("*") // If-None-Match: *
	_, err = s.c.PutObject(ctx, b, key, bytes.NewReader(body), int64(len(body)), again)
	resp := minio.ToErrorResponse(err)
	add("if_none_match_honoured", err != nil && resp.StatusCode == http.StatusPreconditionFailed,
		fmt.Sprintf("second dépôt: statut %d %s", resp.StatusCode, resp.Code))

	ret, err := s.Retention(ctx, key, info.VersionID)
	ok := err == nil && ret.Mode == "COMPLIANCE" && !ret.Until.Before(until.Add(-time.Second))
	detail := errDetail(err, fmt.Sprintf("mode %q jusqu'au %s", ret.Mode, ret.Until.Format(time.RFC3339)))
	if ok {
		detail = fmt.Sprintf("COMPLIANCE jusqu'au %s (version %s)", ret.Until.UTC().Format(time.RFC3339), info.VersionID)
	}
	add("retention_readable", ok, detail)

	err = s.c.RemoveObject(ctx, b, key, minio.RemoveObjectOptions{VersionID: info.VersionID})
	add("locked_delete_refused", err != nil, errDetail(err, "la suppression d'une version verrouillée a été acceptée"))
	return out, nil
}

func errDetail(err error, def string) string {
	if err != nil {
		return err.Error()
	}
	return def
}

func derefU(p *uint) uint {
	if p == nil {
		return 0
	}
	return *p
}

func derefUnit(p *minio.ValidityUnit) string {
	if p == nil {
		return ""
	}
	return string(*p)
}

// Retention is an object version's lock.
type Retention struct {
	Mode  string // COMPLIANCE or GOVERNANCE, "" if none
	Until time.Time
}

// Retention reads the lock of one version of an archive object. It asks
// GetObjectRetention first and falls back to the lock headers of a HEAD
// on that version, which every S3 with object lock returns (some
// gateways answer GetObjectRetention with an element name minio-go does
// not parse).
func (s *Store) Retention(ctx context.Context, key, versionID string) (Retention, error) {
	m, until, err := s.c.GetObjectRetention(ctx, s.cfg.Archive, key, versionID)
	if err == nil && m != nil && until != nil {
		return Retention{Mode: string(*m), Until: until.UTC()}, nil
	}
	st, herr := s.c.StatObject(ctx, s.cfg.Archive, key, minio.StatObjectOptions{VersionID: versionID})
	if herr != nil {
		return Retention{}, Classify(herr)
	}
	r := Retention{Mode: st.Metadata.Get("X-Amz-Object-Lock-Mode")}
	if v := st.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"); v != "" {
		t, perr := time.Parse(time.RFC3339, v)
		if perr != nil {
			return r, fmt.Errorf("date de rétention %q illisible: %w", v, perr)
		}
		r.Until = t.UTC()
	}
	if r.Mode == "" {
		return r, fmt.Errorf("aucune rétention sur %s (version %s)", key, versionID)
	}
	return r, nil
}
