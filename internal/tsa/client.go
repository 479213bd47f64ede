package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// Media types of RFC 3161 §3.4.
const (
	queryMediaType = "application/timestamp-query"
	replyMediaType = "application/timestamp-reply"
)

// maxResponseBytes bounds a TimeStampResp: a token with a few certificates
// is a few KiB.
const maxResponseBytes = 1 << 20

// Client obtains RFC 3161 time-stamp tokens over HTTP.
type Client struct {
	// URL of the TSA. A password in its user information is never written
	// to errors.
	URL string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
	// Username and Password, when Username is set, are sent as HTTP basic
	// authentication.
	Username, Password string
	// BearerToken, when set, is sent as "Authorization: Bearer". It cannot
	// be combined with Username.
	BearerToken string
	// Timeout bounds one Timestamp call; zero means only ctx bounds it.
	Timeout time.Duration
}

// Timestamp asks the TSA for a time-stamp token over digest, the hash
// (SHA-256, SHA-384 or SHA-512) of the data to time-stamp, and returns the
// token: the DER ContentInfo of its SignedData, ready to be the value of an
// id-aa-signatureTimeStampToken attribute.
//
// The request carries a random 64-bit nonce and asks for the TSA
// certificate. The token is checked with Verify (without roots: the caller
// decides what to trust) and must time-stamp digest with the request's
// nonce.
//
// Failures to reach the TSA, timeouts, HTTP 408, 429 and 5xx, and the
// statuses rejection, waiting and revocation wrap ErrUnavailable; answers
// that cannot be used wrap ErrBadResponse.
func (c *Client) Timestamp(ctx context.Context, digest []byte, hash crypto.Hash) ([]byte, error) {
	if c.Username != "" && c.BearerToken != "" {
		return nil, errors.New("tsa: both basic authentication and a bearer token are configured")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// url.Parse errors quote the URL, credentials included: not reused.
		return nil, errors.New("tsa: invalid TSA URL (want http:// or https://)")
	}
	where := u.Redacted()

	nonce, err := randomNonce()
	if err != nil {
		return nil, fmt.Errorf("tsa: nonce: %w", err)
	}
	body, err := marshalRequest(hash, digest, nonce, true)
	if err != nil {
		return nil, err
	}

	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, errors.New("tsa: cannot build the HTTP request")
	}
	req.Header.Set("Content-Type", queryMediaType)
	req.Header.Set("Accept", replyMediaType)
	switch {
	case c.Username != "":
		req.SetBasicAuth(c.Username, c.Password)
	case c.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+c.BearerToken)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// net/http strips the URL password from its errors.
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, where, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: reading the response: %w", ErrUnavailable, where, err)
	}

	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return nil, fmt.Errorf("%w: %s: HTTP %s", ErrUnavailable, where, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: %s: HTTP %s", ErrBadResponse, where, resp.Status)
	}
	if len(raw) > maxResponseBytes {
		return nil, fmt.Errorf("%w: %s: response larger than %d bytes", ErrBadResponse, where, maxResponseBytes)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != replyMediaType {
		return nil, fmt.Errorf("%w: %s: content type %q, want %s", ErrBadResponse, where, resp.Header.Get("Content-Type"), replyMediaType)
	}

	status, token, err := parseResponse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadResponse, where, err)
	}
	switch status.status {
	case statusGranted, statusGrantedWithMods:
	case statusRejection, statusWaiting, statusRevocationWarning, statusRevocationNotification:
		return nil, fmt.Errorf("%w: %s: %s", ErrUnavailable, where, status)
	default:
		return nil, fmt.Errorf("%w: %s: unknown %s", ErrBadResponse, where, status)
	}
	if token == nil {
		return nil, fmt.Errorf("%w: %s: status %s without a token", ErrBadResponse, where, status)
	}
	info, err := Verify(token, digest, hash, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadResponse, where, err)
	}
	if info.Nonce == nil || info.Nonce.Cmp(nonce) != 0 {
		return nil, fmt.Errorf("%w: %s: the token's nonce is not the request's", ErrBadResponse, where)
	}
	return token, nil
}

// randomNonce returns a random non-negative 64-bit nonce.
func randomNonce() (*big.Int, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(b[:]), nil
}
