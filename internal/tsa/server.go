package tsa

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// DevPolicy is the TSA policy of a Server without one: the placeholder
// OID of OpenSSL's sample configuration, not a registered policy, fit for
// development only.
var DevPolicy = asn1.ObjectIdentifier{1, 2, 3, 4, 1}

// maxRequestBytes bounds a TimeStampReq; a real one is under 100 bytes.
const maxRequestBytes = 64 << 10

// Server is a minimal RFC 3161 time-stamp authority over HTTP, for tests
// and the local stack. It answers a POST of a DER TimeStampReq
// (application/timestamp-query) with a TimeStampResp
// (application/timestamp-reply) holding a token signed by Signer with
// SHA-256 (RSA PKCS #1 v1.5 or ECDSA).
//
// A Server must not be copied after first use.
type Server struct {
	// Signer is the TSA key, and Cert its certificate (extended key usage
	// timeStamping, critical). Chain holds the intermediate certificates,
	// sent with Cert when the request sets certReq.
	Signer crypto.Signer
	Cert   *x509.Certificate
	Chain  []*x509.Certificate
	// Policy is the TSA policy of the tokens; nil means DevPolicy. A
	// request asking for another policy is rejected.
	Policy asn1.ObjectIdentifier
	// Now gives the genTime (time.Now when nil); it is written in UTC
	// with millisecond precision.
	Now func() time.Time
	// Serial gives the serialNumber of each token, positive and unique
	// (a random 127-bit number when nil).
	Serial func() *big.Int
	// Down, when set, makes the server answer 503 Service Unavailable to
	// everything, to test clients against an unavailable TSA.
	Down atomic.Bool
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.Down.Load() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "time-stamp authority down", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST an application/timestamp-query", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != queryMediaType {
		http.Error(w, "want Content-Type: "+queryMediaType, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read the request", http.StatusBadRequest)
		return
	}

	req, err := parseRequest(body)
	if err != nil {
		fail := failBadRequest
		var re *requestError
		if errors.As(err, &re) {
			fail = re.fail
		}
		s.reply(w, statusRejection, err.Error(), fail, nil)
		return
	}
	if req.policy != nil && !req.policy.Equal(s.policy()) {
		s.reply(w, statusRejection, "unaccepted policy "+req.policy.String(), failUnacceptedPolicy, nil)
		return
	}
	token, err := s.issue(req)
	if err != nil {
		s.reply(w, statusRejection, "system failure", failSystemFailure, nil)
		return
	}
	s.reply(w, statusGranted, "", -1, token)
}

func (s *Server) reply(w http.ResponseWriter, status int64, text string, fail int, token []byte) {
	der, err := marshalResponse(status, text, fail, token)
	if err != nil {
		http.Error(w, "cannot encode the response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", replyMediaType)
	_, _ = w.Write(der)
}

func (s *Server) policy() asn1.ObjectIdentifier {
	if s.Policy != nil {
		return s.Policy
	}
	return DevPolicy
}

// issue returns the DER ContentInfo of a SignedData time-stamping req.
func (s *Server) issue(req *timeStampReq) ([]byte, error) {
	if s.Signer == nil || s.Cert == nil {
		return nil, errors.New("tsa: server without signer or certificate")
	}
	pub, ok := s.Signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(s.Cert.PublicKey) {
		return nil, errors.New("tsa: signer does not match the certificate")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	serial := randomSerial
	if s.Serial != nil {
		serial = s.Serial
	}
	sn := serial()
	if sn == nil || sn.Sign() <= 0 {
		return nil, errors.New("tsa: serial number not positive")
	}

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // TSTInfo
		b.AddASN1Int64(1)
		b.AddASN1ObjectIdentifier(s.policy())
		b.AddBytes(req.imprintDER)
		b.AddASN1BigInt(sn)
		addGeneralizedTime(b, now())
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Accuracy
			b.AddASN1Int64(1)
		})
		if req.nonceDER != nil {
			b.AddBytes(req.nonceDER)
		}
	})
	tst, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	attrs, err := s.signedAttributes(tst)
	if err != nil {
		return nil, err
	}
	return s.signToken(tst, attrs, req.certReq)
}

// signToken returns the DER ContentInfo of a SignedData holding tst,
// signed by s over attrs, the DER SET OF signed attributes.
func (s *Server) signToken(tst, attrs []byte, certReq bool) ([]byte, error) {
	var sigAlg asn1.ObjectIdentifier
	var sigNull bool
	switch s.Signer.Public().(type) {
	case *rsa.PublicKey:
		sigAlg, sigNull = oidRSAEncryption, true
	case *ecdsa.PublicKey:
		sigAlg = oidECDSAWithSHA256
	default:
		return nil, fmt.Errorf("tsa: unsupported signer key %T", s.Signer.Public())
	}
	h := sha256.Sum256(attrs)
	sig, err := s.Signer.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("tsa: sign: %w", err)
	}

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(3)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					addAlgorithm(b, oidSHA256, false)
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // EncapsulatedContentInfo
					b.AddASN1ObjectIdentifier(oidTSTInfo)
					b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
						b.AddASN1OctetString(tst)
					})
				})
				if certReq {
					b.AddASN1(tagImplicit0, func(b *cryptobyte.Builder) {
						b.AddBytes(s.Cert.Raw)
						for _, c := range s.Chain {
							b.AddBytes(c.Raw)
						}
					})
				}
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerAndSerialNumber
							b.AddBytes(s.Cert.RawIssuer)
							b.AddASN1BigInt(s.Cert.SerialNumber)
						})
						addAlgorithm(b, oidSHA256, false)
						b.AddASN1(tagImplicit0, func(b *cryptobyte.Builder) {
							// The signed SET OF, re-tagged [0] IMPLICIT.
							set := cryptobyte.String(attrs)
							var content cryptobyte.String
							if !set.ReadASN1(&content, cbasn1.SET) {
								b.SetError(errors.New("tsa: re-read signed attributes"))
								return
							}
							b.AddBytes(content)
						})
						addAlgorithm(b, sigAlg, sigNull)
						b.AddASN1OctetString(sig)
					})
				})
			})
		})
	})
	return b.Bytes()
}

// signedAttributes returns the DER SET OF signed attributes:
// content-type, message-digest and signing-certificate-v2.
func (s *Server) signedAttributes(tst []byte) ([]byte, error) {
	ct, err := attribute(oidAttrContentType, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidTSTInfo)
	})
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256(tst)
	md, err := attribute(oidAttrMessageDigest, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(d[:])
	})
	if err != nil {
		return nil, err
	}
	certHash := sha256.Sum256(s.Cert.Raw)
	scv2, err := attribute(oidAttrSigningCertV2, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SigningCertificateV2
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // certs
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ESSCertIDv2, hashAlgorithm DEFAULT sha256
					b.AddASN1OctetString(certHash[:])
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerSerial
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // GeneralNames
							b.AddASN1(tagDirName, func(b *cryptobyte.Builder) {
								b.AddBytes(s.Cert.RawIssuer)
							})
						})
						b.AddASN1BigInt(s.Cert.SerialNumber)
					})
				})
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return attributeSet(ct, md, scv2)
}

// attributeSet returns the DER SET OF the encoded attributes, sorted as
// DER wants.
func attributeSet(attrs ...[]byte) ([]byte, error) {
	list := append([][]byte(nil), attrs...)
	sort.Slice(list, func(i, j int) bool { return bytes.Compare(list[i], list[j]) < 0 })
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, a := range list {
			b.AddBytes(a)
		}
	})
	return b.Bytes()
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}
