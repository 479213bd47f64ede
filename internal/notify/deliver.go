package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/etatcivil/etatcivil/internal/store"
)

// Webhook request headers.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA-256, keyed with
	// the webhook's secret, of the timestamp, ".", and the body.
	HeaderSignature = "Etatcivil-Signature"
	// HeaderTimestamp is the attempt's time, in Unix seconds.
	HeaderTimestamp = "Etatcivil-Timestamp"
	// HeaderDelivery is the delivery's id, the same at every attempt: a
	// receiver drops a delivery it has already taken.
	HeaderDelivery = "Etatcivil-Delivery"
)

// Sign returns the Etatcivil-Signature value of body sent at timestamp
// (Unix seconds, as in Etatcivil-Timestamp) with secret.
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a received webhook: signature (Etatcivil-Signature) over
// timestamp and body with secret, in constant time, and the timestamp
// within tolerance of now (0: not checked).
func Verify(secret, signature, timestamp string, body []byte, now time.Time, tolerance time.Duration) error {
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, timestamp, body))) {
		return errors.New("signature invalide")
	}
	if tolerance > 0 {
		sec, err := strconv.ParseInt(timestamp, 10, 64)
		if err != nil {
			return errors.New("horodatage invalide")
		}
		if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
			return errors.New("horodatage hors de la tolérance")
		}
	}
	return nil
}

// DeliverArgs asks for one delivery (webhook or e-mail) to be sent.
type DeliverArgs struct {
	DeliveryID string `json:"delivery_id"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return "notify_deliver" }

// InsertOpts: the delivery counts its own attempts against MaxAttempts;
// River's budget is only a backstop, above any sensible MaxAttempts.
func (DeliverArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 100} }

// DeliverWorker sends a delivery; a failure is retried (River retry,
// with the Notifier's back-off) until the delivery's budget is spent.
type DeliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	n *Notifier
}

// Timeout bounds one attempt.
func (w *DeliverWorker) Timeout(*river.Job[DeliverArgs]) time.Duration { return 2 * time.Minute }

// NextRetry implements river.Worker: exponential back-off.
func (w *DeliverWorker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	return time.Now().Add(w.n.backoff(job.Attempt))
}

// errRetry is an attempt that failed and will be retried.
type errRetry struct{ msg string }

func (e errRetry) Error() string { return e.msg }

// Work implements river.Worker.
func (w *DeliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	n := w.n
	d, err := n.Store.Delivery(ctx, job.Args.DeliveryID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	if d.State != "pending" {
		return nil // delivered, cancelled, or failed meanwhile
	}
	complete := func(tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	}
	var o store.DeliveryOutcome
	switch {
	case d.TargetDisabled:
		o = store.DeliveryOutcome{Cancel: true, Error: "destinataire supprimé"}
	case d.Channel == "webhook":
		o = n.post(ctx, d)
	default:
		err := n.sendMail(ctx, d.Address, d.Subject, string(d.Payload), d.ID)
		o = store.DeliveryOutcome{Delivered: err == nil}
		if err != nil {
			o.Error = err.Error()
		}
	}
	if ctx.Err() != nil {
		return ctx.Err() // stopped: not the receiver's fault, River retries
	}
	state, err := n.Store.RecordDelivery(ctx, d.ID, o, n.maxAttempts(), complete)
	if err != nil {
		return err
	}
	log := n.logger().With("delivery", d.ID, "channel", d.Channel, "attempt", d.Attempts+1)
	switch state {
	case "pending":
		log.Warn("notification non remise, nouvel essai plus tard", "status", o.Status, "err", o.Error)
		return errRetry{fmt.Sprintf("notification %s non remise : %s", d.ID, o.Error)}
	case "failed":
		log.Error("notification abandonnée après épuisement des essais (« etatcivil notifications retry » pour la relancer)",
			"status", o.Status, "err", o.Error)
	case "delivered":
		log.Info("notification remise", "status", o.Status)
	}
	return nil
}

// httpClient is the webhooks' client: the Notifier's, or one with a 30 s
// timeout that does not follow redirects (a POST must reach the URL
// given, and a redirect is the receiver's mistake to see).
func (n *Notifier) httpClient() *http.Client {
	if n.HTTP != nil {
		return n.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// post sends a webhook delivery once. Errors name the URL without its
// query or credentials, and never the secret or the signature.
func (n *Notifier) post(ctx context.Context, d store.Delivery) store.DeliveryOutcome {
	where := redact(d.URL)
	ts := strconv.FormatInt(n.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return store.DeliveryOutcome{Error: fmt.Sprintf("URL du webhook invalide (%s)", where)}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "etatcivil-notify/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(d.Secret, ts, d.Payload))
	req.Header.Set(HeaderDelivery, d.ID)
	resp, err := n.httpClient().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return store.DeliveryOutcome{Error: fmt.Sprintf("POST %s : %v", where, err)}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return store.DeliveryOutcome{Delivered: true, Status: resp.StatusCode}
	}
	msg := fmt.Sprintf("POST %s : statut HTTP %d", where, resp.StatusCode)
	if s := strings.TrimSpace(strings.ToValidUTF8(string(snippet), "?")); s != "" {
		msg += " : " + s
	}
	return store.DeliveryOutcome{Status: resp.StatusCode, Error: msg}
}

// redact keeps a URL's scheme, host and path: its query or user info may
// hold a token.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(URL illisible)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
