package seal

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"time"
)

// SignDetached returns a detached CMS SignedData (DER, the content of a
// .p7s file) over content, signed by key with the same attributes as a
// PAdES seal; with ts, the signature value is timestamped (CAdES-T).
// Anyone can check it with
//
//	openssl cms -verify -binary -inform DER -in F.p7s -content F -CAfile ROOTS
//
// The audit checkpoints are sealed this way.
func SignDetached(ctx context.Context, content []byte, key *Key, ts Timestamper) ([]byte, error) {
	sum := sha256.Sum256(content)
	return buildCMS(ctx, sum[:], key, ts)
}

// VerifyDetached checks a detached CMS signature over content: the
// signature, its signed attributes, then the signature timestamp, if any,
// with verifyTS, and the signer's chain to roots (at the timestamp's time
// when there is one, so an expired seal certificate still verifies).
// Level is "B-B" or "B-T" as for a PDF. Errors wrap ErrInvalidSignature
// or ErrUntrusted.
func VerifyDetached(content, der []byte, roots *x509.CertPool, verifyTS TimestampVerifier) (Info, error) {
	si, err := parseCMS(der)
	if err != nil {
		return Info{}, err
	}
	h := si.digestAlg.New()
	h.Write(content)
	if err := si.check(h.Sum(nil)); err != nil {
		return Info{}, err
	}
	info := Info{Signer: si.signer.Subject.String(), Certificate: si.signer, Level: "B-B",
		TimestampToken: si.timestampToken, Signature: si.signature}
	var at time.Time
	if si.timestampToken != nil {
		if verifyTS == nil {
			return info, fmt.Errorf("%w: signature timestamp present but no way to verify it", ErrInvalidSignature)
		}
		imprint := sha256.Sum256(si.signature)
		if at, err = verifyTS(si.timestampToken, imprint[:]); err != nil {
			return info, fmt.Errorf("%w: signature timestamp: %w", ErrInvalidSignature, err)
		}
		info.Level, info.TimestampTime = "B-T", at
	}
	if err := si.verifyChain(roots, at); err != nil {
		return info, err
	}
	return info, nil
}
