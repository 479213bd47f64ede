// Package client speaks etatcivil's HTTP API for the command-line client.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/etatcivil/etatcivil/internal/store"
)

// Client calls one etatcivil server with one token.
type Client struct {
	Base  string
	Token string
	HTTP  *http.Client
}

// New returns a client for base with token.
func New(base, token string) *Client {
	return &Client{Base: strings.TrimSuffix(base, "/"), Token: token, HTTP: &http.Client{Timeout: 0}}
}

// Error is a problem document returned by the server.
type Error struct {
	Status int             `json:"status"`
	Type   string          `json:"type"`
	Title  string          `json:"title"`
	Detail string          `json:"detail"`
	Errors json.RawMessage `json:"errors,omitempty"`
	Raw    []byte          `json:"-"`
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Detail)
	}
	return fmt.Sprintf("statut HTTP %d", e.Status)
}

// Retryable reports whether the request may succeed later as it is.
func Retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status == 503 || e.Status == 502 || e.Status == 504 || e.Status == 429
	}
	return err != nil && !errors.Is(err, context.Canceled)
}

// Do sends a request and returns the response body (whole, for JSON
// answers) or an *Error for a status >= 400.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, size int64, header http.Header) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return 0, nil, err
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: lecture de la réponse: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		e := &Error{Status: resp.StatusCode, Raw: data}
		_ = json.Unmarshal(data, e)
		e.Status = resp.StatusCode
		return resp.StatusCode, data, e
	}
	return resp.StatusCode, data, nil
}

// CreateBatch posts a manifest. It returns the batch, its raw JSON and
// whether it was created (false: the same manifest was posted before).
func (c *Client) CreateBatch(ctx context.Context, manifest []byte, csv bool, key string) (store.BatchView, bool, error) {
	h := http.Header{"Idempotency-Key": {key}, "Content-Type": {"application/json"}}
	if csv {
		h.Set("Content-Type", "text/csv")
	}
	status, data, err := c.Do(ctx, "POST", "/api/v1/batches", bytes.NewReader(manifest), int64(len(manifest)), h)
	var b store.BatchView
	if err != nil {
		return b, false, err
	}
	return b, status == http.StatusCreated, json.Unmarshal(data, &b)
}

// PutFile sends one file of a batch.
func (c *Client) PutFile(ctx context.Context, batchID, file string, r io.Reader, size int64) error {
	_, _, err := c.Do(ctx, "PUT", "/api/v1/batches/"+batchID+"/files/"+url.PathEscape(file), r, size,
		http.Header{"Content-Type": {"application/pdf"}})
	return err
}

// Submit closes the batch for uploads and starts processing.
func (c *Client) Submit(ctx context.Context, batchID string) (store.BatchView, []byte, error) {
	_, data, err := c.Do(ctx, "POST", "/api/v1/batches/"+batchID+"/submit", nil, 0, nil)
	var b store.BatchView
	if err != nil {
		return b, nil, err
	}
	return b, data, json.Unmarshal(data, &b)
}

// Batch reads a batch.
func (c *Client) Batch(ctx context.Context, batchID string) (store.BatchView, []byte, error) {
	_, data, err := c.Do(ctx, "GET", "/api/v1/batches/"+url.PathEscape(batchID), nil, 0, nil)
	var b store.BatchView
	if err != nil {
		return b, nil, err
	}
	return b, data, json.Unmarshal(data, &b)
}

// Get fetches any API path and returns the raw JSON.
func (c *Client) Get(ctx context.Context, path string, header http.Header) ([]byte, error) {
	_, data, err := c.Do(ctx, "GET", path, nil, 0, header)
	return data, err
}

// Post sends a JSON body and returns the raw JSON answer.
func (c *Client) Post(ctx context.Context, path string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	_, data, err := c.Do(ctx, "POST", path, bytes.NewReader(b), int64(len(b)), http.Header{"Content-Type": {"application/json"}})
	return data, err
}

// WaitBatch polls a batch until no entry is pending or ctx ends.
func (c *Client) WaitBatch(ctx context.Context, batchID string, onPoll func(store.BatchView)) (store.BatchView, []byte, error) {
	delay := 300 * time.Millisecond
	for {
		b, raw, err := c.Batch(ctx, batchID)
		if err == nil {
			if onPoll != nil {
				onPoll(b)
			}
			if b.State != "receiving" && b.Counts.Pending == 0 {
				return b, raw, nil
			}
		} else if !Retryable(err) {
			return b, raw, err
		}
		select {
		case <-ctx.Done():
			return b, raw, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 3*time.Second {
			delay = delay * 3 / 2
		}
	}
}
