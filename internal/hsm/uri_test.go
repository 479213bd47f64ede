package hsm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	u, err := ParseURI("pkcs11:token=Mairie%20de%20Rodez;object=seal%2Dsmica;id=%01%02%ff;type=private;manufacturer=SoftHSM%20project;x-vendor=1" +
		"?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%2634&cert-path=/etc/etatcivil/seal.pem")
	if err != nil {
		t.Fatal(err)
	}
	if u.TokenLabel != "Mairie de Rodez" || u.ObjectLabel != "seal-smica" || !bytes.Equal(u.ID, []byte{1, 2, 0xff}) ||
		u.ModulePath != "/usr/lib/softhsm/libsofthsm2.so" || u.CertPath != "/etc/etatcivil/seal.pem" {
		t.Fatalf("parsed %+v", u)
	}
	if pin, err := u.pin(); err != nil || pin != "12&34" {
		t.Fatalf("pin %q, %v", pin, err)
	}

	u, err = ParseURI("pkcs11:serial=0123abcd;token=x;slot-id=3;object=k?module-name=softhsm2&pin-source=file:///run/pin")
	if err != nil {
		t.Fatal(err)
	}
	if k := tokenKeyOf(u); k.by != "serial" || k.value != "0123abcd" {
		t.Fatalf("token selected by %s %q, want serial", k.by, k.value)
	}
	if filepath.Base(u.ModulePath) != "libsofthsm2.so" {
		t.Fatalf("module-name softhsm2 resolved to %q", u.ModulePath)
	}
	if _, err := os.Stat(u.ModulePath); err != nil {
		t.Fatalf("module-name softhsm2: %v (is softhsm2 installed?)", err)
	}
	if u.pinSource != "file:///run/pin" {
		t.Fatalf("pin-source %q", u.pinSource)
	}
}

func TestPINSource(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pin")
	if err := os.WriteFile(p, []byte("s3cret pin\r\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"file:" + p, "file://" + p, p} {
		u, err := ParseURI("pkcs11:token=t;object=k?module-path=/x.so&pin-source=" + src)
		if err != nil {
			t.Fatal(err)
		}
		if pin, err := u.pin(); err != nil || pin != "s3cret pin" {
			t.Fatalf("%s: pin %q, %v", src, pin, err)
		}
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"file:" + empty, "relative/pin.txt"} {
		u, err := ParseURI("pkcs11:token=t;object=k?module-path=/x.so&pin-source=" + src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.pin(); !errors.Is(err, ErrPIN) {
			t.Fatalf("%s: %v, want ErrPIN", src, err)
		}
	}
}

func TestParseURIErrors(t *testing.T) {
	const secret = "pin-very-secret-987"
	base := "?module-path=/usr/lib/m.so&pin-value=" + secret
	for _, s := range []string{
		"pkcs12:token=t;object=k" + base,
		"token=t;object=k" + base,
		"pkcs11:object=k" + base,                            // no token
		"pkcs11:token=t" + base,                             // no key
		"pkcs11:token=t;object=k;type=cert" + base,          // not a private key
		"pkcs11:token=t;object=k;object=j" + base,           // repeated
		"pkcs11:token=t;object=k;colour=blue" + base,        // unknown path attribute
		"pkcs11:token=t;object=k;id=%zz" + base,             // bad encoding
		"pkcs11:token=t;slot-id=-1;object=k" + base,         // bad slot
		"pkcs11:token=t;object=k",                           // no module, no PIN
		"pkcs11:token=t;object=k?module-path=/usr/lib/m.so", // no PIN
		"pkcs11:token=t;object=k?pin-value=" + secret,       // no module
		"pkcs11:token=t;object=k?module-path=lib.so&pin-value=" + secret,
		"pkcs11:token=t;object=k?module-path=/m.so&module-name=m&pin-value=" + secret,
		"pkcs11:token=t;object=k?module-name=../m&pin-value=" + secret,
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=" + secret + "&pin-source=/p",
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=%zz" + secret,
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=" + secret + "&pin-value=" + secret,
		"pkcs11:token=t;object=k?module-path=/m.so&pin_value=" + secret,
		"pkcs11:token=t;object=k" + base + "#frag",
	} {
		_, err := ParseURI(s)
		if !errors.Is(err, ErrInvalidURI) {
			t.Errorf("ParseURI(%s): %v, want ErrInvalidURI", Redact(s), err)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("ParseURI(%s): the error shows the PIN: %v", Redact(s), err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=1234&cert-path=/c.pem": "pkcs11:token=t;object=k?module-path=/m.so&pin-value=***&cert-path=/c.pem",
		"pkcs11:token=t;object=k?pin-source=file:/p":                                "pkcs11:token=t;object=k?pin-source=file:/p",
		"pkcs11:token=t;pin-value=1234;object=k":                                    "pkcs11:token=t;pin-value=***;object=k",
		"pkcs11:token=t;object=k":                                                   "pkcs11:token=t;object=k",
		"/etc/etatcivil/seal.key":                                                   "/etc/etatcivil/seal.key",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
