// Package seal applies and checks the electronic seal of a hub on archived
// PDF files: a PDF signature (SubFilter ETSI.CAdES.detached) appended to the
// file by incremental update, so the scanned original stays byte for byte
// the prefix of the sealed file.
//
// This is the PAdES B-B level without a timestamp; the seal-level work will
// add B-T and later levels behind the same Sealer interface.
//
// Files: key.go (Key, LoadPEM, LoadPKCS12), seal.go (Sealer, the
// incremental update), cms.go (CMS SignedData built with cryptobyte),
// verify.go (Verify), devca.go (DevCA, the development PKI).
package seal
