// Package devpki holds what the development PKIs (seal.DevCA, tsa.DevTSA)
// share: files written whole or not at all, PEM certificates and keys.
package devpki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
)

// WriteFileAtomic writes data to path with mode: into a temporary file of
// the same directory, then renamed over path, so a reader (or a crash)
// never sees a partial file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// File is one file of a development PKI.
type File struct {
	Name string
	Data []byte
	Mode os.FileMode
}

// WriteFiles writes files into dir, each atomically, in order (the last
// one's presence marks a complete set).
func WriteFiles(dir string, files []File) error {
	for _, f := range files {
		if err := WriteFileAtomic(filepath.Join(dir, f.Name), f.Data, f.Mode); err != nil {
			return err
		}
	}
	return nil
}

// CertsPEM is banner followed by each DER certificate in PEM.
func CertsPEM(banner string, der ...[]byte) []byte {
	out := []byte(banner)
	for _, d := range der {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return out
}

// KeyPEM is banner followed by key as a PKCS #8 PEM block.
func KeyPEM(banner string, key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return append([]byte(banner), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...), nil
}

// ReadCerts reads every certificate of a PEM file, in order.
func ReadCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		certs = append(certs, c)
	}
}

// ReadSigner reads a PKCS #8 private key (PEM) that can sign.
func ReadSigner(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PKCS #8 PRIVATE KEY block", filepath.Base(path))
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key %T cannot sign", filepath.Base(path), k)
	}
	return signer, nil
}

// ResetFor removes files from dir unless marker there holds base: a
// development PKI whose certificates name another revocation service (or
// none) is made again. It does nothing when base is empty.
func ResetFor(dir, marker, base string, files ...string) error {
	if base == "" {
		return nil
	}
	if b, err := os.ReadFile(filepath.Join(dir, marker)); err == nil && strings.TrimSpace(string(b)) == base {
		return nil
	}
	for _, n := range append(files, marker) {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Serial is a random positive 127-bit certificate serial number.
func Serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}
