package seal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	pdfmodel "github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

func init() {
	// pdfcpu must never read or create a configuration directory (same
	// choice as pdfcheck). Done at init, before any goroutine may read it.
	api.DisableConfigDir()
}

// Sealer seals PDF files. The seal-level work (PAdES B-T, B-LT, B-LTA) will
// provide other implementations, so the interface stays this small.
type Sealer interface {
	// Seal reads size bytes of PDF from in and returns the sealed file:
	// those bytes unchanged, followed by an incremental update carrying a
	// signature by key over the whole file. The caller must Close the
	// returned reader; the second result is its length.
	Seal(ctx context.Context, in io.Reader, size int64, key *Key, opt Options) (io.ReadCloser, int64, error)
}

// Options are the human-readable entries of the signature dictionary.
type Options struct {
	// Reason is the /Reason entry, e.g. "Archivage de l'acte".
	Reason string
	// Location is the /Location entry, e.g. the hub's town.
	Location string
	// Name is the /Name entry; the key's Label if empty.
	Name string
	// Time is the signing time written as /M; time.Now() if zero. It is a
	// claim of the signer: only a timestamp (B-T) makes it evidence.
	Time time.Time
	// Timestamp, when set, timestamps the signature (PAdES B-T); nil
	// seals at B-B.
	Timestamp Timestamper
	// Validation, with Timestamp, adds the validation material of the
	// seal's and the TSA's chains in a /DSS (PAdES B-LT).
	Validation *Validation
	// DocTimestamp, with Validation, adds a document timestamp over the
	// whole file, /DSS included (PAdES B-LTA).
	DocTimestamp bool
}

// New returns the B-B sealer: a CAdES detached signature (SHA-256, RSA
// PKCS#1 v1.5 or ECDSA) without timestamp.
//
// The input is copied to a temporary file (os.CreateTemp in the default
// directory) while it is hashed: the signature needs the length and the
// digest of everything before and after its own placeholder, and pdfcpu
// needs to seek in the original to find its catalog and first page. The
// returned reader reads that file and removes it on Close.
func New() Sealer { return bBSealer{} }

type bBSealer struct{}

// Seal implements Sealer.
//
// Memory: the copy and the hash stream; pdfcpu then reads the file's object
// structure, which holds the raw (undecoded) stream bytes in memory, so a
// seal of a 50 MB scan needs of the order of 50 MB for a moment.
func (bBSealer) Seal(ctx context.Context, in io.Reader, size int64, key *Key, opt Options) (rc io.ReadCloser, n int64, err error) {
	if key == nil || key.Signer == nil || len(key.Chain) == 0 {
		return nil, 0, fmt.Errorf("%w: key has no signer or no certificate", ErrInvalidKey)
	}
	if _, _, err := signatureAlgorithm(key.Signer.Public()); err != nil {
		return nil, 0, err
	}
	if size <= 0 {
		return nil, 0, fmt.Errorf("%w: empty input", ErrInvalidPDF)
	}
	if (opt.Validation != nil && opt.Timestamp == nil) || (opt.DocTimestamp && opt.Validation == nil) {
		return nil, 0, errors.New("seal: B-LT needs a timestamp, B-LTA validation material too")
	}
	f, err := os.CreateTemp("", "etatcivil-seal-*.pdf")
	if err != nil {
		return nil, 0, fmt.Errorf("seal: temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()

	h := sha256.New()
	copied, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(ctxReader{ctx, in}, size+1))
	if err != nil {
		return nil, 0, fmt.Errorf("seal: copy input: %w", err)
	}
	if copied != size {
		return nil, 0, fmt.Errorf("%w: input has %s bytes, caller announced %d", ErrInvalidPDF, moreThan(copied, size), size)
	}

	st, err := readStructure(f, size)
	if err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("seal: %w", err)
	}

	if opt.Time.IsZero() {
		opt.Time = time.Now()
	}
	if opt.Name == "" {
		opt.Name = key.Label
	}
	u, err := st.buildUpdate(size, h.Sum(nil), cmsOverhead(key, opt.Timestamp != nil), opt, false)
	if err != nil {
		return nil, 0, err
	}
	digest := u.digest(h)
	cms, err := buildCMS(ctx, digest, key, opt.Timestamp)
	if err != nil {
		return nil, 0, err
	}
	if err := u.setContents(cms); err != nil {
		return nil, 0, err
	}
	// pdfcpu has moved the file offset: write at the end explicitly.
	if _, err := f.WriteAt(u.buf, size); err != nil {
		return nil, 0, fmt.Errorf("seal: write update: %w", err)
	}
	total := size + int64(len(u.buf))
	if opt.Validation != nil {
		si, err := parseCMS(cms)
		if err != nil {
			return nil, 0, err
		}
		m, err := opt.Validation.material(ctx, si)
		if err != nil {
			return nil, 0, err
		}
		var st2 *structure
		if total, st2, err = appendDSS(f, total, u.next, m); err != nil {
			return nil, 0, err
		}
		if opt.DocTimestamp {
			if total, _, err = appendDocTimestamp(ctx, f, total, st2, opt.Timestamp); err != nil {
				return nil, 0, err
			}
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("seal: rewind: %w", err)
	}
	return tempFile{f}, total, nil
}

func moreThan(copied, size int64) string {
	if copied > size {
		return "more than " + strconv.FormatInt(size, 10)
	}
	return strconv.FormatInt(copied, 10)
}

// ctxReader stops a long copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// tempFile is the sealed output; Close removes it.
type tempFile struct{ *os.File }

func (t tempFile) Close() error {
	return errors.Join(t.File.Close(), os.Remove(t.Name()))
}

// structure is what the update needs to know of the original file.
type structure struct {
	prevXRef   int64 // offset of the last xref section (the original's startxref)
	xrefStream bool  // the last xref section is a cross-reference stream
	size       int   // first free object number
	root       types.IndirectRef
	catalog    types.Dict
	page       types.IndirectRef
	pageDict   types.Dict
	acroForm   types.Dict  // existing AcroForm entries, nil if none
	fields     types.Array // existing AcroForm fields
	annots     types.Array // existing annotations of page 1
	id0        string      // PDF syntax of the first /ID element, "" if none
	info       *types.IndirectRef
	endsInEOL  bool
	// dss is the catalog's /DSS, dereferenced, with its /Certs, /OCSPs and
	// /CRLs arrays dereferenced too (nil if none): a later update merges.
	dss       types.Dict
	dssArrays map[string]types.Array
	// dssHave are the SHA-256 of the items the /DSS already holds (a
	// later update does not add them twice).
	dssHave map[[32]byte]bool
}

var objHeader = regexp.MustCompile(`^\s*\d+\s+\d+\s+obj\b`)

// readStructure uses pdfcpu to read the original's cross-reference
// structure, catalog and first page. pdfcpu panics on some malformed
// input, hence the recover.
func readStructure(f *os.File, size int64) (st *structure, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: pdfcpu: %v", ErrInvalidPDF, p)
		}
	}()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("seal: rewind: %w", err)
	}
	conf := pdfmodel.NewDefaultConfiguration()
	conf.ValidationMode = pdfmodel.ValidationRelaxed
	conf.Offline = true
	ctx, err := pdfcpu.Read(f, conf)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPDF, err)
	}
	xt := ctx.XRefTable
	if xt.Encrypt != nil || xt.E != nil {
		// Our appended objects would have to be encrypted too; scans are
		// refused encrypted upstream (pdfcheck) anyway.
		return nil, fmt.Errorf("%w: encrypted PDF", ErrInvalidPDF)
	}
	if xt.Root == nil || ctx.Write.OffsetPrevXRef == nil {
		return nil, fmt.Errorf("%w: no catalog or no xref", ErrInvalidPDF)
	}
	st = &structure{prevXRef: *ctx.Write.OffsetPrevXRef, root: *xt.Root, info: xt.Info}

	// pdfcpu falls back to offset 0 when it had to repair the file; a
	// /Prev must point at a real xref section, so check what is there.
	head := make([]byte, 64)
	k, _ := f.ReadAt(head, st.prevXRef)
	head = head[:k]
	switch {
	case bytes.HasPrefix(bytes.TrimLeft(head, " \t\r\n\f\x00"), []byte("xref")):
	case objHeader.Match(head):
		st.xrefStream = true
	default:
		return nil, fmt.Errorf("%w: startxref %d does not point at an xref section", ErrInvalidPDF, st.prevXRef)
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil {
		return nil, fmt.Errorf("seal: read input: %w", err)
	}
	st.endsInEOL = last[0] == '\n' || last[0] == '\r'

	st.size = ctx.MaxObjNr + 1
	if xt.Size != nil && *xt.Size > st.size {
		st.size = *xt.Size
	}

	if st.catalog, err = xt.Catalog(); err != nil {
		return nil, fmt.Errorf("%w: catalog: %w", ErrInvalidPDF, err)
	}
	if err := xt.EnsurePageCount(); err != nil {
		return nil, fmt.Errorf("%w: page tree: %w", ErrInvalidPDF, err)
	}
	pd, pref, _, err := xt.PageDict(1, false)
	if err != nil {
		return nil, fmt.Errorf("%w: page 1: %w", ErrInvalidPDF, err)
	}
	st.pageDict, st.page = pd, *pref

	if o, ok := st.catalog.Find("AcroForm"); ok {
		if st.acroForm, err = xt.DereferenceDict(o); err != nil {
			return nil, fmt.Errorf("%w: AcroForm: %w", ErrInvalidPDF, err)
		}
		if fo, ok := st.acroForm.Find("Fields"); ok {
			if st.fields, err = xt.DereferenceArray(fo); err != nil {
				return nil, fmt.Errorf("%w: AcroForm Fields: %w", ErrInvalidPDF, err)
			}
		}
	}
	if o, ok := st.pageDict.Find("Annots"); ok {
		if st.annots, err = xt.DereferenceArray(o); err != nil {
			return nil, fmt.Errorf("%w: page 1 Annots: %w", ErrInvalidPDF, err)
		}
	}
	if len(xt.ID) > 0 {
		st.id0 = xt.ID[0].PDFString()
	}
	if o, ok := st.catalog.Find("DSS"); ok {
		if st.dss, err = xt.DereferenceDict(o); err != nil {
			return nil, fmt.Errorf("%w: DSS: %w", ErrInvalidPDF, err)
		}
		st.dssArrays = map[string]types.Array{}
		for _, k := range []string{"Certs", "OCSPs", "CRLs"} {
			if ao, ok := st.dss.Find(k); ok {
				if st.dssArrays[k], err = xt.DereferenceArray(ao); err != nil {
					return nil, fmt.Errorf("%w: DSS %s: %w", ErrInvalidPDF, k, err)
				}
				for _, it := range st.dssArrays[k] {
					if sd, _, err := xt.DereferenceStreamDict(it); err == nil && sd != nil && sd.FilterPipeline == nil {
						if st.dssHave == nil {
							st.dssHave = map[[32]byte]bool{}
						}
						st.dssHave[sha256.Sum256(sd.Raw)] = true
					}
				}
			}
		}
	}
	return st, nil
}

// update is the appended section, built in memory (a few kilobytes plus
// the Contents placeholder) with its placeholders' positions.
type update struct {
	buf           []byte
	base          int64 // offset of buf in the sealed file
	contentsStart int   // index of '<' of /Contents in buf
	contentsEnd   int   // index after '>'
	// next is the structure of the file the update makes, for a further
	// update without reading the file again.
	next *structure
}

const byteRangeWidth = 64 // room for "0 a b c" with 19-digit numbers

// buildUpdate writes the incremental update: signature dictionary,
// signature field, catalog with /AcroForm, page 1 with /Annots, xref
// section and trailer. The ByteRange is filled in; Contents is zeros.
//
// With docTS, the dictionary is a document timestamp (B-LTA): /Type
// /DocTimeStamp, SubFilter ETSI.RFC3161, no /M nor names; Contents will
// be an RFC 3161 token over the ByteRange's digest.
func (st *structure) buildUpdate(base int64, origDigest []byte, reserve int, opt Options, docTS bool) (*update, error) {
	var b bytes.Buffer
	if !st.endsInEOL {
		b.WriteByte('\n')
	}
	sigNr, fieldNr := st.size, st.size+1
	offsets := map[int]int64{}
	gens := map[int]int{sigNr: 0, fieldNr: 0}
	begin := func(nr, gen int) {
		offsets[nr] = base + int64(b.Len())
		gens[nr] = gen
		fmt.Fprintf(&b, "%d %d obj\n", nr, gen)
	}

	// Signature dictionary.
	begin(sigNr, 0)
	if docTS {
		b.WriteString("<< /Type /DocTimeStamp /Filter /Adobe.PPKLite /SubFilter /ETSI.RFC3161\n/ByteRange [")
	} else {
		b.WriteString("<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached\n/ByteRange [")
	}
	byteRangeAt := b.Len()
	b.WriteString(strings.Repeat(" ", byteRangeWidth))
	b.WriteString("]\n/Contents ")
	contentsStart := b.Len()
	b.WriteByte('<')
	b.WriteString(strings.Repeat("0", 2*reserve))
	b.WriteByte('>')
	contentsEnd := b.Len()
	if !docTS {
		fmt.Fprintf(&b, "\n/M %s", pdfText(pdfDate(opt.Time)))
		for _, e := range []struct{ k, v string }{{"Reason", opt.Reason}, {"Location", opt.Location}, {"Name", opt.Name}} {
			if e.v != "" {
				fmt.Fprintf(&b, "\n/%s %s", e.k, pdfText(e.v))
			}
		}
	}
	b.WriteString(" >>\nendobj\n")

	// Signature field merged with its invisible widget (F 132 = Print|Locked).
	begin(fieldNr, 0)
	fmt.Fprintf(&b, "<< /Type /Annot /Subtype /Widget /FT /Sig /T %s /V %d 0 R /Rect [0 0 0 0] /F 132 /P %s >>\nendobj\n",
		pdfText(fmt.Sprintf("%s etatcivil %d", map[bool]string{false: "Cachet", true: "Horodatage"}[docTS], sigNr)), sigNr, st.page.PDFString())
	fieldRef := *types.NewIndirectRef(fieldNr, 0)

	// Catalog: every entry kept, /AcroForm replaced by a direct dictionary
	// with the field added.
	acro := types.Dict{}
	for k, v := range st.acroForm {
		acro[k] = v
	}
	acro["Fields"] = append(slices.Clone(st.fields), fieldRef)
	acro["SigFlags"] = types.Integer(3) // SignaturesExist | AppendOnly
	cat := types.Dict{}
	for k, v := range st.catalog {
		cat[k] = v
	}
	cat["AcroForm"] = acro
	begin(st.root.ObjectNumber.Value(), st.root.GenerationNumber.Value())
	b.WriteString(cat.PDFString())
	b.WriteString("\nendobj\n")

	// Page 1 with the widget in /Annots.
	page := types.Dict{}
	for k, v := range st.pageDict {
		page[k] = v
	}
	page["Annots"] = append(slices.Clone(st.annots), fieldRef)
	begin(st.page.ObjectNumber.Value(), st.page.GenerationNumber.Value())
	b.WriteString(page.PDFString())
	b.WriteString("\nendobj\n")

	trailer, id0, err := st.trailerEntries(origDigest)
	if err != nil {
		return nil, err
	}
	next := st.writeXRef(&b, base, offsets, gens, trailer, st.size+2)
	next.id0, next.catalog, next.acroForm, next.pageDict = id0, cat, acro, page
	next.fields, _ = acro["Fields"].(types.Array)
	next.annots, _ = page["Annots"].(types.Array)

	u := &update{buf: b.Bytes(), base: base, contentsStart: contentsStart, contentsEnd: contentsEnd, next: next}
	total := base + int64(len(u.buf))
	br := fmt.Sprintf("0 %d %d %d", base+int64(contentsStart), base+int64(contentsEnd), total-(base+int64(contentsEnd)))
	if len(br) > byteRangeWidth {
		return nil, fmt.Errorf("seal: byte range %q too long", br)
	}
	copy(u.buf[byteRangeAt:], br)
	return u, nil
}

// objNumbers returns the object numbers of offsets in increasing order.
func objNumbers(offsets map[int]int64) []int {
	nrs := make([]int, 0, len(offsets))
	for nr := range offsets {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	return nrs
}

// subsections groups sorted numbers into runs of consecutive numbers.
func subsections(nrs []int) [][]int {
	var runs [][]int
	for i, nr := range nrs {
		if i > 0 && nr == nrs[i-1]+1 {
			runs[len(runs)-1] = append(runs[len(runs)-1], nr)
			continue
		}
		runs = append(runs, []int{nr})
	}
	return runs
}

// writeXRefTable ends an update with a cross-reference table for offsets
// and its trailer; next is the first object number the update leaves free.
func (st *structure) writeXRefTable(b *bytes.Buffer, base int64, offsets map[int]int64, gens map[int]int, trailer string, next int) int64 {
	xrefAt := base + int64(b.Len())
	b.WriteString("xref\n")
	for _, run := range subsections(objNumbers(offsets)) {
		fmt.Fprintf(b, "%d %d\n", run[0], len(run))
		for _, nr := range run {
			fmt.Fprintf(b, "%010d %05d n\r\n", offsets[nr], gens[nr])
		}
	}
	fmt.Fprintf(b, "trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n", next, trailer, xrefAt)
	return xrefAt
}

// writeXRefStream is writeXRefTable for files whose last section is a
// cross-reference stream; the stream itself takes object number next.
func (st *structure) writeXRefStream(b *bytes.Buffer, base int64, offsets map[int]int64, gens map[int]int, trailer string, next int) int64 {
	xrefNr := next
	xrefAt := base + int64(b.Len())
	offsets[xrefNr] = xrefAt
	gens[xrefNr] = 0
	w := 4
	if xrefAt > 0xFFFFFFFF {
		w = 8
	}
	var data, index bytes.Buffer
	for _, run := range subsections(objNumbers(offsets)) {
		fmt.Fprintf(&index, " %d %d", run[0], len(run))
		for _, nr := range run {
			var off [8]byte
			binary.BigEndian.PutUint64(off[:], uint64(offsets[nr]))
			data.WriteByte(1)
			data.Write(off[8-w:])
			data.Write([]byte{byte(gens[nr] >> 8), byte(gens[nr])})
		}
	}
	fmt.Fprintf(b, "%d 0 obj\n<< /Type /XRef /Size %d /W [1 %d 2] /Index [%s ] %s /Length %d >>\nstream\n",
		xrefNr, xrefNr+1, w, index.String(), trailer, data.Len())
	b.Write(data.Bytes())
	fmt.Fprintf(b, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", xrefAt)
	return xrefAt
}

// digest finishes h, which has hashed the original, with the update
// except its Contents value: the hash of the ByteRange.
func (u *update) digest(h hash.Hash) []byte {
	h.Write(u.buf[:u.contentsStart])
	h.Write(u.buf[u.contentsEnd:])
	return h.Sum(nil)
}

// setContents writes the CMS into the Contents placeholder.
func (u *update) setContents(cms []byte) error {
	room := u.contentsEnd - u.contentsStart - 2
	if 2*len(cms) > room {
		return fmt.Errorf("seal: signature of %d bytes exceeds the %d reserved", len(cms), room/2)
	}
	hex.Encode(u.buf[u.contentsStart+1:], cms)
	return nil
}

// pdfDate formats t as a PDF date in UTC.
func pdfDate(t time.Time) string {
	return t.UTC().Format("D:20060102150405+00'00'")
}

// pdfText encodes s as a PDF text string, always a literal string (some
// readers, pdfcpu among them, ignore hex strings in /Reason or /Location):
// PDFDocEncoding-compatible plain ASCII as is, anything else as UTF-16BE
// with a byte order mark, non-printable bytes escaped in octal.
func pdfText(s string) string {
	raw := []byte(s)
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			u := utf16.Encode([]rune(s))
			raw = make([]byte, 2, 2+2*len(u))
			raw[0], raw[1] = 0xFE, 0xFF
			for _, c := range u {
				raw = append(raw, byte(c>>8), byte(c))
			}
			break
		}
	}
	var b strings.Builder
	b.WriteByte('(')
	for _, c := range raw {
		switch {
		case c == '\\' || c == '(' || c == ')':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(')')
	return b.String()
}
