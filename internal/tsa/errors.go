package tsa

import "errors"

var (
	// ErrUnavailable wraps the transient failures of Client.Timestamp: the
	// TSA could not be reached, timed out, answered HTTP 5xx, 408 or 429, or
	// answered with the status rejection, waiting or a revocation status.
	// The caller may wait and retry.
	ErrUnavailable = errors.New("tsa: time-stamp authority unavailable")

	// ErrBadResponse wraps the answers of a reachable TSA that cannot be
	// used: not a TimeStampResp, an unexpected HTTP status or content type, a
	// token that does not verify, or a token whose message imprint or nonce
	// is not the request's.
	ErrBadResponse = errors.New("tsa: bad time-stamp response")

	// ErrInvalidToken is returned by Verify when the token is malformed, its
	// signature or signed attributes do not check, its message imprint is
	// not the expected one, or its signer certificate is not a TSA
	// certificate.
	ErrInvalidToken = errors.New("tsa: invalid time-stamp token")

	// ErrUntrusted is returned by Verify when the token is intact but its
	// signer certificate does not chain to the given roots at the time of
	// the time-stamp.
	ErrUntrusted = errors.New("tsa: untrusted time-stamp authority")
)
