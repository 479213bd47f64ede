package seal

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"
	"sort"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers used in the CMS (RFC 5652) and ESS (RFC 5035) structures.
var (
	oidData                   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidAttrContentType        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrMessageDigest      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningTime        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidAttrSigningCertV2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}
	oidSHA256                 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384                 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512                 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidRSAEncryption          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidECDSAWithSHA256        = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384        = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512        = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidECPublicKey            = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	asn1NULL                  = []byte{0x05, 0x00}
	tagSignedAttrs            = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagCertificates           = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagExplicit0              = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagDirectoryName          = cbasn1.Tag(4).ContextSpecific().Constructed()
	tagUnsignedAttrs          = cbasn1.Tag(1).ContextSpecific().Constructed()
	oidAttrTimeStampToken     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}
	maxSignatureOverheadBytes = 8 << 10 // attributes, signature value, and room for a later timestamp token
	// timestampReserveBytes is the room kept for a signature timestamp
	// token (B-T): its TSTInfo, signature and the TSA's certificates.
	timestampReserveBytes = 16 << 10
)

// Timestamper obtains an RFC 3161 timestamp token over imprint (the
// SHA-256 of a signature value), for PAdES B-T. An unavailable TSA is an
// error the caller can recognise (the tsa package's ErrUnavailable).
type Timestamper func(ctx context.Context, imprint []byte) (token []byte, err error)

// signatureAlgorithm returns the CMS signatureAlgorithm OID for key, and
// whether its parameters are an explicit NULL (RSA) or absent (ECDSA).
func signatureAlgorithm(pub crypto.PublicKey) (asn1.ObjectIdentifier, bool, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, false, fmt.Errorf("%w: RSA key of %d bits, want at least 2048", ErrInvalidKey, k.N.BitLen())
		}
		// rsaEncryption rather than sha256WithRSAEncryption: what RFC 5754
		// recommends and what every PDF validator accepts.
		return oidRSAEncryption, true, nil
	case *ecdsa.PublicKey:
		return oidECDSAWithSHA256, false, nil
	default:
		return nil, false, fmt.Errorf("%w: unsupported key type %T (want RSA or ECDSA)", ErrInvalidKey, pub)
	}
}

func addAlgorithm(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, null bool) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if null {
			b.AddBytes(asn1NULL)
		}
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

// signedAttributes returns the DER encoding of the signed attributes as a
// SET OF (tag 0x31), the form that is signed; in the SignerInfo the same
// bytes appear with the [0] IMPLICIT tag. The elements are sorted as DER
// requires for a SET OF. No signing-time: the time is the /M entry of the
// signature dictionary, as PAdES wants.
func signedAttributes(digest []byte, leaf *x509.Certificate) ([]byte, error) {
	ct, err := attribute(oidAttrContentType, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidData)
	})
	if err != nil {
		return nil, err
	}
	md, err := attribute(oidAttrMessageDigest, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(digest)
	})
	if err != nil {
		return nil, err
	}
	certHash := sha256.Sum256(leaf.Raw)
	// SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2 }
	// ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256 (omitted),
	//   certHash OCTET STRING, issuerSerial IssuerSerial }
	// IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber }
	scv2, err := attribute(oidAttrSigningCertV2, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString(certHash[:])
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(tagDirectoryName, func(b *cryptobyte.Builder) {
								b.AddBytes(leaf.RawIssuer)
							})
						})
						b.AddASN1BigInt(leaf.SerialNumber)
					})
				})
			})
		})
	})
	if err != nil {
		return nil, err
	}
	attrs := [][]byte{ct, md, scv2}
	sort.Slice(attrs, func(i, j int) bool { return bytes.Compare(attrs[i], attrs[j]) < 0 })
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, a := range attrs {
			b.AddBytes(a)
		}
	})
	return b.Bytes()
}

// buildCMS returns a DER ContentInfo holding a detached SignedData over
// content whose SHA-256 is digest, signed by key; with ts, the signature
// value is timestamped and the token added as the unsigned attribute
// id-aa-signatureTimeStampToken (PAdES B-T).
func buildCMS(ctx context.Context, digest []byte, key *Key, ts Timestamper) ([]byte, error) {
	leaf := key.Chain[0]
	sigAlg, sigNull, err := signatureAlgorithm(key.Signer.Public())
	if err != nil {
		return nil, err
	}
	attrs, err := signedAttributes(digest, leaf)
	if err != nil {
		return nil, fmt.Errorf("seal: encode signed attributes: %w", err)
	}
	h := sha256.Sum256(attrs)
	sig, err := key.Signer.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("seal: sign: %w", err)
	}
	var token []byte
	if ts != nil {
		imprint := sha256.Sum256(sig)
		if token, err = ts(ctx, imprint[:]); err != nil {
			return nil, fmt.Errorf("seal: timestamp: %w", err)
		}
	}

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					addAlgorithm(b, oidSHA256, false)
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // detached: no eContent
					b.AddASN1ObjectIdentifier(oidData)
				})
				b.AddASN1(tagCertificates, func(b *cryptobyte.Builder) {
					for _, c := range key.Chain {
						b.AddBytes(c.Raw)
					}
				})
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerAndSerialNumber
							b.AddBytes(leaf.RawIssuer)
							b.AddASN1BigInt(leaf.SerialNumber)
						})
						addAlgorithm(b, oidSHA256, false)
						// Same bytes as signed, with the [0] IMPLICIT tag.
						b.AddASN1(tagSignedAttrs, func(b *cryptobyte.Builder) {
							var s cryptobyte.String = attrs
							var content cryptobyte.String
							if !s.ReadASN1(&content, cbasn1.SET) {
								b.SetError(fmt.Errorf("seal: re-read signed attributes"))
								return
							}
							b.AddBytes(content)
						})
						addAlgorithm(b, sigAlg, sigNull)
						b.AddASN1OctetString(sig)
						if token != nil {
							b.AddASN1(tagUnsignedAttrs, func(b *cryptobyte.Builder) {
								b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
									b.AddASN1ObjectIdentifier(oidAttrTimeStampToken)
									b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(token) })
								})
							})
						}
					})
				})
			})
		})
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("seal: encode CMS: %w", err)
	}
	return der, nil
}

// signerInfo is what Verify needs from a parsed SignedData.
type signerInfo struct {
	certs         []*x509.Certificate
	signer        *x509.Certificate
	digestAlg     crypto.Hash
	signedAttrs   []byte // re-tagged as SET OF, the signed form
	sigAlg        asn1.ObjectIdentifier
	signature     []byte
	contentType   asn1.ObjectIdentifier
	messageDigest []byte
	certV2Hash    []byte
	signingTime   bool
	// timestampToken is the RFC 3161 token of the unsigned attribute
	// id-aa-signatureTimeStampToken (B-T), nil if none.
	timestampToken []byte
}

func hashFromOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case oid.Equal(oidSHA256):
		return crypto.SHA256, true
	case oid.Equal(oidSHA384):
		return crypto.SHA384, true
	case oid.Equal(oidSHA512):
		return crypto.SHA512, true
	}
	return 0, false
}

// parseCMS parses a DER (or DER-prefixed, zero-padded) ContentInfo with a
// detached SignedData holding exactly one SignerInfo.
func parseCMS(der []byte) (*signerInfo, error) {
	bad := func(what string) error { return fmt.Errorf("%w: CMS: %s", ErrInvalidSignature, what) }
	in := cryptobyte.String(der)
	var ci, sd cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSignedData) {
		return nil, bad("not a SignedData ContentInfo")
	}
	var explicit cryptobyte.String
	if !ci.ReadASN1(&explicit, tagExplicit0) || !explicit.ReadASN1(&sd, cbasn1.SEQUENCE) {
		return nil, bad("missing SignedData")
	}
	var version int64
	var digestAlgs, encap cryptobyte.String
	if !sd.ReadASN1Integer(&version) || !sd.ReadASN1(&digestAlgs, cbasn1.SET) || !sd.ReadASN1(&encap, cbasn1.SEQUENCE) {
		return nil, bad("malformed SignedData")
	}
	var eType asn1.ObjectIdentifier
	if !encap.ReadASN1ObjectIdentifier(&eType) || !eType.Equal(oidData) {
		return nil, bad("encapsulated content type is not id-data")
	}
	if !encap.Empty() {
		return nil, bad("signature is not detached")
	}
	si := &signerInfo{}
	var certsRaw cryptobyte.String
	var hasCerts bool
	if !sd.ReadOptionalASN1(&certsRaw, &hasCerts, tagCertificates) {
		return nil, bad("malformed certificates")
	}
	for !certsRaw.Empty() {
		var c cryptobyte.String
		if !certsRaw.ReadASN1Element(&c, cbasn1.SEQUENCE) {
			return nil, bad("malformed certificate")
		}
		cert, err := x509.ParseCertificate(c)
		if err != nil {
			return nil, fmt.Errorf("%w: CMS certificate: %w", ErrInvalidSignature, err)
		}
		si.certs = append(si.certs, cert)
	}
	// Skip optional crls [1].
	var skip cryptobyte.String
	var hasCRLs bool
	if !sd.ReadOptionalASN1(&skip, &hasCRLs, cbasn1.Tag(1).ContextSpecific().Constructed()) {
		return nil, bad("malformed crls")
	}
	var signerInfos, sinfo cryptobyte.String
	if !sd.ReadASN1(&signerInfos, cbasn1.SET) || !signerInfos.ReadASN1(&sinfo, cbasn1.SEQUENCE) || !signerInfos.Empty() {
		return nil, bad("want exactly one SignerInfo")
	}

	var siVersion int64
	var sid cryptobyte.String
	if !sinfo.ReadASN1Integer(&siVersion) || !sinfo.ReadASN1(&sid, cbasn1.SEQUENCE) {
		return nil, bad("malformed SignerInfo")
	}
	var issuer cryptobyte.String
	serial := new(big.Int)
	if !sid.ReadASN1Element(&issuer, cbasn1.SEQUENCE) || !sid.ReadASN1Integer(serial) {
		return nil, bad("signer identifier is not IssuerAndSerialNumber")
	}
	for _, c := range si.certs {
		if bytes.Equal(c.RawIssuer, issuer) && c.SerialNumber.Cmp(serial) == 0 {
			si.signer = c
			break
		}
	}
	if si.signer == nil {
		return nil, bad("signer certificate not included")
	}

	var digestAlg cryptobyte.String
	var digestOID asn1.ObjectIdentifier
	if !sinfo.ReadASN1(&digestAlg, cbasn1.SEQUENCE) || !digestAlg.ReadASN1ObjectIdentifier(&digestOID) {
		return nil, bad("malformed digest algorithm")
	}
	var ok bool
	if si.digestAlg, ok = hashFromOID(digestOID); !ok {
		return nil, bad("unsupported digest algorithm " + digestOID.String())
	}

	var attrsElem cryptobyte.String
	if !sinfo.ReadASN1Element(&attrsElem, tagSignedAttrs) {
		return nil, bad("no signed attributes")
	}
	si.signedAttrs = append([]byte{0x31}, attrsElem[1:]...)
	if err := si.readAttributes(attrsElem); err != nil {
		return nil, err
	}

	var sigAlg cryptobyte.String
	if !sinfo.ReadASN1(&sigAlg, cbasn1.SEQUENCE) || !sigAlg.ReadASN1ObjectIdentifier(&si.sigAlg) {
		return nil, bad("malformed signature algorithm")
	}
	var sig cryptobyte.String
	if !sinfo.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return nil, bad("malformed signature value")
	}
	si.signature = sig
	if sinfo.PeekASN1Tag(tagUnsignedAttrs) {
		var unsigned cryptobyte.String
		if !sinfo.ReadASN1(&unsigned, tagUnsignedAttrs) {
			return nil, bad("malformed unsigned attributes")
		}
		for !unsigned.Empty() {
			var attr, values cryptobyte.String
			var typ asn1.ObjectIdentifier
			if !unsigned.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&typ) || !attr.ReadASN1(&values, cbasn1.SET) {
				return nil, bad("malformed unsigned attribute")
			}
			if typ.Equal(oidAttrTimeStampToken) {
				var tok cryptobyte.String
				if si.timestampToken != nil || !values.ReadASN1Element(&tok, cbasn1.SEQUENCE) || !values.Empty() {
					return nil, bad("malformed or repeated signature timestamp")
				}
				si.timestampToken = tok
			}
		}
	}
	return si, nil
}

func (si *signerInfo) readAttributes(elem cryptobyte.String) error {
	bad := func(what string) error { return fmt.Errorf("%w: CMS signed attributes: %s", ErrInvalidSignature, what) }
	var set cryptobyte.String
	if !elem.ReadASN1(&set, tagSignedAttrs) {
		return bad("malformed")
	}
	seen := map[string]bool{}
	for !set.Empty() {
		var attr, values cryptobyte.String
		var typ asn1.ObjectIdentifier
		if !set.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&typ) || !attr.ReadASN1(&values, cbasn1.SET) {
			return bad("malformed attribute")
		}
		if seen[typ.String()] {
			return bad("duplicate attribute " + typ.String())
		}
		seen[typ.String()] = true
		switch {
		case typ.Equal(oidAttrContentType):
			if !values.ReadASN1ObjectIdentifier(&si.contentType) || !values.Empty() {
				return bad("content-type")
			}
		case typ.Equal(oidAttrMessageDigest):
			var d cryptobyte.String
			if !values.ReadASN1(&d, cbasn1.OCTET_STRING) || !values.Empty() {
				return bad("message-digest")
			}
			si.messageDigest = d
		case typ.Equal(oidAttrSigningTime):
			si.signingTime = true
		case typ.Equal(oidAttrSigningCertV2):
			// SigningCertificateV2 { SEQUENCE OF ESSCertIDv2 { [hashAlg] certHash ... } ... }
			var scv2, certs, first cryptobyte.String
			if !values.ReadASN1(&scv2, cbasn1.SEQUENCE) || !scv2.ReadASN1(&certs, cbasn1.SEQUENCE) || !certs.ReadASN1(&first, cbasn1.SEQUENCE) {
				return bad("signing-certificate-v2")
			}
			if first.PeekASN1Tag(cbasn1.SEQUENCE) {
				var alg cryptobyte.String
				var oid asn1.ObjectIdentifier
				if !first.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSHA256) {
					return bad("signing-certificate-v2 hash algorithm other than SHA-256")
				}
			}
			var h cryptobyte.String
			if !first.ReadASN1(&h, cbasn1.OCTET_STRING) {
				return bad("signing-certificate-v2 certHash")
			}
			si.certV2Hash = h
		}
	}
	return nil
}

// checkSignature verifies the signature over the signed attributes with the
// signer certificate's public key.
func (si *signerInfo) checkSignature() error {
	var alg x509.SignatureAlgorithm
	switch pub := si.signer.PublicKey.(type) {
	case *rsa.PublicKey:
		if !si.sigAlg.Equal(oidRSAEncryption) && !si.sigAlg.Equal(oidSHA256WithRSA) {
			return fmt.Errorf("%w: signature algorithm %s with an RSA key", ErrInvalidSignature, si.sigAlg)
		}
		switch si.digestAlg {
		case crypto.SHA256:
			alg = x509.SHA256WithRSA
		case crypto.SHA384:
			alg = x509.SHA384WithRSA
		case crypto.SHA512:
			alg = x509.SHA512WithRSA
		}
	case *ecdsa.PublicKey:
		_ = pub
		if !si.sigAlg.Equal(oidECDSAWithSHA256) && !si.sigAlg.Equal(oidECDSAWithSHA384) &&
			!si.sigAlg.Equal(oidECDSAWithSHA512) && !si.sigAlg.Equal(oidECPublicKey) {
			return fmt.Errorf("%w: signature algorithm %s with an ECDSA key", ErrInvalidSignature, si.sigAlg)
		}
		switch si.digestAlg {
		case crypto.SHA256:
			alg = x509.ECDSAWithSHA256
		case crypto.SHA384:
			alg = x509.ECDSAWithSHA384
		case crypto.SHA512:
			alg = x509.ECDSAWithSHA512
		}
	default:
		return fmt.Errorf("%w: unsupported signer key %T", ErrInvalidSignature, si.signer.PublicKey)
	}
	if err := si.signer.CheckSignature(alg, si.signedAttrs, si.signature); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSignature, err)
	}
	return nil
}

// cmsOverhead is the size to reserve for the CMS of key: the certificates
// plus room for attributes and the signature value.
func cmsOverhead(key *Key, timestamped bool) int {
	n := maxSignatureOverheadBytes
	if timestamped {
		n += timestampReserveBytes
	}
	for _, c := range key.Chain {
		n += len(c.Raw) + 8
	}
	return n
}
