package tsa

import (
	"crypto"
	_ "crypto/sha1" // ESSCertID certHash
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/asn1"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers of RFC 3161, CMS (RFC 5652), ESS (RFC 2634, RFC 5035)
// and the algorithms the package reads or writes.
var (
	oidSignedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidTSTInfo           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4}
	oidAttrContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningCert   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 12}
	oidAttrSigningCertV2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}
	oidExtKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidKPTimeStamping    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}

	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}

	asn1NULL = []byte{0x05, 0x00}

	tagExplicit0  = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagImplicit0  = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagImplicit1  = cbasn1.Tag(1).ContextSpecific().Constructed()
	tagDirName    = cbasn1.Tag(4).ContextSpecific().Constructed()
	tagPrimitive0 = cbasn1.Tag(0).ContextSpecific()
	tagPrimitive1 = cbasn1.Tag(1).ContextSpecific()
)

// writeHashNULL says whether the hash AlgorithmIdentifier of a request's
// messageImprint carries an explicit NULL parameter. RFC 5754 prefers it
// absent but lets readers accept both; OpenSSL, Bouncy Castle and Adobe
// write the NULL, and a few old TSAs reject the absent form.
const writeHashNULL = true

// hashOID returns the AlgorithmIdentifier OID of one of the supported
// digests (SHA-256, SHA-384, SHA-512).
func hashOID(h crypto.Hash) (asn1.ObjectIdentifier, bool) {
	switch h {
	case crypto.SHA256:
		return oidSHA256, true
	case crypto.SHA384:
		return oidSHA384, true
	case crypto.SHA512:
		return oidSHA512, true
	}
	return nil, false
}

// hashFromOID is the inverse of hashOID, plus SHA-1 when sha1 is true
// (accepted only where RFC 2634 fixes it: the ESSCertID certHash).
func hashFromOID(oid asn1.ObjectIdentifier, sha1 bool) (crypto.Hash, bool) {
	switch {
	case oid.Equal(oidSHA256):
		return crypto.SHA256, true
	case oid.Equal(oidSHA384):
		return crypto.SHA384, true
	case oid.Equal(oidSHA512):
		return crypto.SHA512, true
	case sha1 && oid.Equal(oidSHA1):
		return crypto.SHA1, true
	}
	return 0, false
}

func addAlgorithm(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, null bool) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if null {
			b.AddBytes(asn1NULL)
		}
	})
}

// readAlgorithm reads an AlgorithmIdentifier and returns its OID and the
// raw parameters (nil when absent).
func readAlgorithm(s *cryptobyte.String) (asn1.ObjectIdentifier, []byte, bool) {
	var alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, false
	}
	if alg.Empty() {
		return oid, nil, true
	}
	var params cryptobyte.String
	var tag cbasn1.Tag
	if !alg.ReadAnyASN1Element(&params, &tag) || !alg.Empty() {
		return nil, nil, false
	}
	return oid, params, true
}

// readHashAlgorithm reads the AlgorithmIdentifier of a digest, whose
// parameters must be NULL or absent.
func readHashAlgorithm(s *cryptobyte.String, sha1 bool) (crypto.Hash, error) {
	oid, params, ok := readAlgorithm(s)
	if !ok {
		return 0, fmt.Errorf("malformed digest AlgorithmIdentifier")
	}
	if params != nil && string(params) != string(asn1NULL) {
		return 0, fmt.Errorf("digest algorithm %s with parameters", oid)
	}
	h, ok := hashFromOID(oid, sha1)
	if !ok {
		return 0, fmt.Errorf("unsupported digest algorithm %s", oid)
	}
	return h, nil
}

// messageImprint is RFC 3161 MessageImprint.
type messageImprint struct {
	hash   crypto.Hash
	digest []byte
}

// readMessageImprint reads MessageImprint ::= SEQUENCE { hashAlgorithm
// AlgorithmIdentifier, hashedMessage OCTET STRING }; the digest must have
// the size of the hash.
func readMessageImprint(s *cryptobyte.String) (messageImprint, error) {
	var mi cryptobyte.String
	if !s.ReadASN1(&mi, cbasn1.SEQUENCE) {
		return messageImprint{}, fmt.Errorf("malformed MessageImprint")
	}
	h, err := readHashAlgorithm(&mi, false)
	if err != nil {
		return messageImprint{}, err
	}
	var d cryptobyte.String
	if !mi.ReadASN1(&d, cbasn1.OCTET_STRING) || !mi.Empty() {
		return messageImprint{}, fmt.Errorf("malformed MessageImprint hashedMessage")
	}
	if len(d) != h.Size() {
		return messageImprint{}, fmt.Errorf("hashedMessage of %d bytes for %v", len(d), h)
	}
	return messageImprint{hash: h, digest: []byte(d)}, nil
}

// formatGeneralizedTime encodes t in UTC with millisecond precision and no
// trailing zero in the fraction, as DER and RFC 3161 §2.4.2 want.
func formatGeneralizedTime(t time.Time) string {
	t = t.UTC().Truncate(time.Millisecond)
	s := t.Format("20060102150405.000")
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	return s + "Z"
}

// parseGeneralizedTime decodes YYYYMMDDHHMMSS[.f...]Z, the form RFC 3161
// and DER allow (UTC, seconds present, optional fraction). Trailing zeros
// in the fraction, which DER forbids, are tolerated.
func parseGeneralizedTime(s string) (time.Time, error) {
	bad := fmt.Errorf("malformed GeneralizedTime %q", s)
	if len(s) < 15 || s[len(s)-1] != 'Z' {
		return time.Time{}, bad
	}
	for _, c := range s[:14] {
		if c < '0' || c > '9' {
			return time.Time{}, bad
		}
	}
	t, err := time.Parse("20060102150405", s[:14])
	if err != nil {
		return time.Time{}, bad
	}
	frac := s[14 : len(s)-1]
	if frac == "" {
		return t, nil
	}
	if len(frac) < 2 || frac[0] != '.' {
		return time.Time{}, bad
	}
	var ns, scale int64 = 0, 1e9
	for _, c := range frac[1:] {
		if c < '0' || c > '9' {
			return time.Time{}, bad
		}
		if scale > 1 {
			scale /= 10
			ns += int64(c-'0') * scale
		}
	}
	return t.Add(time.Duration(ns)), nil
}

func addGeneralizedTime(b *cryptobyte.Builder, t time.Time) {
	b.AddASN1(cbasn1.GeneralizedTime, func(b *cryptobyte.Builder) {
		b.AddBytes([]byte(formatGeneralizedTime(t)))
	})
}

// attribute encodes one Attribute ::= SEQUENCE { type, SET { value } }.
func attribute(oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.SET, value)
	})
	return b.Bytes()
}
