//go:build !cgo

package hsm

import (
	"errors"
	"testing"
)

func TestLoadWithoutCgo(t *testing.T) {
	_, err := Load("pkcs11:token=t;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234")
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Load without cgo: %v, want errors.ErrUnsupported", err)
	}
	if _, err := Load("not-a-uri"); !errors.Is(err, ErrInvalidURI) {
		t.Fatalf("Load(not-a-uri): %v, want ErrInvalidURI", err)
	}
}
