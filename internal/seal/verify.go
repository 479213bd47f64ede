package seal

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Info describes a verified seal.
type Info struct {
	// Signer is the subject of the signer's certificate.
	Signer string
	// Certificate is the signer's certificate.
	Certificate *x509.Certificate
	// SigningTime is the /M entry of the signature dictionary: the time the
	// signer claims, not evidence (zero if absent or unreadable).
	SigningTime time.Time
	// SubFilter is the signature's /SubFilter, e.g. "ETSI.CAdES.detached".
	SubFilter string
	// Reason and Location are the /Reason and /Location entries, if any.
	Reason, Location string
	// Level is the PAdES level reached: "B-B"; "B-T" with a signature
	// timestamp that verified; "B-LT" with validation material (a
	// revocation answer at least) added after it; "B-LTA" with a document
	// timestamp over the whole file that verified.
	Level string
	// TimestampToken is the RFC 3161 token over the signature value (B-T),
	// nil if none; TimestampTime its time, once verified.
	TimestampToken []byte
	TimestampTime  time.Time

	// Signature is the CMS signature value, which a B-T timestamp covers.
	Signature []byte
	// Covered is how many bytes of the file the seal covers: the whole
	// file at B-B and B-T; the rest are validation material and document
	// timestamps (B-LT, B-LTA).
	Covered int64
	// DSS counts the validation material added after the seal.
	DSS DSSInfo
	// DocTimestamps are the document timestamps after the seal, in order.
	DocTimestamps []DocTimestamp
}

// DSSInfo counts what the document security stores added after a seal
// carry.
type DSSInfo struct {
	Certs int `json:"certs"`
	OCSPs int `json:"ocsps"`
	CRLs  int `json:"crls"`
}

// TimestampVerifier checks an RFC 3161 token over imprint (the SHA-256 of
// the signature value) and returns its time (the tsa package's Verify,
// with the trusted roots).
type TimestampVerifier func(token, imprint []byte) (time.Time, error)

// VerifyTimestamped is Verify, then the signature timestamp, if any, with
// verifyTS: the level is B-T only if the token verifies. A token that does
// not verify is an error wrapping ErrInvalidSignature.
func VerifyTimestamped(sealed []byte, roots *x509.CertPool, verifyTS TimestampVerifier) (Info, error) {
	info, err := Verify(sealed, roots)
	if errors.Is(err, ErrUntrusted) && info.TimestampToken != nil && verifyTS != nil {
		// The signer's certificate may have expired since: a B-T seal is
		// judged at the time its timestamp proves, if the token verifies.
		imprint := sha256.Sum256(info.Signature)
		at, terr := verifyTS(info.TimestampToken, imprint[:])
		if terr != nil {
			return info, fmt.Errorf("%w: signature timestamp: %w", ErrInvalidSignature, terr)
		}
		if info, err = verifyAt(sealed, roots, at); err != nil {
			return info, err
		}
		info.Level, info.TimestampTime = "B-T", at
		return info, longTerm(&info, verifyTS)
	}
	if err != nil || info.TimestampToken == nil {
		return info, err
	}
	if verifyTS == nil {
		return info, fmt.Errorf("%w: signature timestamp present but no way to verify it", ErrInvalidSignature)
	}
	imprint := sha256.Sum256(info.Signature)
	at, err := verifyTS(info.TimestampToken, imprint[:])
	if err != nil {
		return info, fmt.Errorf("%w: signature timestamp: %w", ErrInvalidSignature, err)
	}
	info.Level, info.TimestampTime = "B-T", at
	return info, longTerm(&info, verifyTS)
}

// longTerm raises a B-T seal's level: B-LT when validation material with
// a revocation answer follows it, B-LTA when document timestamps follow
// too, each of which must verify (their times are set).
func longTerm(info *Info, verifyTS TimestampVerifier) error {
	for i, d := range info.DocTimestamps {
		at, err := verifyTS(d.Token, d.Digest)
		if err != nil {
			return fmt.Errorf("%w: document timestamp %d: %w", ErrInvalidSignature, i+1, err)
		}
		info.DocTimestamps[i].Time = at
	}
	if info.DSS.OCSPs+info.DSS.CRLs == 0 {
		return nil
	}
	info.Level = "B-LT"
	if len(info.DocTimestamps) > 0 {
		info.Level = "B-LTA"
	}
	return nil
}

var (
	byteRangeRe = regexp.MustCompile(`/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]`)
	subFilterRe = regexp.MustCompile(`/SubFilter\s*/([^\s/<>\[\]()]+)`)
	// A PDF string: literal (with escapes, without nested parentheses,
	// which Seal never writes) or hexadecimal.
	mDateRe    = regexp.MustCompile(`/M\s*(\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>)`)
	reasonRe   = regexp.MustCompile(`/Reason\s*(\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>)`)
	locationRe = regexp.MustCompile(`/Location\s*(\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>)`)
)

// Verify checks the last signature of a sealed PDF, our own check beside
// pdfsig and pdfcpu: its ByteRange must cover the whole file except the
// Contents hex string, the CMS digest must match those bytes, the CMS
// signature and signed attributes (content-type, message-digest,
// signing-certificate-v2) must hold, and the signer must chain to roots at
// the present time (the file has no timestamp to validate at an earlier
// time).
//
// Errors wrap ErrNoSignature, ErrInvalidSignature or ErrUntrusted.
//
// Verify looks for the signature dictionary textually (the last
// /ByteRange in the file), which suits the files Seal writes and most
// signing tools, but not a signature dictionary inside an object stream.
func Verify(sealed []byte, roots *x509.CertPool) (Info, error) {
	return verifyAt(sealed, roots, time.Time{})
}

// sigEntry is one signature dictionary found in a file: its ByteRange,
// the end of the part it covers, its SubFilter and Contents (DER).
type sigEntry struct {
	at        int // offset of the /ByteRange match
	br        [4]int64
	end       int64
	subFilter string
	dict      []byte // the dictionary's text without Contents
	der       []byte
}

// signatures lists the signature dictionaries (signatures and document
// timestamps) of a file, in file order, each with a ByteRange starting at
// 0 and leaving out exactly its own Contents hex string.
func signatures(sealed []byte) ([]sigEntry, error) {
	var out []sigEntry
	size := int64(len(sealed))
	for _, loc := range byteRangeRe.FindAllSubmatchIndex(sealed, -1) {
		var e sigEntry
		e.at = loc[0]
		for i := range e.br {
			v, err := strconv.ParseInt(string(sealed[loc[2+2*i]:loc[3+2*i]]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: ByteRange: %w", ErrInvalidSignature, err)
			}
			e.br[i] = v
		}
		cStart, cEnd := e.br[1], e.br[2]
		e.end = cEnd + e.br[3]
		if e.br[0] != 0 || cStart <= 0 || cEnd <= cStart+1 || e.br[3] < 0 || e.end > size || int64(loc[0]) > e.end {
			return nil, fmt.Errorf("%w: ByteRange %v does not fit the file of %d bytes", ErrInvalidSignature, e.br, size)
		}
		if sealed[cStart] != '<' || sealed[cEnd-1] != '>' {
			return nil, fmt.Errorf("%w: ByteRange gap is not the Contents hex string", ErrInvalidSignature)
		}
		if !bytes.HasSuffix(bytes.TrimRight(sealed[:cStart], " \t\r\n"), []byte("/Contents")) {
			return nil, fmt.Errorf("%w: ByteRange gap does not follow /Contents", ErrInvalidSignature)
		}
		hexContents := sealed[cStart+1 : cEnd-1]
		padded := make([]byte, hex.DecodedLen(len(hexContents)))
		if _, err := hex.Decode(padded, hexContents); err != nil {
			return nil, fmt.Errorf("%w: Contents: %w", ErrInvalidSignature, err)
		}
		// Contents is zero-padded to its reserved size: keep the one DER
		// element it holds.
		var elem cryptobyte.String
		var tag cbasn1.Tag
		in := cryptobyte.String(padded)
		if !in.ReadAnyASN1Element(&elem, &tag) {
			return nil, fmt.Errorf("%w: Contents is not DER", ErrInvalidSignature)
		}
		e.der = elem
		e.dict = sigDictText(sealed, loc[0], int(cStart), int(cEnd))
		if m := subFilterRe.FindSubmatch(e.dict); m != nil {
			e.subFilter = string(m[1])
		}
		out = append(out, e)
	}
	return out, nil
}

// DocTimestamp is a document timestamp (PAdES B-LTA) found after a seal.
type DocTimestamp struct {
	// Token is the RFC 3161 token; Digest the SHA-256 of the bytes it
	// covers, which its imprint must be.
	Token, Digest []byte
	// Covered is how many bytes of the file it covers.
	Covered int64
	// Time is the token's time, once verified.
	Time time.Time
}

// verifyAt is Verify with the signer's chain checked at time at (now
// when zero).
func verifyAt(sealed []byte, roots *x509.CertPool, at time.Time) (Info, error) {
	sigs, err := signatures(sealed)
	if err != nil {
		return Info{}, err
	}
	idx := -1
	for i, e := range sigs {
		if e.subFilter != subFilterDocTS {
			idx = i
		}
	}
	if idx < 0 {
		return Info{}, ErrNoSignature
	}
	sig := sigs[idx]
	si, err := parseCMS(sig.der)
	if err != nil {
		return Info{}, err
	}
	cStart, cEnd := sig.br[1], sig.br[2]
	h := si.digestAlg.New()
	h.Write(sealed[:cStart])
	h.Write(sealed[cEnd:sig.end])
	if err := si.check(h.Sum(nil)); err != nil {
		return Info{}, err
	}
	info := Info{Signer: si.signer.Subject.String(), Certificate: si.signer, Level: "B-B", TimestampToken: si.timestampToken,
		Signature: si.signature, SubFilter: sig.subFilter, Covered: sig.end}
	if m := mDateRe.FindSubmatch(sig.dict); m != nil {
		info.SigningTime = parsePDFDate(decodePDFString(string(m[1])))
	}
	if m := reasonRe.FindSubmatch(sig.dict); m != nil {
		info.Reason = decodePDFString(string(m[1]))
	}
	if m := locationRe.FindSubmatch(sig.dict); m != nil {
		info.Location = decodePDFString(string(m[1]))
	}
	// After the seal: only validation material and document timestamps.
	if sig.end < int64(len(sealed)) {
		dss, err := checkTail(sealed, sig.end)
		if err != nil {
			return info, err
		}
		info.DSS = dss
		for _, e := range sigs[idx+1:] {
			if e.end <= sig.end {
				return info, fmt.Errorf("%w: a document timestamp covers less than the seal", ErrInvalidSignature)
			}
			d := sha256.New()
			d.Write(sealed[:e.br[1]])
			d.Write(sealed[e.br[2]:e.end])
			info.DocTimestamps = append(info.DocTimestamps, DocTimestamp{Token: e.der, Digest: d.Sum(nil), Covered: e.end})
		}
	}

	if err := si.verifyChain(roots, at); err != nil {
		return info, err
	}
	return info, nil
}

// check verifies the signer's signature over the signed attributes and
// that those attributes bind content whose digest is digest (computed with
// si.digestAlg) and the signer's certificate.
func (si *signerInfo) check(digest []byte) error {
	if !si.contentType.Equal(oidData) {
		return fmt.Errorf("%w: content-type attribute missing or not id-data", ErrInvalidSignature)
	}
	if !bytes.Equal(si.messageDigest, digest) {
		return fmt.Errorf("%w: message digest does not match the signed bytes", ErrInvalidSignature)
	}
	if si.certV2Hash == nil {
		return fmt.Errorf("%w: no signing-certificate-v2 attribute", ErrInvalidSignature)
	}
	if sum := sha256.Sum256(si.signer.Raw); !bytes.Equal(si.certV2Hash, sum[:]) {
		return fmt.Errorf("%w: signing-certificate-v2 does not match the signer certificate", ErrInvalidSignature)
	}
	if err := si.checkSignature(); err != nil {
		return err
	}
	if ku := si.signer.KeyUsage; ku != 0 && ku&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return fmt.Errorf("%w: signer certificate is not for signatures (key usage %#x)", ErrInvalidSignature, ku)
	}
	return nil
}

// verifyChain checks that the signer chains to roots at time at (now when
// zero), through the certificates the CMS carries.
func (si *signerInfo) verifyChain(roots *x509.CertPool, at time.Time) error {
	inter := x509.NewCertPool()
	for _, c := range si.certs {
		if c != si.signer {
			inter.AddCert(c)
		}
	}
	if _, err := si.signer.Verify(x509.VerifyOptions{
		Roots:         roots,
		CurrentTime:   at,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return nil
}

// sigDictText returns the text of the signature dictionary around the
// ByteRange at brAt, from the "obj" keyword before it to the "endobj" after
// it, without the Contents value [cStart, cEnd).
func sigDictText(b []byte, brAt int, cStart, cEnd int) []byte {
	start := bytes.LastIndex(b[:brAt], []byte(" obj"))
	if start < 0 {
		start = 0
	}
	from := max(brAt, cEnd)
	end := len(b)
	if i := bytes.Index(b[from:], []byte("endobj")); i >= 0 {
		end = from + i
	}
	if start <= cStart && cEnd <= end {
		return append(append([]byte{}, b[start:cStart]...), b[cEnd:end]...)
	}
	return b[start:end]
}

// decodePDFString decodes a literal "(...)" or hex "<...>" PDF string,
// UTF-16BE if it has a byte order mark.
func decodePDFString(s string) string {
	var raw []byte
	switch {
	case strings.HasPrefix(s, "<"):
		h := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
				return -1
			}
			return r
		}, strings.Trim(s, "<>"))
		if len(h)%2 == 1 {
			h += "0"
		}
		var err error
		if raw, err = hex.DecodeString(h); err != nil {
			return ""
		}
	default:
		raw = unescapeLiteral(strings.TrimSuffix(strings.TrimPrefix(s, "("), ")"))
	}
	if len(raw) >= 2 && raw[0] == 0xFE && raw[1] == 0xFF {
		u := make([]uint16, 0, len(raw)/2)
		for i := 2; i+1 < len(raw); i += 2 {
			u = append(u, uint16(raw[i])<<8|uint16(raw[i+1]))
		}
		return string(utf16.Decode(u))
	}
	return string(raw)
}

// parsePDFDate parses "D:YYYYMMDDHHmmSSOHH'mm'" and its shortened forms;
// the zero time if it cannot.
func parsePDFDate(s string) time.Time {
	s = strings.TrimPrefix(s, "D:")
	s = strings.ReplaceAll(s, "'", "")
	if len(s) < 4 {
		return time.Time{}
	}
	digits := s
	tz := ""
	if i := strings.IndexAny(s, "Z+-"); i >= 0 {
		digits, tz = s[:i], s[i:]
	}
	layout := "20060102150405"
	if len(digits) > len(layout) {
		return time.Time{}
	}
	t, err := time.Parse(layout[:len(digits)], digits)
	if err != nil {
		return time.Time{}
	}
	if tz == "" || tz[0] == 'Z' {
		return t.UTC()
	}
	sign := 1
	if tz[0] == '-' {
		sign = -1
	}
	tz = tz[1:]
	hh, _ := strconv.Atoi(tz[:min(2, len(tz))])
	mm := 0
	if len(tz) >= 4 {
		mm, _ = strconv.Atoi(tz[2:4])
	}
	return t.Add(-time.Duration(sign) * (time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute)).UTC()
}

// unescapeLiteral undoes the escapes of a PDF literal string's content.
func unescapeLiteral(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			out = append(out, c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case '\r', '\n': // line continuation
			if e == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
		default:
			if e >= '0' && e <= '7' {
				v := 0
				j := i
				for ; j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7'; j++ {
					v = v*8 + int(s[j]-'0')
				}
				out = append(out, byte(v))
				i = j - 1
				continue
			}
			out = append(out, e)
		}
	}
	return out
}
