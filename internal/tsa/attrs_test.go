package tsa

import (
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// essAttr encodes a signing-certificate (v2 false, SHA-1 certHash) or
// signing-certificate-v2 (SHA-256, hashAlgorithm omitted) attribute with
// the given certHash and, when issuer is non-nil, issuerSerial.
func essAttr(t *testing.T, v2 bool, certHash, issuer []byte, serial *big.Int) []byte {
	t.Helper()
	oid := oidAttrSigningCert
	if v2 {
		oid = oidAttrSigningCertV2
	}
	a, err := attribute(oid, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString(certHash)
					if issuer != nil {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1(tagDirName, func(b *cryptobyte.Builder) { b.AddBytes(issuer) })
							})
							b.AddASN1BigInt(serial)
						})
					}
				})
			})
		})
	})
	must(t, err)
	return a
}

// TestVerifySignedAttributes signs TSTInfos with hand-made signed
// attributes: only the right content-type, message-digest and
// signing-certificate(-v2) make a valid token.
func TestVerifySignedAttributes(t *testing.T) {
	p := getPKI(t)
	srv := newServer(t)
	digest := digestOf("attrs")
	req, err := marshalRequest(crypto.SHA256, digest, big.NewInt(3), true)
	must(t, err)
	pr, err := parseRequest(req)
	must(t, err)
	// The TSTInfo of a regular token, re-signed below.
	tst := tstInfoOf(t, mustIssue(t, srv, pr))

	attr := func(oid asn1.ObjectIdentifier, f func(*cryptobyte.Builder)) []byte {
		a, err := attribute(oid, f)
		must(t, err)
		return a
	}
	md := sha256.Sum256(tst)
	ctTST := attr(oidAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidTSTInfo) })
	ctData := attr(oidAttrContentType, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1})
	})
	mdOK := attr(oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(md[:]) })
	mdBad := attr(oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(make([]byte, 32)) })
	h256 := sha256.Sum256(srv.Cert.Raw)
	h1 := sha1.Sum(srv.Cert.Raw)
	other := issueTSA(t, p.ecKey, ekuCritical, false, srv.Cert.NotBefore, srv.Cert.NotAfter.Sub(srv.Cert.NotBefore))
	hOther := sha256.Sum256(other.Raw)
	issuer, serial := srv.Cert.RawIssuer, srv.Cert.SerialNumber
	v2OK := essAttr(t, true, h256[:], issuer, serial)

	for _, tc := range []struct {
		name  string
		attrs [][]byte
		ok    bool
	}{
		{"reference", [][]byte{ctTST, mdOK, v2OK}, true},
		{"v2 without issuerSerial", [][]byte{ctTST, mdOK, essAttr(t, true, h256[:], nil, nil)}, true},
		{"v1", [][]byte{ctTST, mdOK, essAttr(t, false, h1[:], issuer, serial)}, true},
		{"v1 and v2", [][]byte{ctTST, mdOK, essAttr(t, false, h1[:], nil, nil), v2OK}, true},
		{"no signing-certificate", [][]byte{ctTST, mdOK}, false},
		{"v2 of another certificate", [][]byte{ctTST, mdOK, essAttr(t, true, hOther[:], issuer, serial)}, false},
		{"v2 with another serial", [][]byte{ctTST, mdOK, essAttr(t, true, h256[:], issuer, new(big.Int).Add(serial, big.NewInt(1)))}, false},
		{"v2 with another issuer", [][]byte{ctTST, mdOK, essAttr(t, true, h256[:], srv.Cert.RawSubject, serial)}, false},
		{"v1 with a SHA-256 hash", [][]byte{ctTST, mdOK, essAttr(t, false, h256[:], nil, nil)}, false},
		{"v1 right, v2 wrong", [][]byte{ctTST, mdOK, essAttr(t, false, h1[:], nil, nil), essAttr(t, true, hOther[:], nil, nil)}, false},
		{"content-type id-data", [][]byte{ctData, mdOK, v2OK}, false},
		{"no content-type", [][]byte{mdOK, v2OK}, false},
		{"wrong message-digest", [][]byte{ctTST, mdBad, v2OK}, false},
		{"no message-digest", [][]byte{ctTST, v2OK}, false},
		{"duplicate attribute", [][]byte{ctTST, mdOK, v2OK, v2OK}, false},
	} {
		set, err := attributeSet(tc.attrs...)
		must(t, err)
		token, err := srv.signToken(tst, set, true)
		must(t, err)
		_, err = Verify(token, digest, crypto.SHA256, p.roots)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", tc.name, err)
		}
	}
}

func mustIssue(t *testing.T, s *Server, req *timeStampReq) []byte {
	t.Helper()
	token, err := s.issue(req)
	must(t, err)
	return token
}
