// Package notify tells people what went wrong with their acts: acts
// rejected or stalled, transmissions refused or abandoned by a registry,
// acknowledgements overdue. Webhooks get each event within a minute, as
// signed JSON (HMAC-SHA-256), retried with back-off; e-mail subscribers
// get one digest a day, in French, through the configured SMTP server.
//
// Three River jobs, run beside the pipeline's (Notifier is an
// ingest.Extension):
//   - notify_collect, every minute: turns new audit events into
//     notification events exactly once, and creates one delivery per
//     (webhook, ≤ 100 events) with its job, in one transaction;
//   - notify_digest, every hour: takes the digest of each subscription
//     not yet sent since the last 07:00 (Europe/Paris), one e-mail if
//     there is something to say;
//   - notify_deliver: sends one delivery, webhook or e-mail, retried with
//     exponential back-off up to MaxAttempts, then left "failed" (listed
//     and re-driven by « etatcivil notifications »).
package notify

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/store"
)

// Defaults.
const (
	// DefaultMaxAttempts is how many times a delivery is tried before it
	// is left failed.
	DefaultMaxAttempts = 20
	// BatchSize is the most events one webhook delivery carries.
	BatchSize = 100
	// DigestLimit is the most events one digest lists (it counts them all).
	DigestLimit = 500
	// DigestHour is the hour of the day, in Europe/Paris, from which the
	// day's digest is due.
	DigestHour = 7
	// Retention is how long notification events, and deliveries delivered
	// or cancelled, are kept (failed and pending ones stay).
	Retention = 90 * 24 * time.Hour
)

// ErrMailDisabled is returned by SendMail when no SMTP server is
// configured (ETATCIVIL_SMTP_ADDR empty).
var ErrMailDisabled = errors.New("envoi de courriels désactivé : ETATCIVIL_SMTP_ADDR n'est pas défini")

// Notifier sends the notifications. Store is required; the rest has
// defaults.
type Notifier struct {
	Store  *store.Store
	HTTP   *http.Client // webhooks; default: 30 s timeout, no redirects
	SMTP   SMTPConfig   // e-mail; an empty Addr disables it
	Logger *slog.Logger
	Now    func() time.Time
	// MaxAttempts is the budget of one delivery (DefaultMaxAttempts if 0).
	MaxAttempts int
	// Backoff is the wait before the retry that follows attempt n (1, 2,
	// …); default 30 s doubling each time, at most 6 h.
	Backoff func(attempt int) time.Duration

	disabledOnce sync.Once
}

var _ ingest.Extension = (*Notifier)(nil)

// AddWorkers implements ingest.Extension.
func (n *Notifier) AddWorkers(w *river.Workers) {
	river.AddWorker(w, &CollectWorker{n: n})
	river.AddWorker(w, &DigestWorker{n: n})
	river.AddWorker(w, &DeliverWorker{n: n})
}

// PeriodicJobs implements ingest.Extension: the collector every minute,
// the digest check every hour (each digest is sent once a day).
func (n *Notifier) PeriodicJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(time.Minute),
			func() (river.JobArgs, *river.InsertOpts) { return CollectArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return DigestArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
	}
}

func (n *Notifier) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

func (n *Notifier) logger() *slog.Logger {
	if n.Logger != nil {
		return n.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (n *Notifier) maxAttempts() int { return cmp.Or(n.MaxAttempts, DefaultMaxAttempts) }

func (n *Notifier) backoff(attempt int) time.Duration {
	if n.Backoff != nil {
		return n.Backoff(attempt)
	}
	return DefaultBackoff(attempt)
}

// DefaultBackoff waits 30 s after the first failure, doubling each time
// up to 6 h: 20 attempts span about three days.
func DefaultBackoff(attempt int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < attempt && d < 6*time.Hour; i++ {
		d *= 2
	}
	return min(d, 6*time.Hour)
}

// Retry re-drives failed deliveries (ids): each is sent again, same id and
// payload, with a fresh budget. It returns the ids re-driven; those whose
// webhook or subscription was removed, or that did not fail, are left.
func Retry(ctx context.Context, st *store.Store, actor store.Actor, ids []string) ([]string, error) {
	// An insert-only client: no workers, no queues.
	client, err := river.NewClient(riverpgxv5.New(st.Pool), &river.Config{})
	if err != nil {
		return nil, fmt.Errorf("client River: %w", err)
	}
	return st.RetryDeliveries(ctx, actor, ids, func(tx pgx.Tx, id string) error {
		_, err := client.InsertTx(ctx, tx, DeliverArgs{DeliveryID: id}, nil)
		return err
	})
}

// SMTPConfig is the SMTP server digests (and sign-in links) go through.
type SMTPConfig struct {
	Addr     string // host:port; empty: e-mail disabled
	From     string // the sender, "Nom <adresse>" or an address
	Username string // AUTH PLAIN when set (only over TLS, or to localhost)
	Password string
	StartTLS bool // require STARTTLS before anything else
	// TLS sets STARTTLS up (a private CA, say); nil: the system's roots
	// and the host of Addr.
	TLS *tls.Config
}

// Enabled reports whether e-mail can be sent.
func (c SMTPConfig) Enabled() bool { return c.Addr != "" }

// FromEnv reads the SMTP configuration: ETATCIVIL_SMTP_ADDR,
// ETATCIVIL_SMTP_FROM, ETATCIVIL_SMTP_USERNAME, ETATCIVIL_SMTP_PASSWORD
// (or ETATCIVIL_SMTP_PASSWORD_FILE) and ETATCIVIL_SMTP_STARTTLS. An empty
// address disables e-mail; anything else wrong is an error.
func FromEnv() (SMTPConfig, error) { return fromEnv(os.Getenv) }

func fromEnv(getenv func(string) string) (SMTPConfig, error) {
	var errs []error
	c := SMTPConfig{
		Addr:     strings.TrimSpace(getenv("ETATCIVIL_SMTP_ADDR")),
		From:     strings.TrimSpace(getenv("ETATCIVIL_SMTP_FROM")),
		Username: getenv("ETATCIVIL_SMTP_USERNAME"),
		Password: getenv("ETATCIVIL_SMTP_PASSWORD"),
	}
	if c.Password == "" {
		if f := getenv("ETATCIVIL_SMTP_PASSWORD_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("ETATCIVIL_SMTP_PASSWORD_FILE: %w", err))
			}
			c.Password = strings.TrimSpace(string(b))
		}
	}
	if v := getenv("ETATCIVIL_SMTP_STARTTLS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("ETATCIVIL_SMTP_STARTTLS=%q: true ou false attendu", v))
		}
		c.StartTLS = b
	}
	if c.Addr == "" {
		return c, errors.Join(errs...)
	}
	if host, port, err := net.SplitHostPort(c.Addr); err != nil || host == "" || port == "" {
		errs = append(errs, fmt.Errorf("ETATCIVIL_SMTP_ADDR=%q: hôte:port attendu (ex. smtp.example.fr:587)", c.Addr))
	}
	if c.From == "" {
		errs = append(errs, errors.New("ETATCIVIL_SMTP_FROM est obligatoire quand ETATCIVIL_SMTP_ADDR est défini"))
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("ETATCIVIL_SMTP_FROM=%q: adresse invalide", c.From))
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("ETATCIVIL_SMTP_USERNAME et ETATCIVIL_SMTP_PASSWORD vont ensemble"))
	}
	return c, errors.Join(errs...)
}
