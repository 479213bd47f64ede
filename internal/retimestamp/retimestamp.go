// Package retimestamp keeps archived seals verifiable for a century: a
// campaign finds the acts whose newest timestamp was made by a TSA whose
// certificate nears expiry (or with a digest algorithm configured as
// weakening), adds the validation material of every chain the file
// carries and a fresh document timestamp (PAdES B-LTA), and archives the
// result as the act's next version, revision_reason "retimestamp", under
// object lock beside the previous one, which stays retrievable. Nothing is
// sent to the registries for it. Campaigns are paced (a bounded number of
// acts per run) and resumable (each act is done or not, in one
// transaction, and the next run takes what is left).
package retimestamp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/riverqueue/river"

	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/revocation"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// Campaign re-timestamps archived acts.
type Campaign struct {
	Store      *store.Store
	Blob       *blob.Store
	Validation *seal.Validation
	Timestamp  seal.Timestamper
	// Margin: a timestamp whose TSA certificate expires within Margin is
	// renewed (default one year).
	Margin time.Duration
	// Weak are digest algorithms considered weakening: a newest timestamp
	// made with one is renewed whatever its certificate's expiry.
	Weak []crypto.Hash
	// Batch bounds the acts one run looks at (default 200).
	Batch int
	// RetainUntil gives the retention of a new object version.
	RetainUntil func(time.Time) time.Time
	Logger      *slog.Logger
	// Every is the interval between periodic runs (default one day).
	Every time.Duration
}

// Tally counts what a run did.
type Tally struct {
	Examined int `json:"examined"`
	Extended int `json:"extended"`
	NotDue   int `json:"not_due"`
	Failed   int `json:"failed"`
}

// maxObject bounds an archived object read back (scans are at most 50 MB
// when received).
const maxObject = 256 << 20

func (c *Campaign) margin() time.Duration {
	if c.Margin > 0 {
		return c.Margin
	}
	return 365 * 24 * time.Hour
}

// Run looks at up to Batch acts due (never looked at, or whose newest
// timestamp's certificate expires within the margin). An infrastructure
// failure (S3, TSA, revocation services) stops the run with an error:
// nothing is half-done, the next run resumes.
func (c *Campaign) Run(ctx context.Context) (Tally, error) {
	var t Tally
	n := c.Batch
	if n <= 0 {
		n = 200
	}
	due, err := c.Store.RetimestampDue(ctx, n, time.Now().Add(c.margin()))
	if err != nil {
		return t, err
	}
	for _, v := range due {
		t.Examined++
		extended, err := c.one(ctx, v)
		switch {
		case err == nil && extended:
			t.Extended++
		case err == nil:
			t.NotDue++
		case errors.Is(err, blob.ErrUnavailable), errors.Is(err, tsa.ErrUnavailable), errors.Is(err, revocation.ErrUnavailable),
			ctx.Err() != nil:
			return t, err
		default:
			// This act cannot be extended (its object altered, a chain
			// revoked…): named in the log; fixity and act verify say more.
			t.Failed++
			if c.Logger != nil {
				c.Logger.Error("ré-horodatage impossible", "act", v.ActID, "version", v.Version, "err", err)
			}
		}
	}
	return t, nil
}

// one looks at one version: renews it if due, else records its expiry.
func (c *Campaign) one(ctx context.Context, v store.RetimestampTarget) (bool, error) {
	data, err := c.Blob.ReadArchive(ctx, v.Key, v.VersionID, maxObject)
	if err != nil {
		return false, blob.Classify(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != v.SHA256 {
		return false, fmt.Errorf("objet %s : SHA-256 différent du registre", v.Key)
	}
	expires, hash, err := newest(data)
	if err != nil {
		return false, err
	}
	if expires.After(time.Now().Add(c.margin())) && !slices.Contains(c.Weak, hash) {
		return false, c.Store.SetTimestampExpiry(ctx, v.EntryID, expires)
	}
	if c.Validation == nil || c.Timestamp == nil {
		return false, fmt.Errorf("%w: pas d'autorité d'horodatage ou de source de validation", tsa.ErrUnavailable)
	}
	out, err := seal.Extend(ctx, data, c.Validation, c.Timestamp)
	if err != nil {
		return false, err
	}
	newExpiry, _, err := newest(out)
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(out)
	sumHex := hex.EncodeToString(sum[:])
	key := ingest.ObjectKey(store.Work{Commune: v.Commune, Year: v.Year, Kind: v.Kind, Number: v.Number, Version: v.Version + 1}, sumHex)
	until := time.Now().AddDate(120, 0, 0)
	if c.RetainUntil != nil {
		until = c.RetainUntil(time.Now())
	}
	a, err := c.Blob.PutArchive(ctx, key, bytes.NewReader(out), int64(len(out)), sumHex, until)
	if err != nil {
		return false, err
	}
	_, err = c.Store.AddRetimestampedVersion(ctx, v, store.Retimestamped{Key: key, VersionID: a.VersionID, SHA256: sumHex,
		Size: int64(len(out)), RetainUntil: until, ExpiresAt: newExpiry})
	return err == nil, err
}

// newest returns the expiry of the certificate of the TSA that made a
// sealed file's newest timestamp, and its digest algorithm.
func newest(data []byte) (time.Time, crypto.Hash, error) {
	token, err := seal.LastTimestamp(data)
	if err != nil {
		return time.Time{}, 0, err
	}
	if token == nil {
		return time.Time{}, 0, errors.New("cachet sans horodatage")
	}
	info, err := tsa.Verify(token, nil, 0, nil)
	if err != nil {
		return time.Time{}, 0, err
	}
	return info.Signer.NotAfter, info.Hash, nil
}

// Args runs one campaign round.
type Args struct{}

// Kind implements river.JobArgs.
func (Args) Kind() string { return "retimestamp" }

type worker struct {
	river.WorkerDefaults[Args]
	c *Campaign
}

func (w *worker) Timeout(*river.Job[Args]) time.Duration { return time.Hour }

func (w *worker) Work(ctx context.Context, _ *river.Job[Args]) error {
	t, err := w.c.Run(ctx)
	if w.c.Logger != nil && (t.Examined > 0 || err != nil) {
		w.c.Logger.Info("ré-horodatage", "examined", t.Examined, "extended", t.Extended, "not_due", t.NotDue, "failed", t.Failed, "err", err)
	}
	return err
}

// AddWorkers implements ingest.Extension.
func (c *Campaign) AddWorkers(w *river.Workers) { river.AddWorker(w, &worker{c: c}) }

// PeriodicJobs implements ingest.Extension: a round per Every (one day by
// default), on the leader only.
func (c *Campaign) PeriodicJobs() []*river.PeriodicJob {
	every := c.Every
	if every <= 0 {
		every = 24 * time.Hour
	}
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return Args{}, nil }, nil)}
}
