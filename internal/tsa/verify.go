package tsa

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Info is what Verify learns from a valid time-stamp token.
type Info struct {
	// Time is the TSTInfo genTime, in UTC.
	Time time.Time
	// Accuracy is the TSTInfo accuracy, zero when absent.
	Accuracy time.Duration
	// Serial is the TSTInfo serialNumber, unique per TSA.
	Serial *big.Int
	// Policy is the TSA policy the token was issued under (nil for an OID
	// whose arcs do not fit an asn1.ObjectIdentifier).
	Policy asn1.ObjectIdentifier
	// Signer is the TSA certificate that signed the token.
	Signer *x509.Certificate
	// Certs are the certificates the token carries (the signer's among
	// them when the request asked for it).
	Certs []*x509.Certificate
	// Nonce is the TSTInfo nonce, nil when absent.
	Nonce *big.Int
	// Hash and Digest are the time-stamped message imprint.
	Hash   crypto.Hash
	Digest []byte
}

// Verify checks an RFC 3161 time-stamp token (the DER ContentInfo of a
// SignedData whose content is a TSTInfo):
//
//   - when digest is non-nil, the TSTInfo messageImprint is (hash, digest);
//   - the one SignerInfo's signature over its signed attributes, which hold
//     content-type id-ct-TSTInfo, a message-digest of the TSTInfo, and a
//     signing-certificate or signing-certificate-v2 referencing the signer;
//   - the signer certificate, included in the token, has a critical
//     extended key usage holding only timeStamping, a key usage (if any)
//     limited to digitalSignature and nonRepudiation, and is valid at the
//     genTime;
//   - when roots is non-nil, the signer chains to roots at the genTime for
//     timeStamping, with the token's other certificates as intermediates.
//
// Errors wrap ErrInvalidToken, or ErrUntrusted for a chain failure.
func Verify(token []byte, digest []byte, hash crypto.Hash, roots *x509.CertPool) (Info, error) {
	t, err := parseToken(token)
	if err != nil {
		return Info{}, err
	}
	info := t.info
	info.Signer, info.Certs = t.signer, t.certs
	if digest != nil {
		if info.Hash != hash || !bytes.Equal(info.Digest, digest) {
			return Info{}, fmt.Errorf("%w: message imprint is not the expected %v digest", ErrInvalidToken, hash)
		}
	}
	if err := checkTSACert(t.signer, info.Time); err != nil {
		return Info{}, err
	}
	if roots != nil {
		inter := x509.NewCertPool()
		for _, c := range t.certs {
			if c != t.signer {
				inter.AddCert(c)
			}
		}
		_, err := t.signer.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			CurrentTime:   info.Time,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
		})
		if err != nil {
			return Info{}, fmt.Errorf("%w: %w", ErrUntrusted, err)
		}
	}
	return info, nil
}

// checkTSACert applies RFC 3161 §2.3 to the signer certificate.
func checkTSACert(c *x509.Certificate, at time.Time) error {
	bad := func(what string) error { return fmt.Errorf("%w: signer certificate: %s", ErrInvalidToken, what) }
	critical := false
	found := false
	for _, e := range c.Extensions {
		if e.Id.Equal(oidExtKeyUsage) {
			found, critical = true, e.Critical
		}
	}
	if !found {
		return bad("no extended key usage (timeStamping required)")
	}
	if !critical {
		return bad("extended key usage not critical")
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping || len(c.UnknownExtKeyUsage) != 0 {
		return bad("extended key usage is not timeStamping only")
	}
	const allowed = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	if c.KeyUsage != 0 && (c.KeyUsage&^allowed != 0 || c.KeyUsage&allowed == 0) {
		return bad("key usage other than digitalSignature/nonRepudiation")
	}
	if at.Before(c.NotBefore) || at.After(c.NotAfter) {
		return bad(fmt.Sprintf("not valid at the time-stamp time %s", at.Format(time.RFC3339)))
	}
	return nil
}

// parsedToken is a parsed and signature-checked token.
type parsedToken struct {
	certs  []*x509.Certificate
	signer *x509.Certificate
	info   Info
}

// parseToken parses token, checks its SignerInfo signature and signed
// attributes, and parses its TSTInfo. It does not look at the signer
// certificate's usages or chain.
func parseToken(der []byte) (*parsedToken, error) {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrInvalidToken, what) }
	in := cryptobyte.String(der)
	var ci, explicit, sd cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !in.Empty() ||
		!ci.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSignedData) {
		return nil, bad("not a DER SignedData ContentInfo")
	}
	if !ci.ReadASN1(&explicit, tagExplicit0) || !ci.Empty() ||
		!explicit.ReadASN1(&sd, cbasn1.SEQUENCE) || !explicit.Empty() {
		return nil, bad("malformed SignedData")
	}
	var version int64
	var digestAlgs, encap cryptobyte.String
	if !sd.ReadASN1Integer(&version) || !sd.ReadASN1(&digestAlgs, cbasn1.SET) || !sd.ReadASN1(&encap, cbasn1.SEQUENCE) {
		return nil, bad("malformed SignedData")
	}
	if version != 3 && version != 1 {
		return nil, bad(fmt.Sprintf("SignedData version %d", version))
	}
	var eType asn1.ObjectIdentifier
	var eExplicit, eContent cryptobyte.String
	if !encap.ReadASN1ObjectIdentifier(&eType) || !eType.Equal(oidTSTInfo) {
		return nil, bad("encapsulated content is not a TSTInfo")
	}
	if !encap.ReadASN1(&eExplicit, tagExplicit0) || !encap.Empty() ||
		!eExplicit.ReadASN1(&eContent, cbasn1.OCTET_STRING) || !eExplicit.Empty() {
		return nil, bad("missing or malformed eContent")
	}

	t := &parsedToken{}
	var certsRaw, skip cryptobyte.String
	var present bool
	if !sd.ReadOptionalASN1(&certsRaw, &present, tagImplicit0) {
		return nil, bad("malformed certificates")
	}
	for !certsRaw.Empty() {
		var c cryptobyte.String
		var tag cbasn1.Tag
		if !certsRaw.ReadAnyASN1Element(&c, &tag) {
			return nil, bad("malformed certificates")
		}
		if tag != cbasn1.SEQUENCE {
			continue // other certificate formats (attribute certificates...)
		}
		cert, err := x509.ParseCertificate(c)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate: %w", ErrInvalidToken, err)
		}
		t.certs = append(t.certs, cert)
	}
	if !sd.ReadOptionalASN1(&skip, &present, tagImplicit1) {
		return nil, bad("malformed crls")
	}
	var signerInfos, sinfo cryptobyte.String
	if !sd.ReadASN1(&signerInfos, cbasn1.SET) || !sd.Empty() {
		return nil, bad("malformed signerInfos")
	}
	if !signerInfos.ReadASN1(&sinfo, cbasn1.SEQUENCE) || !signerInfos.Empty() {
		return nil, bad("want exactly one SignerInfo")
	}

	si, err := parseSignerInfo(sinfo, t.certs)
	if err != nil {
		return nil, err
	}
	t.signer = si.signer
	if err := si.check(eContent); err != nil {
		return nil, err
	}
	if t.info, err = parseTSTInfo(eContent); err != nil {
		return nil, err
	}
	return t, nil
}

// signerInfo is the part of a SignerInfo that Verify checks.
type signerInfo struct {
	signer      *x509.Certificate
	digestAlg   crypto.Hash
	signedAttrs []byte // re-tagged as SET OF, the signed form
	sigAlg      asn1.ObjectIdentifier
	sigParams   []byte
	signature   []byte

	contentType   asn1.ObjectIdentifier
	messageDigest []byte
	certIDs       []essCertID // from signing-certificate(-v2), first entry of each
}

// essCertID is the first ESSCertID(v2) of a signing-certificate(-v2)
// attribute: the one that must identify the signer.
type essCertID struct {
	hash     crypto.Hash
	certHash []byte
	issuer   []byte // content of a directoryName GeneralName, nil if no issuerSerial
	serial   *big.Int
	v2       bool
}

func parseSignerInfo(sinfo cryptobyte.String, certs []*x509.Certificate) (*signerInfo, error) {
	bad := func(what string) error { return fmt.Errorf("%w: SignerInfo: %s", ErrInvalidToken, what) }
	si := &signerInfo{}
	var version int64
	if !sinfo.ReadASN1Integer(&version) {
		return nil, bad("malformed version")
	}
	switch {
	case sinfo.PeekASN1Tag(cbasn1.SEQUENCE): // IssuerAndSerialNumber
		var sid, issuer cryptobyte.String
		serial := new(big.Int)
		if !sinfo.ReadASN1(&sid, cbasn1.SEQUENCE) || !sid.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!sid.ReadASN1Integer(serial) || !sid.Empty() {
			return nil, bad("malformed IssuerAndSerialNumber")
		}
		for _, c := range certs {
			if bytes.Equal(c.RawIssuer, issuer) && c.SerialNumber.Cmp(serial) == 0 {
				si.signer = c
				break
			}
		}
	case sinfo.PeekASN1Tag(tagPrimitive0): // [0] SubjectKeyIdentifier
		var ski cryptobyte.String
		if !sinfo.ReadASN1(&ski, tagPrimitive0) || len(ski) == 0 {
			return nil, bad("malformed subjectKeyIdentifier")
		}
		for _, c := range certs {
			if len(c.SubjectKeyId) > 0 && bytes.Equal(c.SubjectKeyId, ski) {
				si.signer = c
				break
			}
		}
	default:
		return nil, bad("malformed signer identifier")
	}
	if si.signer == nil {
		return nil, bad("signer certificate not included in the token")
	}

	var err error
	if si.digestAlg, err = readHashAlgorithm(&sinfo, false); err != nil {
		return nil, bad(err.Error())
	}
	var attrsElem cryptobyte.String
	if !sinfo.ReadASN1Element(&attrsElem, tagImplicit0) {
		return nil, bad("no signed attributes")
	}
	signed := append([]byte(nil), attrsElem...)
	signed[0] = 0x31 // [0] IMPLICIT SET OF → SET OF, the signed form
	si.signedAttrs = signed
	if err := si.readAttributes(attrsElem); err != nil {
		return nil, err
	}
	var ok bool
	if si.sigAlg, si.sigParams, ok = readAlgorithm(&sinfo); !ok {
		return nil, bad("malformed signatureAlgorithm")
	}
	var sig cryptobyte.String
	if !sinfo.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return nil, bad("malformed signature")
	}
	si.signature = sig
	var unsigned cryptobyte.String
	var present bool
	if !sinfo.ReadOptionalASN1(&unsigned, &present, tagImplicit1) || !sinfo.Empty() {
		return nil, bad("trailing data")
	}
	return si, nil
}

func (si *signerInfo) readAttributes(elem cryptobyte.String) error {
	bad := func(what string) error { return fmt.Errorf("%w: signed attributes: %s", ErrInvalidToken, what) }
	var set cryptobyte.String
	if !elem.ReadASN1(&set, tagImplicit0) {
		return bad("malformed")
	}
	seen := map[string]bool{}
	for !set.Empty() {
		var attr, values, value cryptobyte.String
		var typ asn1.ObjectIdentifier
		if !set.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&typ) ||
			!attr.ReadASN1(&values, cbasn1.SET) || !attr.Empty() {
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
			if !values.ReadASN1(&value, cbasn1.OCTET_STRING) || !values.Empty() {
				return bad("message-digest")
			}
			si.messageDigest = value
		case typ.Equal(oidAttrSigningCert), typ.Equal(oidAttrSigningCertV2):
			v2 := typ.Equal(oidAttrSigningCertV2)
			if !values.ReadASN1(&value, cbasn1.SEQUENCE) || !values.Empty() {
				return bad("signing-certificate")
			}
			id, err := readSigningCertificate(value, v2)
			if err != nil {
				return bad(err.Error())
			}
			si.certIDs = append(si.certIDs, id)
		}
	}
	return nil
}

// readSigningCertificate reads the content of
//
//	SigningCertificate(V2) ::= SEQUENCE { certs SEQUENCE OF ESSCertID(v2),
//	  policies SEQUENCE OF PolicyInformation OPTIONAL }
//	ESSCertID ::= SEQUENCE { certHash OCTET STRING (SHA-1),
//	  issuerSerial IssuerSerial OPTIONAL }
//	ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256,
//	  certHash OCTET STRING, issuerSerial IssuerSerial OPTIONAL }
//	IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber }
//
// and returns its first ESSCertID, the signer's.
func readSigningCertificate(value cryptobyte.String, v2 bool) (essCertID, error) {
	name := "signing-certificate"
	id := essCertID{hash: crypto.SHA1, v2: v2}
	if v2 {
		name, id.hash = "signing-certificate-v2", crypto.SHA256
	}
	bad := fmt.Errorf("malformed %s", name)
	var certs, first cryptobyte.String
	if !value.ReadASN1(&certs, cbasn1.SEQUENCE) || !certs.ReadASN1(&first, cbasn1.SEQUENCE) {
		return id, bad
	}
	if v2 && first.PeekASN1Tag(cbasn1.SEQUENCE) {
		h, err := readHashAlgorithm(&first, true)
		if err != nil {
			return id, fmt.Errorf("%s: %v", name, err)
		}
		id.hash = h
	}
	var h cryptobyte.String
	if !first.ReadASN1(&h, cbasn1.OCTET_STRING) {
		return id, bad
	}
	id.certHash = h
	if first.Empty() {
		return id, nil
	}
	var is, names cryptobyte.String
	id.serial = new(big.Int)
	if !first.ReadASN1(&is, cbasn1.SEQUENCE) || !first.Empty() ||
		!is.ReadASN1(&names, cbasn1.SEQUENCE) || !is.ReadASN1Integer(id.serial) || !is.Empty() {
		return id, bad
	}
	for !names.Empty() {
		var gn cryptobyte.String
		var tag cbasn1.Tag
		if !names.ReadAnyASN1(&gn, &tag) {
			return id, bad
		}
		if tag == tagDirName {
			var n cryptobyte.String
			if !gn.ReadASN1Element(&n, cbasn1.SEQUENCE) || !gn.Empty() {
				return id, bad
			}
			id.issuer = n
		}
	}
	if id.issuer == nil {
		return id, fmt.Errorf("%s: issuerSerial without a directoryName", name)
	}
	return id, nil
}

// check verifies the signed attributes against the eContent and the
// signer, then the signature.
func (si *signerInfo) check(eContent []byte) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrInvalidToken, what) }
	if si.contentType == nil || !si.contentType.Equal(oidTSTInfo) {
		return bad("content-type attribute missing or not id-ct-TSTInfo")
	}
	if si.messageDigest == nil {
		return bad("no message-digest attribute")
	}
	if !bytes.Equal(si.messageDigest, hashOf(si.digestAlg, eContent)) {
		return bad("message-digest does not match the TSTInfo")
	}
	if len(si.certIDs) == 0 {
		return bad("no signing-certificate or signing-certificate-v2 attribute")
	}
	for _, id := range si.certIDs {
		if !bytes.Equal(id.certHash, hashOf(id.hash, si.signer.Raw)) {
			return bad("signing-certificate does not reference the signer certificate")
		}
		if id.issuer != nil && (!bytes.Equal(id.issuer, si.signer.RawIssuer) || id.serial.Cmp(si.signer.SerialNumber) != 0) {
			return bad("signing-certificate issuerSerial does not match the signer certificate")
		}
	}
	return si.checkSignature()
}

func hashOf(h crypto.Hash, data []byte) []byte {
	w := h.New()
	w.Write(data)
	return w.Sum(nil)
}

// checkSignature verifies the signature over the signed attributes: RSA
// PKCS #1 v1.5 or ECDSA, hashed with the SignerInfo digestAlgorithm.
func (si *signerInfo) checkSignature() error {
	bad := func(what string) error { return fmt.Errorf("%w: signature: %s", ErrInvalidToken, what) }
	digest := hashOf(si.digestAlg, si.signedAttrs)
	sameHash := func(named crypto.Hash) error {
		if named != si.digestAlg {
			return bad(fmt.Sprintf("algorithm %s does not match the digest algorithm %v", si.sigAlg, si.digestAlg))
		}
		return nil
	}
	switch pub := si.signer.PublicKey.(type) {
	case *rsa.PublicKey:
		if si.sigParams != nil && !bytes.Equal(si.sigParams, asn1NULL) {
			return bad("RSA algorithm with parameters")
		}
		var err error
		switch {
		case si.sigAlg.Equal(oidRSAEncryption):
		case si.sigAlg.Equal(oidSHA256WithRSA):
			err = sameHash(crypto.SHA256)
		case si.sigAlg.Equal(oidSHA384WithRSA):
			err = sameHash(crypto.SHA384)
		case si.sigAlg.Equal(oidSHA512WithRSA):
			err = sameHash(crypto.SHA512)
		default:
			return bad(fmt.Sprintf("unsupported algorithm %s with an RSA key", si.sigAlg))
		}
		if err != nil {
			return err
		}
		if err := rsa.VerifyPKCS1v15(pub, si.digestAlg, digest, si.signature); err != nil {
			return bad(err.Error())
		}
	case *ecdsa.PublicKey:
		var err error
		switch {
		case si.sigAlg.Equal(oidECPublicKey):
		case si.sigAlg.Equal(oidECDSAWithSHA256):
			err = sameHash(crypto.SHA256)
		case si.sigAlg.Equal(oidECDSAWithSHA384):
			err = sameHash(crypto.SHA384)
		case si.sigAlg.Equal(oidECDSAWithSHA512):
			err = sameHash(crypto.SHA512)
		default:
			return bad(fmt.Sprintf("unsupported algorithm %s with an ECDSA key", si.sigAlg))
		}
		if err != nil {
			return err
		}
		if !ecdsa.VerifyASN1(pub, digest, si.signature) {
			return bad("ECDSA verification failed")
		}
	default:
		return bad(fmt.Sprintf("unsupported signer key %T", si.signer.PublicKey))
	}
	return nil
}

// parseTSTInfo decodes
//
//	TSTInfo ::= SEQUENCE { version INTEGER { v1(1) }, policy TSAPolicyId,
//	  messageImprint MessageImprint, serialNumber INTEGER,
//	  genTime GeneralizedTime, accuracy Accuracy OPTIONAL,
//	  ordering BOOLEAN DEFAULT FALSE, nonce INTEGER OPTIONAL,
//	  tsa [0] GeneralName OPTIONAL, extensions [1] IMPLICIT OPTIONAL }
func parseTSTInfo(der []byte) (Info, error) {
	bad := func(what string) error { return fmt.Errorf("%w: TSTInfo: %s", ErrInvalidToken, what) }
	var info Info
	in := cryptobyte.String(der)
	var tst cryptobyte.String
	if !in.ReadASN1(&tst, cbasn1.SEQUENCE) || !in.Empty() {
		return info, bad("not DER")
	}
	var version int64
	if !tst.ReadASN1Integer(&version) || version != 1 {
		return info, bad("version is not 1")
	}
	var policy cryptobyte.String
	if !tst.ReadASN1(&policy, cbasn1.OBJECT_IDENTIFIER) {
		return info, bad("malformed policy")
	}
	info.Policy = parsePolicy(policy)
	if info.Policy == nil {
		var o x509.OID
		if err := o.UnmarshalBinary(policy); err != nil {
			return info, bad("malformed policy")
		}
	}
	mi, err := readMessageImprint(&tst)
	if err != nil {
		return info, bad(err.Error())
	}
	info.Hash, info.Digest = mi.hash, mi.digest
	info.Serial = new(big.Int)
	if !tst.ReadASN1Integer(info.Serial) {
		return info, bad("malformed serialNumber")
	}
	var gt cryptobyte.String
	if !tst.ReadASN1(&gt, cbasn1.GeneralizedTime) {
		return info, bad("malformed genTime")
	}
	if info.Time, err = parseGeneralizedTime(string(gt)); err != nil {
		return info, bad(err.Error())
	}
	if tst.PeekASN1Tag(cbasn1.SEQUENCE) {
		var acc cryptobyte.String
		var secs, millis, micros int64
		if !tst.ReadASN1(&acc, cbasn1.SEQUENCE) ||
			!readOptionalInt(&acc, cbasn1.INTEGER, &secs) ||
			!readOptionalInt(&acc, tagPrimitive0, &millis) ||
			!readOptionalInt(&acc, tagPrimitive1, &micros) || !acc.Empty() ||
			secs < 0 || secs > 1<<31 || millis < 0 || millis > 999 || micros < 0 || micros > 999 {
			return info, bad("malformed accuracy")
		}
		info.Accuracy = time.Duration(secs)*time.Second + time.Duration(millis)*time.Millisecond + time.Duration(micros)*time.Microsecond
	}
	if tst.PeekASN1Tag(cbasn1.BOOLEAN) {
		var ordering bool
		if !tst.ReadASN1Boolean(&ordering) {
			return info, bad("malformed ordering")
		}
	}
	if tst.PeekASN1Tag(cbasn1.INTEGER) {
		info.Nonce = new(big.Int)
		if !tst.ReadASN1Integer(info.Nonce) {
			return info, bad("malformed nonce")
		}
	}
	var skip cryptobyte.String
	var present bool
	if !tst.ReadOptionalASN1(&skip, &present, tagExplicit0) {
		return info, bad("malformed tsa name")
	}
	var exts cryptobyte.String
	if !tst.ReadOptionalASN1(&exts, &present, tagImplicit1) || !tst.Empty() {
		return info, bad("trailing data")
	}
	for present && !exts.Empty() {
		var ext cryptobyte.String
		var id asn1.ObjectIdentifier
		var critical bool
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&id) ||
			(ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical)) {
			return info, bad("malformed extension")
		}
		if critical {
			return info, bad("unsupported critical extension " + id.String())
		}
	}
	return info, nil
}

// readOptionalInt reads an optional INTEGER, universal or IMPLICIT-tagged
// with tag, into out (left unchanged when absent).
func readOptionalInt(s *cryptobyte.String, tag cbasn1.Tag, out *int64) bool {
	if !s.PeekASN1Tag(tag) {
		return true
	}
	var content cryptobyte.String
	if !s.ReadASN1(&content, tag) {
		return false
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(content) })
	der, err := b.Bytes()
	if err != nil {
		return false
	}
	in := cryptobyte.String(der)
	return in.ReadASN1Integer(out)
}

// parsePolicy decodes the content of an OBJECT IDENTIFIER, or returns nil
// when an arc does not fit an asn1.ObjectIdentifier.
func parsePolicy(content []byte) asn1.ObjectIdentifier {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(content) })
	der, err := b.Bytes()
	if err != nil {
		return nil
	}
	s := cryptobyte.String(der)
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1ObjectIdentifier(&oid) {
		return nil
	}
	return oid
}
