package seal

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"

	"github.com/etatcivil/etatcivil/internal/revocation"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// Validation makes long-term seals (PAdES B-LT): after the signature and
// its timestamp, an incremental update adds a /DSS dictionary with the
// certificates of the seal's chain and of the TSA's, and for each an OCSP
// response or a CRL, fetched at sealing time.
type Validation struct {
	// Roots are the anchors chains are built to (nil: the system's).
	Roots *x509.CertPool
	// Collect gathers the validation material of a chain, leaf first,
	// ending at a root (revocation.Fetcher.Collect).
	Collect func(ctx context.Context, chain []*x509.Certificate) (revocation.Material, error)

	// chains caches built chains by leaf (DER): thousands of acts are
	// sealed with one certificate and timestamped by one TSA.
	chains sync.Map
}

// chainOf builds leaf's chain to v.Roots through intermediates, leaf
// first; usage is the extended key usage the leaf must allow.
func (v *Validation) chainOf(leaf *x509.Certificate, intermediates []*x509.Certificate, usage x509.ExtKeyUsage) ([]*x509.Certificate, error) {
	key := string(leaf.Raw) + "|" + strconv.Itoa(int(usage))
	if c, ok := v.chains.Load(key); ok {
		chain := c.([]*x509.Certificate)
		now := time.Now()
		valid := true
		for _, cert := range chain {
			valid = valid && now.Before(cert.NotAfter)
		}
		if valid {
			return chain, nil
		}
		v.chains.Delete(key)
	}
	pool := x509.NewCertPool()
	for _, c := range intermediates {
		if c != leaf {
			pool.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: v.Roots, Intermediates: pool, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return nil, fmt.Errorf("%w: chain of %q: %w", ErrUntrusted, leaf.Subject.CommonName, err)
	}
	v.chains.Store(key, chains[0])
	return chains[0], nil
}

// material gathers the validation material of a CAdES signature: its
// signer's chain and, if it is timestamped, the TSA's.
func (v *Validation) material(ctx context.Context, si *signerInfo) (revocation.Material, error) {
	var m revocation.Material
	chain, err := v.chainOf(si.signer, si.certs, x509.ExtKeyUsageAny)
	if err != nil {
		return m, err
	}
	got, err := v.Collect(ctx, chain)
	if err != nil {
		return m, err
	}
	m.Add(got)
	if si.timestampToken != nil {
		tm, err := v.tokenMaterial(ctx, si.timestampToken)
		if err != nil {
			return m, err
		}
		m.Add(tm)
	}
	return m, nil
}

// tokenMaterial gathers the validation material of an RFC 3161 token's
// TSA chain.
func (v *Validation) tokenMaterial(ctx context.Context, token []byte) (revocation.Material, error) {
	info, err := tsa.Verify(token, nil, 0, nil)
	if err != nil {
		return revocation.Material{}, fmt.Errorf("%w: timestamp: %w", ErrInvalidSignature, err)
	}
	chain, err := v.chainOf(info.Signer, info.Certs, x509.ExtKeyUsageTimeStamping)
	if err != nil {
		return revocation.Material{}, err
	}
	return v.Collect(ctx, chain)
}

// appendDSS appends to the size bytes of f, whose structure is st, an
// incremental update adding m to the document security store (a /DSS
// created, or the existing one extended), and returns the new size and
// structure.
func appendDSS(f *os.File, size int64, st *structure, m revocation.Material) (int64, *structure, error) {
	var b bytes.Buffer
	if !st.endsInEOL {
		b.WriteByte('\n')
	}
	offsets, gens := map[int]int64{}, map[int]int{}
	nr := st.size
	begin := func(n, gen int) {
		offsets[n] = size + int64(b.Len())
		gens[n] = gen
		fmt.Fprintf(&b, "%d %d obj\n", n, gen)
	}
	dss := types.Dict{}
	for k, v := range st.dss {
		dss[k] = v
	}
	dss["Type"] = types.Name("DSS")
	arrays := map[string]types.Array{}
	for _, part := range []struct {
		key   string
		items [][]byte
	}{{"Certs", m.Certs}, {"OCSPs", m.OCSPs}, {"CRLs", m.CRLs}} {
		arr := slices.Clone(st.dssArrays[part.key])
		for _, it := range part.items {
			if st.dssHave[sha256.Sum256(it)] {
				continue
			}
			begin(nr, 0)
			fmt.Fprintf(&b, "<< /Length %d >>\nstream\n", len(it))
			b.Write(it)
			b.WriteString("\nendstream\nendobj\n")
			arr = append(arr, *types.NewIndirectRef(nr, 0))
			nr++
		}
		if len(arr) > 0 {
			dss[part.key] = arr
			arrays[part.key] = arr
		}
	}
	dssNr := nr
	nr++
	begin(dssNr, 0)
	b.WriteString(dss.PDFString())
	b.WriteString("\nendobj\n")
	cat := types.Dict{}
	for k, v := range st.catalog {
		cat[k] = v
	}
	cat["DSS"] = *types.NewIndirectRef(dssNr, 0)
	begin(st.root.ObjectNumber.Value(), st.root.GenerationNumber.Value())
	b.WriteString(cat.PDFString())
	b.WriteString("\nendobj\n")
	trailer, id0, err := st.trailerEntries(make([]byte, 16))
	if err != nil {
		return 0, nil, err
	}
	next := st.writeXRef(&b, size, offsets, gens, trailer, nr)
	next.id0, next.catalog, next.dss, next.dssArrays = id0, cat, dss, arrays
	next.dssHave = map[[32]byte]bool{}
	for k := range st.dssHave {
		next.dssHave[k] = true
	}
	for _, part := range [][][]byte{m.Certs, m.OCSPs, m.CRLs} {
		for _, it := range part {
			next.dssHave[sha256.Sum256(it)] = true
		}
	}
	if _, err := f.WriteAt(b.Bytes(), size); err != nil {
		return 0, nil, fmt.Errorf("seal: write DSS: %w", err)
	}
	return size + int64(b.Len()), next, nil
}

// writeXRef ends an update (cross-reference table or stream, as the file
// has, and trailer) and returns the structure of the file it makes, but
// the dictionaries the caller changed.
func (st *structure) writeXRef(b *bytes.Buffer, base int64, offsets map[int]int64, gens map[int]int, trailer string, next int) *structure {
	n := *st
	n.endsInEOL = true
	if st.xrefStream {
		n.prevXRef, n.size = st.writeXRefStream(b, base, offsets, gens, trailer, next), next+1
	} else {
		n.prevXRef, n.size = st.writeXRefTable(b, base, offsets, gens, trailer, next), next
	}
	return &n
}

// trailerEntries are an update's trailer entries but /Size: the same
// /Root, /Info and first /ID (the first 16 bytes of origDigest if the
// file had none), a new second /ID, /Prev.
func (st *structure) trailerEntries(origDigest []byte) (trailer, id0 string, err error) {
	id1 := make([]byte, 16)
	if _, err := rand.Read(id1); err != nil {
		return "", "", fmt.Errorf("seal: file identifier: %w", err)
	}
	id0 = st.id0
	if id0 == "" {
		id0 = "<" + hex.EncodeToString(origDigest[:16]) + ">"
	}
	trailer = fmt.Sprintf("/Root %s /Prev %d /ID [%s <%s>]", st.root.PDFString(), st.prevXRef, id0, hex.EncodeToString(id1))
	if st.info != nil {
		trailer += " /Info " + st.info.PDFString()
	}
	return trailer, id0, nil
}

// appendDocTimestamp appends to the size bytes of f, whose structure is
// st, a document timestamp
// (PAdES B-LTA): a signature dictionary of SubFilter ETSI.RFC3161 whose
// Contents is an RFC 3161 token over the SHA-256 of its ByteRange, which
// covers the whole file but the token. It returns the new size.
func appendDocTimestamp(ctx context.Context, f *os.File, size int64, st *structure, ts Timestamper) (int64, *structure, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return 0, nil, fmt.Errorf("seal: read: %w", err)
	}
	u, err := st.buildUpdate(size, h.Sum(nil), timestampReserveBytes, Options{}, true)
	if err != nil {
		return 0, nil, err
	}
	token, err := ts(ctx, u.digest(h))
	if err != nil {
		return 0, nil, err
	}
	if err := u.setContents(token); err != nil {
		return 0, nil, err
	}
	if _, err := f.WriteAt(u.buf, size); err != nil {
		return 0, nil, fmt.Errorf("seal: write document timestamp: %w", err)
	}
	return size + int64(len(u.buf)), u.next, nil
}

// Extend adds to a sealed PDF (data) the validation material of its seal's
// chain and of the chain of every timestamp it carries, then a new
// document timestamp over the whole (PAdES B-LTA): what a re-timestamping
// campaign does before the last timestamp's certificate expires or its
// algorithms weaken. data is not changed: the result is its exact prefix
// plus two incremental updates.
func Extend(ctx context.Context, data []byte, v *Validation, ts Timestamper) ([]byte, error) {
	if v == nil || ts == nil {
		return nil, errors.New("seal: extending needs validation material and a timestamp")
	}
	sigs, err := signatures(data)
	if err != nil {
		return nil, err
	}
	var m revocation.Material
	sealed := false
	for _, e := range sigs {
		if e.subFilter == subFilterDocTS {
			got, err := v.tokenMaterial(ctx, e.der)
			if err != nil {
				return nil, err
			}
			m.Add(got)
			continue
		}
		si, err := parseCMS(e.der)
		if err != nil {
			return nil, err
		}
		got, err := v.material(ctx, si)
		if err != nil {
			return nil, err
		}
		m.Add(got)
		sealed = true
	}
	if !sealed {
		return nil, ErrNoSignature
	}
	f, err := os.CreateTemp("", "etatcivil-extend-*.pdf")
	if err != nil {
		return nil, fmt.Errorf("seal: temporary file: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return nil, fmt.Errorf("seal: temporary file: %w", err)
	}
	st, err := readStructure(f, int64(len(data)))
	if err != nil {
		return nil, err
	}
	size, st, err := appendDSS(f, int64(len(data)), st, m)
	if err != nil {
		return nil, err
	}
	if size, _, err = appendDocTimestamp(ctx, f, size, st, ts); err != nil {
		return nil, err
	}
	out := make([]byte, size)
	if _, err := f.ReadAt(out, 0); err != nil {
		return nil, fmt.Errorf("seal: read back: %w", err)
	}
	return out, nil
}

// LastTimestamp returns the newest RFC 3161 token of a sealed PDF: its
// last document timestamp, or else its signature timestamp; nil if it
// has none (B-B).
func LastTimestamp(data []byte) ([]byte, error) {
	sigs, err := signatures(data)
	if err != nil {
		return nil, err
	}
	for i := len(sigs) - 1; i >= 0; i-- {
		if sigs[i].subFilter == subFilterDocTS {
			return sigs[i].der, nil
		}
		si, err := parseCMS(sigs[i].der)
		if err != nil {
			return nil, err
		}
		return si.timestampToken, nil
	}
	return nil, ErrNoSignature
}
