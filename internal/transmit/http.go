// Package transmit sends archived acts to the registries. Each connector
// builds and sends messages behind one small interface; delivery
// semantics (idempotency keys, attempts, states, retries) are the
// caller's, the same for every connector.
package transmit

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/etatcivil/etatcivil/internal/registry"
)

// Outcome is what a registry answered to one message.
type Outcome struct {
	Status       int
	Acknowledged bool   // accepted, with its acknowledgement
	AckID        string // the registry's acknowledgement id
	Refused      bool   // refused for good, with Reason
	Reason       string
	// Refusals: the acts of a lot a refusal names, each with its reason
	// (by act id for SEDA replies, by act number for INSEE). The others
	// were refused only because they came in the same message.
	Refusals []Refusal
	// Neither acknowledged nor refused: accepted, acknowledgement to come.
}

// Refusal is one act a registry named when refusing a lot.
type Refusal struct {
	ActID  string
	Number int
	Reason string
}

// ErrTransient marks a failure that may pass: network, timeout, 5xx, 429.
var ErrTransient = errors.New("registre indisponible")

// Message is one act version's message to a per-act registry.
type Message struct {
	ActID        string    `json:"act_id"`
	Version      int       `json:"version"`
	Commune      string    `json:"commune"`
	Year         int       `json:"year"`
	Kind         string    `json:"kind"`
	Number       int       `json:"number"`
	SealedSHA256 string    `json:"sealed_sha256"`
	ObjectKey    string    `json:"object_key"`
	ArchivedAt   time.Time `json:"archived_at"`
}

// HTTP is the generic JSON connector: one POST per act version, with its
// idempotency key, for registries we do not know yet.
type HTTP struct {
	mu      sync.Mutex
	clients map[string]*http.Client
}

// client builds (once per registry) an HTTP client with the registry's
// mutual-TLS certificate and CA, if any.
func (h *HTTP) client(reg registry.Registry) (*http.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.clients[reg.ID]; ok {
		return c, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 30 * time.Second
	if reg.Auth.ClientCert != "" || reg.Auth.CAFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if reg.Auth.ClientCert != "" {
			cert, err := tls.LoadX509KeyPair(reg.Auth.ClientCert, reg.Auth.ClientKey)
			if err != nil {
				return nil, fmt.Errorf("certificat client de %s: %w", reg.ID, err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		if reg.Auth.CAFile != "" {
			pem, err := os.ReadFile(reg.Auth.CAFile)
			if err != nil {
				return nil, fmt.Errorf("autorité de %s: %w", reg.ID, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("autorité de %s: aucun certificat PEM", reg.ID)
			}
			cfg.RootCAs = pool
		}
		tr.TLSClientConfig = cfg
	}
	c := &http.Client{Transport: tr, Timeout: time.Minute}
	if h.clients == nil {
		h.clients = map[string]*http.Client{}
	}
	h.clients[reg.ID] = c
	return c, nil
}

// post sends body to the registry under key and returns the answer's
// status and body (at most max bytes of it). Network failures, timeouts, 5xx, 408 and 429
// are errors wrapping ErrTransient.
func (h *HTTP) post(ctx context.Context, reg registry.Registry, key, contentType string, body io.Reader, max int64) (int, []byte, error) {
	c, err := h.client(reg)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrTransient, err)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", reg.Endpoint, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Idempotency-Key", key)
	if err := h.authorize(req, reg); err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrTransient, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, max))
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
		return resp.StatusCode, data, fmt.Errorf("%w: statut %d", ErrTransient, resp.StatusCode)
	}
	return resp.StatusCode, data, nil
}

// Send posts msg under key. A transient failure is an error wrapping
// ErrTransient; a refusal or an acceptance is an Outcome.
func (h *HTTP) Send(ctx context.Context, reg registry.Registry, key string, msg Message) (Outcome, error) {
	body, err := json.Marshal(msg)
	if err != nil {
		return Outcome{}, err
	}
	status, data, err := h.post(ctx, reg, key, "application/json", bytes.NewReader(body), 1<<20)
	if err != nil {
		return Outcome{Status: status}, err
	}
	return answerOf(status, data), nil
}

// SendLot posts an INSEE lot (its XML, byte-identical at every resend)
// under key. The registry answers as the JSON connector's does; a
// refusal may name bulletins by act number ("refused": [{"numero",
// "reason"}]).
func (h *HTTP) SendLot(ctx context.Context, reg registry.Registry, key string, doc []byte) (Outcome, error) {
	status, data, err := h.post(ctx, reg, key, "application/xml", bytes.NewReader(doc), 1<<20)
	if err != nil {
		return Outcome{Status: status}, err
	}
	return answerOf(status, data), nil
}

// answerOf reads a JSON answer: 202 accepted, acknowledgement to come;
// 2xx with ack_id acknowledged; another 4xx refused, with its reason.
func answerOf(status int, data []byte) Outcome {
	o := Outcome{Status: status}
	var answer struct {
		AckID   string `json:"ack_id"`
		Reason  string `json:"reason"`
		Refused []struct {
			Numero int    `json:"numero"`
			ActID  string `json:"act_id"`
			Reason string `json:"reason"`
		} `json:"refused"`
	}
	_ = json.Unmarshal(data, &answer)
	switch {
	case status == http.StatusAccepted:
		return o // accepted, acknowledgement to come
	case status >= 200 && status < 300 && answer.AckID != "":
		o.Acknowledged, o.AckID = true, answer.AckID
		return o
	case status >= 200 && status < 300:
		return o
	default:
		o.Refused, o.Reason = true, answer.Reason
		if o.Reason == "" {
			o.Reason = fmt.Sprintf("refus du registre (statut %d)", status)
		}
		for _, r := range answer.Refused {
			o.Refusals = append(o.Refusals, Refusal{ActID: r.ActID, Number: r.Numero, Reason: r.Reason})
		}
		return o
	}
}

// authorize adds the registry's bearer token, read from its file at each
// send so a rotated token is used at once.
func (h *HTTP) authorize(req *http.Request, reg registry.Registry) error {
	if reg.Auth.BearerTokenFile == "" {
		return nil
	}
	tok, err := os.ReadFile(reg.Auth.BearerTokenFile)
	if err != nil {
		return fmt.Errorf("%w: jeton de %s: %w", ErrTransient, reg.ID, err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	return nil
}
