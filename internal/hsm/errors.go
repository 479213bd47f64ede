// Package hsm loads seals whose private key is held in a PKCS#11 token (an
// HSM or a smart card): the key never leaves the token, which makes every
// signature.
//
// A key is named by an RFC 7512 PKCS#11 URI (see URI), e.g.
//
//	pkcs11:token=etatcivil;object=seal-smica;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/etatcivil/pin.txt
//
// One crypto11 context (a pool of sessions, logged in) is kept per module
// and token for the life of the process, shared by all the keys of that
// token and safe for concurrent use; Close closes them.
//
// The PIN is never logged nor put into an error message; Redact hides a
// pin-value in a URI that is to be shown.
//
// The PKCS#11 binding (github.com/miekg/pkcs11, under crypto11) needs cgo:
// built with CGO_ENABLED=0, Load fails with an error wrapping
// errors.ErrUnsupported and the rest of the program still builds.
package hsm

import "errors"

var (
	// ErrUnavailable: the module or the token cannot be opened or used now
	// (library missing, token absent, device error). The caller may wait
	// and retry.
	ErrUnavailable = errors.New("module ou jeton PKCS#11 indisponible")

	// ErrNotFound: the token is open but holds no such key, or the key's
	// certificate is neither on the token nor in cert-path.
	ErrNotFound = errors.New("clé ou certificat introuvable")

	// ErrPIN: the PIN is refused, locked, or cannot be read. Not to be
	// retried as is: each wrong attempt brings the token closer to locking
	// its PIN.
	ErrPIN = errors.New("PIN PKCS#11 refusé ou illisible")

	// ErrInvalidURI: the string is not a usable PKCS#11 URI.
	ErrInvalidURI = errors.New("URI PKCS#11 invalide")
)
