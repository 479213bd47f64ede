package seal

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"

	"software.sslmate.com/src/go-pkcs12"
)

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func chainPEM(k *Key) []byte {
	var out []byte
	for _, c := range k.Chain {
		out = append(out, pemBlock("CERTIFICATE", c.Raw)...)
	}
	return out
}

func pkcs8(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	must(t, err)
	return pemBlock("PRIVATE KEY", der)
}

func TestLoadPEM(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	rsaKey := p.rsa.Signer.(*rsa.PrivateKey)
	ecKey := p.ecdsa.Signer.(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	must(t, err)

	cases := []struct {
		name      string
		cert, key []byte
		want      *Key
	}{
		{"RSA PKCS#8", chainPEM(p.rsa), pkcs8(t, rsaKey), p.rsa},
		{"RSA PKCS#1", chainPEM(p.rsa), pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), p.rsa},
		{"EC PKCS#8", chainPEM(p.ecdsa), pkcs8(t, ecKey), p.ecdsa},
		{"EC SEC 1", chainPEM(p.ecdsa), pemBlock("EC PRIVATE KEY", sec1), p.ecdsa},
		{"EC with parameters block first", chainPEM(p.ecdsa),
			append(pemBlock("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}), pemBlock("EC PRIVATE KEY", sec1)...), p.ecdsa},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := LoadPEM(tc.cert, tc.key)
			if err != nil {
				t.Fatalf("LoadPEM: %v", err)
			}
			if len(k.Chain) != len(tc.want.Chain) || !k.Chain[0].Equal(tc.want.Chain[0]) || !k.Chain[1].Equal(tc.want.Chain[1]) {
				t.Errorf("chain not loaded in order")
			}
			if !k.Signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.want.Signer.Public()) {
				t.Error("wrong key loaded")
			}
			if k.Label != tc.want.Chain[0].Subject.CommonName {
				t.Errorf("Label = %q, want the leaf CN", k.Label)
			}
			// The loaded key seals.
			out := sealBytes(t, scan(20), k)
			if _, err := Verify(out, p.roots); err != nil {
				t.Errorf("Verify with loaded key: %v", err)
			}
		})
	}
}

func TestLoadPEMRefuses(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	rsaKey := p.rsa.Signer.(*rsa.PrivateKey)
	ecKey := p.ecdsa.Signer.(*ecdsa.PrivateKey)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	must(t, err)
	smallCert := issue(t, "petite clé", small.Public(), 50)
	//nolint:staticcheck // the deprecated API is the simplest way to make an encrypted legacy PEM
	encrypted, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", mustSEC1(t, ecKey), []byte("secret"), x509.PEMCipherAES256)
	must(t, err)

	cases := []struct {
		name      string
		cert, key []byte
	}{
		{"RSA key, EC certificate", chainPEM(p.ecdsa), pkcs8(t, rsaKey)},
		{"EC key, RSA certificate", chainPEM(p.rsa), pkcs8(t, ecKey)},
		{"key of the root's certificate", pemBlock("CERTIFICATE", p.root.Raw), pkcs8(t, ecKey)},
		{"no certificate", pkcs8(t, ecKey), pkcs8(t, ecKey)},
		{"no key", chainPEM(p.ecdsa), chainPEM(p.ecdsa)},
		{"garbage certificate", pemBlock("CERTIFICATE", []byte("pas un certificat")), pkcs8(t, ecKey)},
		{"garbage key", chainPEM(p.ecdsa), pemBlock("PRIVATE KEY", []byte("pas une clé"))},
		{"encrypted key", chainPEM(p.ecdsa), pem.EncodeToMemory(encrypted)},
		{"RSA 1024", pemBlock("CERTIFICATE", smallCert.Raw), pkcs8(t, small)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if k, err := LoadPEM(tc.cert, tc.key); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("LoadPEM = %v, %v; want ErrInvalidKey", k, err)
			}
		})
	}
}

func mustSEC1(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	must(t, err)
	return der
}

func TestLoadPKCS12(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	for _, k := range []*Key{p.rsa, p.ecdsa} {
		t.Run(k.Label, func(t *testing.T) {
			p12, err := pkcs12.Modern.Encode(k.Signer, k.Chain[0], k.Chain[1:], "mot de passe")
			must(t, err)
			got, err := LoadPKCS12(p12, "mot de passe")
			if err != nil {
				t.Fatalf("LoadPKCS12: %v", err)
			}
			if len(got.Chain) != 2 || !got.Chain[0].Equal(k.Chain[0]) || !got.Chain[1].Equal(p.root) {
				t.Errorf("chain = %d certificates, leaf %v", len(got.Chain), got.Chain[0].Subject)
			}
			out := sealBytes(t, scan(21), got)
			if _, err := Verify(out, p.roots); err != nil {
				t.Errorf("Verify with PKCS#12 key: %v", err)
			}

			if _, err := LoadPKCS12(p12, "mauvais"); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("wrong password: %v, want ErrInvalidKey", err)
			}
		})
	}
	t.Run("mismatched", func(t *testing.T) {
		p12, err := pkcs12.Modern.Encode(p.ecdsa.Signer, p.rsa.Chain[0], nil, "x")
		must(t, err)
		if _, err := LoadPKCS12(p12, "x"); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("mismatched key and certificate: %v, want ErrInvalidKey", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		if _, err := LoadPKCS12([]byte("pas un p12"), "x"); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("garbage: %v, want ErrInvalidKey", err)
		}
	})
}
