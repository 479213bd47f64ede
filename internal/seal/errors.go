package seal

import "errors"

var (
	// ErrInvalidKey is returned when a key or certificate file cannot be
	// used: unreadable, mismatched key and certificate, unsupported algorithm.
	ErrInvalidKey = errors.New("seal: invalid key")

	// ErrInvalidPDF is returned when the input cannot be sealed: not a PDF,
	// structure pdfcpu cannot read, or a feature we refuse (encryption).
	ErrInvalidPDF = errors.New("seal: invalid PDF")

	// ErrNoSignature is returned by Verify when the file has no signature.
	ErrNoSignature = errors.New("seal: no signature")

	// ErrInvalidSignature is returned by Verify when the last signature does
	// not cover the whole file, does not match its bytes, or is malformed.
	ErrInvalidSignature = errors.New("seal: invalid signature")

	// ErrUntrusted is returned by Verify when the signature is intact but the
	// signer's certificate does not chain to the given roots.
	ErrUntrusted = errors.New("seal: untrusted signer")
)
