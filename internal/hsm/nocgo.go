//go:build !cgo

package hsm

import (
	"errors"
	"fmt"

	"github.com/etatcivil/etatcivil/internal/seal"
)

// Load, without cgo, checks uri and reports PKCS#11 as unsupported: the
// PKCS#11 binding is C code.
func Load(uri string) (*seal.Key, error) {
	if _, err := ParseURI(uri); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w : PKCS#11 : etatcivil a été compilé sans cgo (CGO_ENABLED=0)", errors.ErrUnsupported)
}

// Close does nothing without cgo.
func Close() error { return nil }
