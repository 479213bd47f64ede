// Package blob is etatcivil's only door to S3: the staging bucket that
// receives uploads and the archive bucket, write-once under object lock.
// The rest of the code speaks our words; minio-go stays in here.
package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrUnavailable marks a failure of the S3 service itself (network, 5xx,
// timeout): the caller should wait and retry, never reject the act.
var ErrUnavailable = errors.New("stockage S3 indisponible")

// ErrShortBody: the stream ended before, or went past, the announced size.
var ErrShortBody = errors.New("taille reçue différente de la taille annoncée")

// Config names the S3 service and the buckets.
type Config struct {
	Endpoint, Region, AccessKey, SecretKey string
	Secure                                 bool
	Archive, Staging                       string
}

// Store holds a client and the two buckets.
type Store struct {
	c   *minio.Client
	cfg Config
}

// New builds a client. It does not contact the service.
func New(cfg Config) (*Store, error) {
	tr, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, err
	}
	tr.ResponseHeaderTimeout = 30 * time.Second
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.Secure,
		Region:    cfg.Region,
		Transport: tr,
		// Trailing checksums let minio-go send SHA-256 checksums with a
		// streamed body instead of buffering it.
		TrailingHeaders: true,
		// Retries are ours (River jobs with backoff), not hidden in here.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("client S3: %w", err)
	}
	return &Store{c: c, cfg: cfg}, nil
}

// Classify wraps err with ErrUnavailable when it is the service's fault.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var ne net.Error
	resp := minio.ToErrorResponse(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne),
		resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests,
		resp.Code == "SlowDown", resp.Code == "ServiceUnavailable", resp.Code == "InternalError",
		strings.Contains(err.Error(), "connection refused"), strings.Contains(err.Error(), "EOF"):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// hashingReader counts and hashes what passes through it.
type hashingReader struct {
	r io.Reader
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += int64(n)
	h.h.Write(p[:n])
	return n, err
}

// PutStaging streams exactly size bytes of r to the staging bucket under
// key, hashing them on the way. It returns their SHA-256 (hex). A body
// shorter or longer than size is ErrShortBody and nothing is kept.
func (s *Store) PutStaging(ctx context.Context, key string, r io.Reader, size int64) (string, error) {
	src := &eofReader{r: r}
	hr := &hashingReader{r: io.LimitReader(src, size), h: sha256.New()}
	_, err := s.c.PutObject(ctx, s.cfg.Staging, key, hr, size, minio.PutObjectOptions{
		ContentType: "application/pdf",
		// The body streams with a trailing SHA-256 checksum that the
		// server verifies, and an unsigned payload: signing the payload
		// too would need it twice or buffered (and some gateways reject
		// signed chunks with a trailer).
		Checksum:             minio.ChecksumSHA256,
		DisableContentSha256: true,
		// One streamed PUT (S3 takes up to 5 GiB so): multipart would
		// buffer parts of 16 MiB in memory.
		DisableMultipart: true,
	})
	if err != nil {
		// Short only if the source itself ended early; a failure of S3
		// mid-stream is S3's.
		if src.eof && hr.n != size {
			return "", fmt.Errorf("%w (%d octets sur %d)", ErrShortBody, hr.n, size)
		}
		return "", Classify(fmt.Errorf("dépôt %s: %w", key, err))
	}
	if hr.n != size {
		_ = s.c.RemoveObject(ctx, s.cfg.Staging, key, minio.RemoveObjectOptions{})
		return "", fmt.Errorf("%w (%d octets sur %d)", ErrShortBody, hr.n, size)
	}
	// One more byte means the body was longer than announced.
	var one [1]byte
	if n, _ := r.Read(one[:]); n > 0 {
		_ = s.c.RemoveObject(ctx, s.cfg.Staging, key, minio.RemoveObjectOptions{})
		return "", fmt.Errorf("%w (plus de %d octets)", ErrShortBody, size)
	}
	return hex.EncodeToString(hr.h.Sum(nil)), nil
}

// GetStaging opens a staged object for reading, with its size.
func (s *Store) GetStaging(ctx context.Context, key string) (*minio.Object, int64, error) {
	obj, err := s.c.GetObject(ctx, s.cfg.Staging, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, Classify(err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, 0, Classify(fmt.Errorf("lecture %s: %w", key, err))
	}
	return obj, st.Size, nil
}

// RemoveStaging deletes a staged object.
func (s *Store) RemoveStaging(ctx context.Context, key string) error {
	return Classify(s.c.RemoveObject(ctx, s.cfg.Staging, key, minio.RemoveObjectOptions{}))
}

// Ping checks the service answers and both buckets exist.
func (s *Store) Ping(ctx context.Context) error {
	for _, b := range []string{s.cfg.Archive, s.cfg.Staging} {
		ok, err := s.c.BucketExists(ctx, b)
		if err != nil {
			return Classify(err)
		}
		if !ok {
			return fmt.Errorf("seau %q absent", b)
		}
	}
	return nil
}

// EnsureBuckets creates the archive bucket with object lock (and so
// versioning) and the staging bucket without, when they are missing.
func (s *Store) EnsureBuckets(ctx context.Context) error {
	for _, b := range []struct {
		name string
		lock bool
	}{{s.cfg.Archive, true}, {s.cfg.Staging, false}} {
		ok, err := s.c.BucketExists(ctx, b.name)
		if err != nil {
			return Classify(err)
		}
		if ok {
			continue
		}
		if err := s.c.MakeBucket(ctx, b.name, minio.MakeBucketOptions{Region: s.cfg.Region, ObjectLocking: b.lock}); err != nil {
			return fmt.Errorf("création du seau %q: %w", b.name, err)
		}
	}
	return nil
}

// Archived is where an object version lives.
type Archived struct {
	Key       string
	VersionID string
	SHA256    string // hex
}

// ErrIntegrity: the archive holds other bytes than the ledger says.
var ErrIntegrity = errors.New("intégrité rompue")

// PutArchive writes exactly size bytes of r to the archive bucket under
// key, write-once: If-None-Match: * (never a second version), a SHA-256
// checksum the server verifies, COMPLIANCE retention until retainUntil.
// If the key already exists (412: a previous attempt got there before a
// crash), it succeeds only when the existing object's SHA-256 is
// sha256hex, and returns that object's version.
func (s *Store) PutArchive(ctx context.Context, key string, r io.Reader, size int64, sha256hex string, retainUntil time.Time) (Archived, error) {
	return s.putLocked(ctx, key, r, size, sha256hex, retainUntil, "application/pdf")
}

// PutLocked is PutArchive for a small document of the system's own (an
// audit checkpoint, its seal, its leaves), of the given content type.
func (s *Store) PutLocked(ctx context.Context, key string, data []byte, contentType string, retainUntil time.Time) (Archived, error) {
	sum := sha256.Sum256(data)
	return s.putLocked(ctx, key, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(sum[:]), retainUntil, contentType)
}

func (s *Store) putLocked(ctx context.Context, key string, r io.Reader, size int64, sha256hex string, retainUntil time.Time, contentType string) (Archived, error) {
	raw, err := hex.DecodeString(sha256hex)
	if err != nil || len(raw) != sha256.Size {
		return Archived{}, fmt.Errorf("SHA-256 %q invalide", sha256hex)
	}
	opts := minio.PutObjectOptions{
		ContentType: contentType,
		// The expected SHA-256 goes in the request's header: the server
		// refuses a body with other bytes before creating any version, so
		// a corrupted staging copy can never become a locked object.
		UserMetadata:         map[string]string{"X-Amz-Checksum-Sha256": base64.StdEncoding.EncodeToString(raw)},
		DisableContentSha256: true, // see PutStaging
		// One PUT: the whole-object checksum and If-None-Match mean the
		// same on every S3 only for a single-part upload.
		DisableMultipart: true,
		Mode:             minio.Compliance,
		RetainUntilDate:  retainUntil.UTC(),
	}
	opts.SetMatchETagExcept("*") // If-None-Match: *
	info, err := s.c.PutObject(ctx, s.cfg.Archive, key, r, size, opts)
	if resp := minio.ToErrorResponse(err); resp.Code == "BadDigest" || resp.Code == "XAmzContentChecksumMismatch" ||
		strings.Contains(resp.Message, "did not match") {
		return Archived{}, fmt.Errorf("%w: les octets déposés pour %s ne correspondent pas au SHA-256 attendu", ErrIntegrity, key)
	}
	if err == nil {
		got, derr := checksumHex(info.ChecksumSHA256)
		if derr == nil && got != "" && got != sha256hex {
			return Archived{}, fmt.Errorf("%w: %s archivé avec SHA-256 %s, attendu %s", ErrIntegrity, key, got, sha256hex)
		}
		return Archived{Key: key, VersionID: info.VersionID, SHA256: sha256hex}, nil
	}
	if minio.ToErrorResponse(err).StatusCode != http.StatusPreconditionFailed {
		return Archived{}, Classify(fmt.Errorf("archivage %s: %w", key, err))
	}
	st, herr := s.c.StatObject(ctx, s.cfg.Archive, key, minio.StatObjectOptions{Checksum: true})
	if herr != nil {
		return Archived{}, Classify(fmt.Errorf("archivage %s: objet existant illisible: %w", key, herr))
	}
	got, derr := checksumHex(st.ChecksumSHA256)
	if derr != nil || got != sha256hex {
		return Archived{}, fmt.Errorf("%w: %s existe déjà avec un autre contenu (SHA-256 %q)", ErrIntegrity, key, got)
	}
	return Archived{Key: key, VersionID: st.VersionID, SHA256: got}, nil
}

func checksumHex(b64 string) (string, error) {
	if b64 == "" {
		return "", nil
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(raw), nil
}

// ArchiveHead is what a HEAD of one archive version says.
type ArchiveHead struct {
	Size   int64
	SHA256 string // hex, from the stored checksum
}

// HeadArchive reads one version's size and stored SHA-256.
func (s *Store) HeadArchive(ctx context.Context, key, versionID string) (ArchiveHead, error) {
	st, err := s.c.StatObject(ctx, s.cfg.Archive, key, minio.StatObjectOptions{VersionID: versionID, Checksum: true})
	if err != nil {
		if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return ArchiveHead{}, fmt.Errorf("%w: version %s de %s absente", ErrIntegrity, versionID, key)
		}
		return ArchiveHead{}, Classify(err)
	}
	sum, err := checksumHex(st.ChecksumSHA256)
	return ArchiveHead{Size: st.Size, SHA256: sum}, err
}

// GetArchive opens one version of an archive object.
func (s *Store) GetArchive(ctx context.Context, key, versionID string) (io.ReadCloser, error) {
	obj, err := s.c.GetObject(ctx, s.cfg.Archive, key, minio.GetObjectOptions{VersionID: versionID})
	if err != nil {
		return nil, Classify(err)
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%w: version %s de %s absente", ErrIntegrity, versionID, key)
		}
		return nil, Classify(err)
	}
	return obj, nil
}

// Versions lists every version of keys under prefix in the archive bucket
// (for tests and audits: exactly one per archived act version).
func (s *Store) Versions(ctx context.Context, prefix string) (map[string][]string, error) {
	out := map[string][]string{}
	// A version listed twice (some gateways repeat the last entry of a
	// page of 1,000 on the next) is one version.
	seen := map[[2]string]bool{}
	for o := range s.c.ListObjects(ctx, s.cfg.Archive, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			return nil, Classify(o.Err)
		}
		if k := [2]string{o.Key, o.VersionID}; !seen[k] {
			seen[k] = true
			out[o.Key] = append(out[o.Key], o.VersionID)
		}
	}
	return out, nil
}

// ReadArchive reads one version of a small archive object (the latest
// when versionID is empty), at most max bytes: more is an error.
func (s *Store) ReadArchive(ctx context.Context, key, versionID string, max int64) ([]byte, error) {
	rc, err := s.GetArchive(ctx, key, versionID)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, Classify(err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s : plus de %d octets", key, max)
	}
	return b, nil
}

// ReadArchiveRange reads length bytes at offset of the latest version of
// an archive object (one leaf of a checkpoint, say).
func (s *Store) ReadArchiveRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(offset, offset+length-1); err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.cfg.Archive, key, opts)
	if err != nil {
		return nil, Classify(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, length+1))
	if err != nil {
		if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%w: %s absent", ErrIntegrity, key)
		}
		return nil, Classify(err)
	}
	if int64(len(b)) != length {
		return nil, fmt.Errorf("%w: %s : %d octets lus à %d, %d attendus", ErrIntegrity, key, len(b), offset, length)
	}
	return b, nil
}

// RemoveArchiveVersion tries to delete one archive version. Object lock
// must refuse it; tests and `s3 check` rely on that refusal.
func (s *Store) RemoveArchiveVersion(ctx context.Context, key, versionID string) error {
	return s.c.RemoveObject(ctx, s.cfg.Archive, key, minio.RemoveObjectOptions{VersionID: versionID})
}

// ArchiveBucket names the archive bucket.
func (s *Store) ArchiveBucket() string { return s.cfg.Archive }

// eofReader notes whether its source ended (io.EOF) or failed.
type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		e.eof = true
	}
	return n, err
}

// RemoveStagingPrefix deletes every staging object under prefix.
func (s *Store) RemoveStagingPrefix(ctx context.Context, prefix string) error {
	for o := range s.c.ListObjects(ctx, s.cfg.Staging, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return Classify(o.Err)
		}
		if err := s.c.RemoveObject(ctx, s.cfg.Staging, o.Key, minio.RemoveObjectOptions{}); err != nil {
			return Classify(err)
		}
	}
	return nil
}
