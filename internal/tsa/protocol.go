package tsa

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// PKIStatus values (RFC 3161 §2.4.2).
const (
	statusGranted                = 0
	statusGrantedWithMods        = 1
	statusRejection              = 2
	statusWaiting                = 3
	statusRevocationWarning      = 4
	statusRevocationNotification = 5
)

var statusNames = map[int64]string{
	statusGranted:                "granted",
	statusGrantedWithMods:        "grantedWithMods",
	statusRejection:              "rejection",
	statusWaiting:                "waiting",
	statusRevocationWarning:      "revocationWarning",
	statusRevocationNotification: "revocationNotification",
}

// PKIFailureInfo bits (RFC 3161 §2.4.2).
const (
	failBadAlg              = 0
	failBadRequest          = 2
	failBadDataFormat       = 5
	failTimeNotAvailable    = 14
	failUnacceptedPolicy    = 15
	failUnacceptedExtension = 16
	failAddInfoNotAvailable = 17
	failSystemFailure       = 25
)

var failNames = map[int]string{
	failBadAlg:              "badAlg",
	failBadRequest:          "badRequest",
	failBadDataFormat:       "badDataFormat",
	failTimeNotAvailable:    "timeNotAvailable",
	failUnacceptedPolicy:    "unacceptedPolicy",
	failUnacceptedExtension: "unacceptedExtension",
	failAddInfoNotAvailable: "addInfoNotAvailable",
	failSystemFailure:       "systemFailure",
}

// timeStampReq is RFC 3161 TimeStampReq.
type timeStampReq struct {
	imprint    messageImprint
	imprintDER []byte // the MessageImprint element as received
	policy     asn1.ObjectIdentifier
	nonce      *big.Int
	nonceDER   []byte // the nonce INTEGER element as received
	certReq    bool
}

// marshalRequest encodes
//
//	TimeStampReq ::= SEQUENCE {
//	  version INTEGER { v1(1) }, messageImprint MessageImprint,
//	  reqPolicy TSAPolicyId OPTIONAL, nonce INTEGER OPTIONAL,
//	  certReq BOOLEAN DEFAULT FALSE, extensions [0] IMPLICIT OPTIONAL }
//
// with no policy and no extensions.
func marshalRequest(h crypto.Hash, digest []byte, nonce *big.Int, certReq bool) ([]byte, error) {
	oid, ok := hashOID(h)
	if !ok {
		return nil, fmt.Errorf("tsa: unsupported hash %v (want SHA-256, SHA-384 or SHA-512)", h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("tsa: digest of %d bytes for %v", len(digest), h)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addAlgorithm(b, oid, writeHashNULL)
			b.AddASN1OctetString(digest)
		})
		if nonce != nil {
			b.AddASN1BigInt(nonce)
		}
		if certReq { // DER omits the DEFAULT FALSE
			b.AddASN1Boolean(true)
		}
	})
	return b.Bytes()
}

// requestError is a TimeStampReq the server rejects, with the failure bit
// to report.
type requestError struct {
	fail int
	msg  string
}

func (e *requestError) Error() string { return e.msg }

// parseRequest decodes a DER TimeStampReq. Extensions are refused (none is
// supported, and RFC 3161 says to reject what is not understood).
func parseRequest(der []byte) (*timeStampReq, error) {
	bad := func(fail int, format string, args ...any) error {
		return &requestError{fail: fail, msg: fmt.Sprintf(format, args...)}
	}
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, bad(failBadRequest, "not a DER TimeStampReq")
	}
	var version int64
	if !seq.ReadASN1Integer(&version) {
		return nil, bad(failBadRequest, "malformed version")
	}
	if version != 1 {
		return nil, bad(failBadRequest, "unsupported version %d", version)
	}
	req := &timeStampReq{}
	var miElem cryptobyte.String
	if !seq.ReadASN1Element(&miElem, cbasn1.SEQUENCE) {
		return nil, bad(failBadRequest, "malformed messageImprint")
	}
	req.imprintDER = []byte(miElem)
	var mi cryptobyte.String
	if !miElem.ReadASN1(&mi, cbasn1.SEQUENCE) {
		return nil, bad(failBadRequest, "malformed messageImprint")
	}
	oid, params, ok := readAlgorithm(&mi)
	if !ok {
		return nil, bad(failBadRequest, "malformed messageImprint hashAlgorithm")
	}
	h, known := hashFromOID(oid, false)
	if !known || (params != nil && !bytes.Equal(params, asn1NULL)) {
		return nil, bad(failBadAlg, "unsupported hash algorithm %s", oid)
	}
	var digest cryptobyte.String
	if !mi.ReadASN1(&digest, cbasn1.OCTET_STRING) || !mi.Empty() {
		return nil, bad(failBadRequest, "malformed messageImprint hashedMessage")
	}
	if len(digest) != h.Size() {
		return nil, bad(failBadDataFormat, "hashedMessage of %d bytes for %v", len(digest), h)
	}
	req.imprint = messageImprint{hash: h, digest: []byte(digest)}
	if seq.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) {
		if !seq.ReadASN1ObjectIdentifier(&req.policy) {
			return nil, bad(failBadRequest, "malformed reqPolicy")
		}
	}
	if seq.PeekASN1Tag(cbasn1.INTEGER) {
		var elem cryptobyte.String
		req.nonce = new(big.Int)
		if !seq.ReadASN1Element(&elem, cbasn1.INTEGER) {
			return nil, bad(failBadRequest, "malformed nonce")
		}
		req.nonceDER = []byte(elem)
		if !elem.ReadASN1Integer(req.nonce) {
			return nil, bad(failBadRequest, "malformed nonce")
		}
	}
	if seq.PeekASN1Tag(cbasn1.BOOLEAN) {
		if !seq.ReadASN1Boolean(&req.certReq) {
			return nil, bad(failBadRequest, "malformed certReq")
		}
	}
	if seq.PeekASN1Tag(tagImplicit0) {
		return nil, bad(failUnacceptedExtension, "request extensions are not supported")
	}
	if !seq.Empty() {
		return nil, bad(failBadRequest, "trailing data in TimeStampReq")
	}
	return req, nil
}

// statusInfo is RFC 3161 PKIStatusInfo.
type statusInfo struct {
	status int64
	text   []string
	fail   asn1.BitString
}

func (si statusInfo) String() string {
	name, ok := statusNames[si.status]
	if !ok {
		name = fmt.Sprintf("status %d", si.status)
	}
	var parts []string
	for i := 0; i < si.fail.BitLength; i++ {
		if si.fail.At(i) == 1 {
			if n, ok := failNames[i]; ok {
				parts = append(parts, n)
			} else {
				parts = append(parts, fmt.Sprintf("failInfo bit %d", i))
			}
		}
	}
	if len(si.text) > 0 {
		parts = append(parts, fmt.Sprintf("%q", strings.Join(si.text, "; ")))
	}
	if len(parts) > 0 {
		name += " (" + strings.Join(parts, ", ") + ")"
	}
	return name
}

// marshalResponse encodes
//
//	TimeStampResp ::= SEQUENCE { status PKIStatusInfo,
//	  timeStampToken TimeStampToken OPTIONAL }
//	PKIStatusInfo ::= SEQUENCE { status PKIStatus,
//	  statusString PKIFreeText OPTIONAL, failInfo PKIFailureInfo OPTIONAL }
//
// fail < 0 means no failInfo; token nil means no token.
func marshalResponse(status int64, text string, fail int, token []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(status)
			if text != "" {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) {
						b.AddBytes([]byte(text))
					})
				})
			}
			if fail >= 0 {
				// A named BIT STRING: DER drops the trailing zero bits.
				bits := make([]byte, fail/8+1)
				bits[fail/8] = 0x80 >> (fail % 8)
				b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) {
					b.AddUint8(uint8(7 - fail%8))
					b.AddBytes(bits)
				})
			}
		})
		if token != nil {
			b.AddBytes(token)
		}
	})
	return b.Bytes()
}

// parseResponse decodes a DER TimeStampResp and returns its status and the
// token element (nil when absent).
func parseResponse(der []byte) (statusInfo, []byte, error) {
	var si statusInfo
	in := cryptobyte.String(der)
	var resp, st cryptobyte.String
	if !in.ReadASN1(&resp, cbasn1.SEQUENCE) || !in.Empty() {
		return si, nil, fmt.Errorf("not a DER TimeStampResp")
	}
	if !resp.ReadASN1(&st, cbasn1.SEQUENCE) || !st.ReadASN1Integer(&si.status) {
		return si, nil, fmt.Errorf("malformed PKIStatusInfo")
	}
	if st.PeekASN1Tag(cbasn1.SEQUENCE) {
		var free cryptobyte.String
		if !st.ReadASN1(&free, cbasn1.SEQUENCE) {
			return si, nil, fmt.Errorf("malformed PKIFreeText")
		}
		for !free.Empty() {
			var s cryptobyte.String
			if !free.ReadASN1(&s, cbasn1.UTF8String) {
				return si, nil, fmt.Errorf("malformed PKIFreeText")
			}
			si.text = append(si.text, string(s))
		}
	}
	if st.PeekASN1Tag(cbasn1.BIT_STRING) {
		if !st.ReadASN1BitString(&si.fail) {
			return si, nil, fmt.Errorf("malformed PKIFailureInfo")
		}
	}
	if !st.Empty() {
		return si, nil, fmt.Errorf("trailing data in PKIStatusInfo")
	}
	if resp.Empty() {
		return si, nil, nil
	}
	var token cryptobyte.String
	if !resp.ReadASN1Element(&token, cbasn1.SEQUENCE) || !resp.Empty() {
		return si, nil, fmt.Errorf("malformed timeStampToken")
	}
	return si, []byte(token), nil
}
