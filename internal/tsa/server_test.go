package tsa

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

func TestServerHTTP(t *testing.T) {
	srv := newServer(t)
	req, err := marshalRequest(crypto.SHA256, digestOf("x"), big.NewInt(1), true)
	must(t, err)
	do := func(method, ctype string, body []byte) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/", bytes.NewReader(body))
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w
	}
	if w := do(http.MethodGet, "", nil); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
		t.Errorf("GET: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	if w := do(http.MethodPost, "application/octet-stream", req); w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("wrong content type: %d", w.Code)
	}
	if w := do(http.MethodPost, queryMediaType, make([]byte, maxRequestBytes+1)); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: %d", w.Code)
	}
	if w := do(http.MethodPost, queryMediaType+"; charset=binary", req); w.Code != http.StatusOK {
		t.Errorf("content type with a parameter: %d", w.Code)
	}
	srv.Down.Store(true)
	if w := do(http.MethodPost, queryMediaType, req); w.Code != http.StatusServiceUnavailable {
		t.Errorf("Down: %d", w.Code)
	}
	if w := do(http.MethodGet, "", nil); w.Code != http.StatusServiceUnavailable {
		t.Errorf("Down, GET: %d", w.Code)
	}
}

// rawRequest encodes a TimeStampReq field by field for malformed requests.
func rawRequest(version int64, hashOID asn1.ObjectIdentifier, params []byte, digest []byte, extra func(*cryptobyte.Builder)) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(version)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(hashOID)
				b.AddBytes(params)
			})
			b.AddASN1OctetString(digest)
		})
		if extra != nil {
			extra(b)
		}
	})
	return b.BytesOrPanic()
}

func TestServerRejects(t *testing.T) {
	srv := newServer(t)
	d := digestOf("x")
	for _, tc := range []struct {
		name string
		req  []byte
		fail int
	}{
		{"garbage", []byte("GET / HTTP/1.0"), failBadRequest},
		{"empty", nil, failBadRequest},
		{"trailing bytes", append(rawRequest(1, oidSHA256, nil, d, nil), 0), failBadRequest},
		{"version 2", rawRequest(2, oidSHA256, nil, d, nil), failBadRequest},
		{"SHA-1", rawRequest(1, oidSHA1, asn1NULL, d[:20], nil), failBadAlg},
		{"unknown hash", rawRequest(1, asn1.ObjectIdentifier{1, 2, 3}, nil, d, nil), failBadAlg},
		{"hash parameters", rawRequest(1, oidSHA256, []byte{0x02, 0x01, 0x00}, d, nil), failBadAlg},
		{"digest size", rawRequest(1, oidSHA256, nil, d[:31], nil), failBadDataFormat},
		{"other policy", rawRequest(1, oidSHA256, nil, d, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 3, 4, 99})
		}), failUnacceptedPolicy},
		{"extensions", rawRequest(1, oidSHA256, nil, d, func(b *cryptobyte.Builder) {
			b.AddASN1(tagImplicit0, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 3})
					b.AddASN1OctetString(nil)
				})
			})
		}), failUnacceptedExtension},
	} {
		st, token := serveRequest(t, srv, tc.req)
		if st.status != statusRejection || token != nil || st.fail.At(tc.fail) != 1 {
			t.Errorf("%s: %s, token %d bytes; want rejection %s", tc.name, st, len(token), failNames[tc.fail])
		}
	}

	// Accepted forms: explicit NULL or absent hash parameters, the
	// server's own policy, no nonce, no certReq.
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"NULL parameters", rawRequest(1, oidSHA256, asn1NULL, d, nil)},
		{"absent parameters, own policy, nonce, certReq", rawRequest(1, oidSHA256, nil, d, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(DevPolicy)
			b.AddASN1BigInt(big.NewInt(-5))
			b.AddASN1Boolean(true)
		})},
	} {
		st, token := serveRequest(t, srv, tc.req)
		if st.status != statusGranted || token == nil {
			t.Errorf("%s: %s", tc.name, st)
			continue
		}
		info, err := Verify(token, d, crypto.SHA256, nil)
		if tc.name == "NULL parameters" {
			// No certReq: the token holds no certificate to verify with.
			if err == nil || !strings.Contains(err.Error(), "not included") {
				t.Errorf("%s: Verify: %v", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: Verify: %v", tc.name, err)
		} else if info.Nonce.Int64() != -5 {
			t.Errorf("%s: nonce %v, want -5 copied", tc.name, info.Nonce)
		}
	}
}

func TestRequestEncoding(t *testing.T) {
	nonce := new(big.Int).SetUint64(0xfedcba9876543210)
	der, err := marshalRequest(crypto.SHA256, digestOf("x"), nonce, true)
	must(t, err)
	req, err := parseRequest(der)
	must(t, err)
	if req.nonce.Cmp(nonce) != 0 || !req.certReq || req.policy != nil || req.imprint.hash != crypto.SHA256 || !bytes.Equal(req.imprint.digest, digestOf("x")) {
		t.Errorf("round trip: %+v", req)
	}
	// Explicit NULL parameters, as OpenSSL writes them.
	if !bytes.Contains(der, append(append([]byte{0x06, 0x09}, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01), asn1NULL...)) {
		t.Errorf("hash AlgorithmIdentifier without NULL: %x", der)
	}
}

func TestGeneralizedTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"20260314150926Z", time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC), true},
		{"20260314150926.5Z", time.Date(2026, 3, 14, 15, 9, 26, 500e6, time.UTC), true},
		{"20260314150926.123456789Z", time.Date(2026, 3, 14, 15, 9, 26, 123456789, time.UTC), true},
		{"20260314150926.1234567891Z", time.Date(2026, 3, 14, 15, 9, 26, 123456789, time.UTC), true},
		{"20260314150926.120Z", time.Date(2026, 3, 14, 15, 9, 26, 120e6, time.UTC), true},
		{"20260314150926", time.Time{}, false},
		{"20260314150926+0100", time.Time{}, false},
		{"20260314150926.Z", time.Time{}, false},
		{"20260314150926,5Z", time.Time{}, false},
		{"202603141509Z", time.Time{}, false},
		{"20261314150926Z", time.Time{}, false},
		{"2026031415092aZ", time.Time{}, false},
	} {
		got, err := parseGeneralizedTime(tc.in)
		if (err == nil) != tc.ok || (tc.ok && !got.Equal(tc.want)) {
			t.Errorf("%s: %v, %v", tc.in, got, err)
		}
	}
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC), "20260314150926Z"},
		{time.Date(2026, 3, 14, 15, 9, 26, 500e6, time.UTC), "20260314150926.5Z"},
		{time.Date(2026, 3, 14, 15, 9, 26, 123999999, time.UTC), "20260314150926.123Z"},
		{time.Date(2026, 3, 14, 16, 9, 26, 10e6, time.FixedZone("CET", 3600)), "20260314150926.01Z"},
	} {
		if got := formatGeneralizedTime(tc.in); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestFailInfoEncoding(t *testing.T) {
	for _, fail := range []int{failBadAlg, failBadRequest, failBadDataFormat, failUnacceptedPolicy, failSystemFailure} {
		der, err := marshalResponse(statusRejection, "x", fail, nil)
		must(t, err)
		st, token, err := parseResponse(der)
		must(t, err)
		if st.status != statusRejection || token != nil || st.fail.At(fail) != 1 || len(st.text) != 1 {
			t.Errorf("bit %d: %s", fail, st)
		}
		for i := 0; i < st.fail.BitLength; i++ {
			if i != fail && st.fail.At(i) != 0 {
				t.Errorf("bit %d: bit %d set too", fail, i)
			}
		}
		if !strings.Contains(st.String(), failNames[fail]) {
			t.Errorf("bit %d: %s", fail, st)
		}
	}
	// badAlg is the first bit: 03 02 07 80.
	der, err := marshalResponse(statusRejection, "", failBadAlg, nil)
	must(t, err)
	if !bytes.HasSuffix(der, []byte{0x03, 0x02, 0x07, 0x80}) {
		t.Errorf("badAlg encoded %x", der)
	}
}
