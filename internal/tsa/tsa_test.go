package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"math/big"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	p := getPKI(t)
	srv := newServer(t)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := &Client{URL: ts.URL, Timeout: 10 * time.Second}

	digest := digestOf("signature value of a seal")
	before := time.Now().Add(-time.Second)
	token, err := c.Timestamp(context.Background(), digest, crypto.SHA256)
	if err != nil {
		t.Fatalf("Timestamp: %v", err)
	}
	after := time.Now().Add(time.Second)

	info, err := Verify(token, digest, crypto.SHA256, p.roots)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if info.Time.Before(before) || info.Time.After(after) {
		t.Errorf("genTime %v not between %v and %v", info.Time, before, after)
	}
	if info.Time.Location() != time.UTC {
		t.Errorf("genTime location %v, want UTC", info.Time.Location())
	}
	if !info.Signer.Equal(srv.Cert) {
		t.Errorf("Signer is not the server certificate")
	}
	if !info.Policy.Equal(DevPolicy) {
		t.Errorf("Policy %v, want %v", info.Policy, DevPolicy)
	}
	if info.Serial == nil || info.Serial.Sign() <= 0 {
		t.Errorf("Serial %v", info.Serial)
	}
	if info.Nonce == nil {
		t.Errorf("no nonce")
	}
	if info.Accuracy != time.Second {
		t.Errorf("Accuracy %v, want 1s", info.Accuracy)
	}
	if info.Hash != crypto.SHA256 || !bytes.Equal(info.Digest, digest) {
		t.Errorf("imprint %v %x", info.Hash, info.Digest)
	}

	// Without roots: everything but the chain is still checked.
	if _, err := Verify(token, digest, crypto.SHA256, nil); err != nil {
		t.Errorf("Verify without roots: %v", err)
	}
	// Without a digest: the imprint is reported, not checked.
	if info, err := Verify(token, nil, 0, p.roots); err != nil || !bytes.Equal(info.Digest, digest) {
		t.Errorf("Verify without digest: %v, %x", err, info.Digest)
	}

	// Another digest fails.
	if _, err := Verify(token, digestOf("another signature"), crypto.SHA256, p.roots); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify with another digest: %v, want ErrInvalidToken", err)
	}
	// The same bytes announced under another hash fail.
	if _, err := Verify(token, digest, crypto.SHA512, p.roots); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify with another hash: %v, want ErrInvalidToken", err)
	}

	// Two tokens get different serial numbers.
	token2, err := c.Timestamp(context.Background(), digest, crypto.SHA256)
	must(t, err)
	info2, err := Verify(token2, digest, crypto.SHA256, p.roots)
	must(t, err)
	if info2.Serial.Cmp(info.Serial) == 0 {
		t.Errorf("two tokens with serial %v", info.Serial)
	}
	if info2.Nonce.Cmp(info.Nonce) == 0 {
		t.Errorf("two requests with nonce %v", info.Nonce)
	}
}

func TestRoundTripHashes(t *testing.T) {
	p := getPKI(t)
	ts := httptest.NewServer(newServer(t))
	defer ts.Close()
	c := &Client{URL: ts.URL}
	d384 := sha512.Sum384([]byte("x"))
	d512 := sha512.Sum512([]byte("x"))
	for _, tc := range []struct {
		hash   crypto.Hash
		digest []byte
	}{{crypto.SHA384, d384[:]}, {crypto.SHA512, d512[:]}} {
		token, err := c.Timestamp(context.Background(), tc.digest, tc.hash)
		if err != nil {
			t.Fatalf("%v: %v", tc.hash, err)
		}
		info, err := Verify(token, tc.digest, tc.hash, p.roots)
		if err != nil {
			t.Fatalf("%v: Verify: %v", tc.hash, err)
		}
		if info.Hash != tc.hash {
			t.Errorf("hash %v, want %v", info.Hash, tc.hash)
		}
	}
	// Digest of the wrong size, unsupported hash.
	if _, err := c.Timestamp(context.Background(), d384[:], crypto.SHA256); err == nil {
		t.Error("SHA-384 digest announced as SHA-256 accepted")
	}
	if _, err := c.Timestamp(context.Background(), make([]byte, 20), crypto.SHA1); err == nil {
		t.Error("SHA-1 accepted")
	}
}

func TestRSAServerAndIntermediate(t *testing.T) {
	p := getPKI(t)
	cert := issueTSA(t, p.rsaKey, ekuCritical, true, time.Now().Add(-time.Hour), 24*time.Hour)
	fixed := time.Now().UTC().Truncate(time.Second) // whole seconds: no fraction
	srv := &Server{
		Signer: p.rsaKey,
		Cert:   cert,
		Chain:  []*x509.Certificate{p.inter},
		Now:    func() time.Time { return fixed },
		Serial: func() *big.Int { return big.NewInt(7) },
	}
	digest := digestOf("rsa")
	token := issueToken(t, srv, digest)
	if !bytes.Contains(token, []byte(fixed.Format("20060102150405")+"Z")) {
		t.Errorf("genTime of a whole second not written without fraction")
	}
	info, err := Verify(token, digest, crypto.SHA256, p.roots)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !info.Time.Equal(fixed) || info.Serial.Int64() != 7 {
		t.Errorf("time %v serial %v, want %v 7", info.Time, info.Serial, fixed)
	}
	// Without the intermediate in the token, the chain cannot be built.
	srv.Chain = nil
	token = issueToken(t, srv, digest)
	if _, err := Verify(token, digest, crypto.SHA256, p.roots); !errors.Is(err, ErrUntrusted) {
		t.Errorf("Verify without intermediate: %v, want ErrUntrusted", err)
	}
}

func TestGenTimeFraction(t *testing.T) {
	srv := newServer(t)
	at := time.Now().UTC().Truncate(time.Millisecond)
	if at.Nanosecond() == 0 || at.Nanosecond()%(10*int(time.Millisecond)) == 0 {
		at = at.Truncate(time.Second).Add(123 * time.Millisecond)
	}
	srv.Now = func() time.Time { return at.Add(400 * time.Microsecond) }
	token := issueToken(t, srv, digestOf("frac"))
	if !bytes.Contains(token, []byte(formatGeneralizedTime(at))) || !strings.Contains(formatGeneralizedTime(at), ".") {
		t.Fatalf("genTime %s not in the token", formatGeneralizedTime(at))
	}
	info, err := Verify(token, digestOf("frac"), crypto.SHA256, getPKI(t).roots)
	must(t, err)
	if !info.Time.Equal(at) {
		t.Errorf("time %v, want %v", info.Time, at)
	}
}

func TestVerifyAlteredToken(t *testing.T) {
	p := getPKI(t)
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	srv := newServer(t)
	srv.Now = func() time.Time { return at }
	digest := digestOf("altered")
	token := issueToken(t, srv, digest)
	if _, err := Verify(token, digest, crypto.SHA256, p.roots); err != nil {
		t.Fatalf("Verify of the intact token: %v", err)
	}

	alter := func(name string, find []byte, delta int) {
		t.Helper()
		i := bytes.Index(token, find)
		if i < 0 {
			t.Fatalf("%s: not found in the token", name)
		}
		bad := bytes.Clone(token)
		bad[i+len(find)+delta] ^= 0x01
		if _, err := Verify(bad, digest, crypto.SHA256, p.roots); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s altered: %v, want ErrInvalidToken", name, err)
		}
	}
	// The genTime in the TSTInfo: the message-digest no longer matches.
	alter("genTime", []byte(at.Format("20060102150405")), -2)
	// The imprint inside the TSTInfo.
	alter("imprint", digest, -1)
	// The message-digest attribute: the signature no longer matches.
	tst := tstInfoOf(t, token)
	md := sha256.Sum256(tst)
	alter("message-digest", md[:], -1)
	// The last byte of the signature value.
	bad := bytes.Clone(token)
	bad[len(bad)-1] ^= 0x01
	if _, err := Verify(bad, digest, crypto.SHA256, p.roots); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("signature altered: %v, want ErrInvalidToken", err)
	}
	// Truncated, padded, garbage.
	for name, b := range map[string][]byte{
		"truncated": token[:len(token)-10],
		"padded":    append(bytes.Clone(token), 0),
		"garbage":   []byte("not a token"),
		"empty":     nil,
	} {
		if _, err := Verify(b, digest, crypto.SHA256, p.roots); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
}

// tstInfoOf returns the DER TSTInfo inside token.
func tstInfoOf(t *testing.T, token []byte) []byte {
	t.Helper()
	tp, err := parseToken(token)
	must(t, err)
	// Re-find the eContent: the TSTInfo starts with its SEQUENCE and version 1.
	var serial = tp.info.Serial.Bytes()
	for i := 0; i+2 < len(token); i++ {
		if token[i] != 0x30 {
			continue
		}
		if info, err := parseTSTInfo(derElement(token[i:])); err == nil && bytes.Equal(info.Serial.Bytes(), serial) {
			return derElement(token[i:])
		}
	}
	t.Fatal("TSTInfo not found")
	return nil
}

// derElement returns the DER element at the start of b (short or long
// form length), or nil.
func derElement(b []byte) []byte {
	if len(b) < 2 {
		return nil
	}
	n, hdr := int(b[1]), 2
	if b[1]&0x80 != 0 {
		k := int(b[1] & 0x7f)
		if k == 0 || k > 3 || len(b) < 2+k {
			return nil
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		hdr += k
	}
	if hdr+n > len(b) {
		return nil
	}
	return b[:hdr+n]
}

func TestVerifySignerCertificate(t *testing.T) {
	p := getPKI(t)
	now := time.Now()
	digest := digestOf("eku")
	for _, tc := range []struct {
		name string
		mode ekuMode
	}{
		{"no EKU", ekuNone},
		{"non-critical EKU", ekuNonCritical},
		{"EKU beyond timeStamping", ekuExtra},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{Signer: p.ecKey, Cert: issueTSA(t, p.ecKey, tc.mode, false, now.Add(-time.Hour), 24*time.Hour)}
			token := issueToken(t, srv, digest)
			if _, err := Verify(token, digest, crypto.SHA256, p.roots); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify: %v, want ErrInvalidToken", err)
			}
			if _, err := Verify(token, digest, crypto.SHA256, nil); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify without roots: %v, want ErrInvalidToken", err)
			}
			// The client refuses such a token as well.
			ts := httptest.NewServer(srv)
			defer ts.Close()
			_, err := (&Client{URL: ts.URL}).Timestamp(context.Background(), digest, crypto.SHA256)
			if !errors.Is(err, ErrBadResponse) || errors.Is(err, ErrUnavailable) {
				t.Errorf("Timestamp: %v, want ErrBadResponse", err)
			}
		})
	}

	t.Run("genTime after expiry", func(t *testing.T) {
		cert := issueTSA(t, p.ecKey, ekuCritical, false, now.Add(-time.Hour), 2*time.Hour)
		srv := &Server{Signer: p.ecKey, Cert: cert, Now: func() time.Time { return cert.NotAfter.Add(time.Minute) }}
		token := issueToken(t, srv, digest)
		if _, err := Verify(token, digest, crypto.SHA256, nil); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Verify: %v, want ErrInvalidToken", err)
		}
	})

	t.Run("untrusted root", func(t *testing.T) {
		token := issueToken(t, newServer(t), digest)
		other := x509.NewCertPool()
		if _, err := Verify(token, digest, crypto.SHA256, other); !errors.Is(err, ErrUntrusted) {
			t.Errorf("Verify: %v, want ErrUntrusted", err)
		}
	})

	t.Run("no certificate in the token", func(t *testing.T) {
		req, err := marshalRequest(crypto.SHA256, digest, nil, false)
		must(t, err)
		st, token := serveRequest(t, newServer(t), req)
		if st.status != statusGranted {
			t.Fatalf("status %s", st)
		}
		if _, err := Verify(token, digest, crypto.SHA256, nil); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Verify: %v, want ErrInvalidToken", err)
		}
	})

	t.Run("signer key does not match the certificate", func(t *testing.T) {
		srv := &Server{Signer: p.rsaKey, Cert: issueTSA(t, p.ecKey, ekuCritical, false, now.Add(-time.Hour), 24*time.Hour)}
		req, err := marshalRequest(crypto.SHA256, digest, nil, true)
		must(t, err)
		st, token := serveRequest(t, srv, req)
		if st.status != statusRejection || token != nil || st.fail.At(failSystemFailure) != 1 {
			t.Errorf("status %s, token %d bytes; want rejection systemFailure", st, len(token))
		}
	})
}
