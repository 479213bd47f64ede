// Package tsa implements the RFC 3161 time-stamp protocol pieces that the
// PAdES B-T level needs: a Client that obtains a time-stamp token over a
// digest (for the signature-time-stamp unsigned attribute,
// id-aa-signatureTimeStampToken, computed over the CMS signature value),
// Verify that checks such a token, and a small Server for tests and the
// local stack, with DevTSA to give it a development PKI.
//
// Like internal/seal, the ASN.1 is read and written with cryptobyte. The
// package imports nothing from internal/seal so that the sealer can import
// it.
//
// Files: errors.go (sentinel errors), asn1.go (OIDs and shared encoders),
// protocol.go (TimeStampReq and TimeStampResp), client.go (Client),
// verify.go (Verify, token parsing), server.go (Server), devtsa.go (DevTSA).
package tsa
