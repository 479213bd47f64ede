// Package pdfcheck decides whether an uploaded PDF is acceptable, treating
// every file as hostile: a size cap, a scanner of our own that drains every
// stream through its filters under decompression caps and looks for active
// content, attachments and encryption, then pdfcpu for the structure, page
// count, version and PDF/A claim. RunIsolated runs the whole check in a
// child process bounded in memory and time.
package pdfcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	pdfmodel "github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"github.com/etatcivil/etatcivil/internal/model"
)

func init() {
	// pdfcpu must never read or create a configuration directory: the
	// check is pure. Done at init, before any goroutine may read it.
	api.DisableConfigDir()
}

// Limits bounds what Check accepts and how much work it does. A zero field
// takes its default (see DefaultLimits).
type Limits struct {
	// MaxFileSize is the largest file accepted (pdf_too_large).
	MaxFileSize int64
	// MaxPages is the largest page count accepted (pdf_too_many_pages).
	MaxPages int
	// MaxStreamDecoded caps the decoded bytes of one stream, per filter
	// stage (pdf_decompression_limit).
	MaxStreamDecoded int64
	// MaxDocDecoded caps the decoded bytes of the whole document, all
	// streams and filter stages together (pdf_decompression_limit).
	MaxDocDecoded int64
	// MaxRatio caps decoded:encoded for a stream once it has decoded more
	// than RatioGrace bytes (pdf_decompression_limit).
	MaxRatio int64
	// RatioGrace is how much a stream may decode before MaxRatio applies:
	// a blank scanned page legitimately deflates 400:1.
	RatioGrace int64
}

// Default limits.
const (
	DefaultMaxFileSize      = 50 << 20
	DefaultMaxPages         = 20
	DefaultMaxStreamDecoded = 64 << 20
	DefaultMaxDocDecoded    = 256 << 20
	DefaultMaxRatio         = 1000
	DefaultRatioGrace       = 16 << 20
)

// DefaultLimits returns the limits used in production.
func DefaultLimits() Limits {
	return Limits{
		MaxFileSize:      DefaultMaxFileSize,
		MaxPages:         DefaultMaxPages,
		MaxStreamDecoded: DefaultMaxStreamDecoded,
		MaxDocDecoded:    DefaultMaxDocDecoded,
		MaxRatio:         DefaultMaxRatio,
		RatioGrace:       DefaultRatioGrace,
	}
}

// withDefaults fills the zero fields of l.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = d.MaxFileSize
	}
	if l.MaxPages <= 0 {
		l.MaxPages = d.MaxPages
	}
	if l.MaxStreamDecoded <= 0 {
		l.MaxStreamDecoded = d.MaxStreamDecoded
	}
	if l.MaxDocDecoded <= 0 {
		l.MaxDocDecoded = d.MaxDocDecoded
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = d.MaxRatio
	}
	if l.RatioGrace <= 0 {
		l.RatioGrace = d.RatioGrace
	}
	return l
}

// Result describes an accepted PDF.
type Result struct {
	// Pages is the page count.
	Pages int `json:"pages"`
	// Version is the header version, e.g. "1.7".
	Version string `json:"version"`
	// PDFA is the PDF/A claim of the XMP metadata (part and conformance,
	// e.g. "2B"), "" if none. It is a claim, not a verification.
	PDFA string `json:"pdfa,omitempty"`
	// DecodedBytes is what the scanner decoded, all streams together.
	DecodedBytes int64 `json:"decoded_bytes"`
}

var pdfMagic = []byte("%PDF-")

// Check reads the whole PDF from r (size bytes) and returns a Result, or a
// *model.Rejection (as error, test with errors.As) for bad input. Any other
// error is an internal fault, such as a failing reader. The steps, in
// order: size, header, our own stream and name scanner, the %%EOF marker,
// the cross-reference sections against the objects they locate, our own
// walk of the page tree (which gives the page count), pdfcpu's structure
// check. Check touches no file and no network.
func Check(r io.ReaderAt, size int64, lim Limits) (Result, error) {
	lim = lim.withDefaults()
	if size > lim.MaxFileSize {
		return Result{}, model.Reject(model.ReasonPDFTooLarge,
			fmt.Sprintf("(%d octets, maximum %d)", size, lim.MaxFileSize))
	}
	if size < int64(len(pdfMagic)) {
		return Result{}, model.Reject(model.ReasonNotPDF, "")
	}
	data := make([]byte, size)
	if _, err := r.ReadAt(data, 0); err != nil && !(errors.Is(err, io.EOF) && len(data) == int(size)) {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// Fewer bytes than announced: what we have is not the file.
			return Result{}, model.Reject(model.ReasonPDFMalformed, "(fichier plus court que annoncé)")
		}
		return Result{}, fmt.Errorf("pdfcheck: read: %w", err)
	}
	return checkBytes(data, lim)
}

// checkBytes is Check on a file already in memory (at most MaxFileSize).
func checkBytes(data []byte, lim Limits) (res Result, err error) {
	defer func() {
		// A panic here is a bug of ours that some input reaches; refusing
		// the file beats taking the server down, and a retry would panic
		// again.
		if p := recover(); p != nil {
			res, err = Result{}, model.Reject(model.ReasonPDFMalformed, "(erreur d'analyse)")
		}
	}()
	if !bytes.HasPrefix(data, pdfMagic) {
		return Result{}, model.Reject(model.ReasonNotPDF, "")
	}
	decoded, err := scanObjects(data, lim)
	if err != nil {
		return Result{}, fmt.Errorf("pdfcheck: %w", err)
	}
	if !hasEOF(data) {
		return Result{}, model.Reject(model.ReasonPDFMalformed, "(marqueur %%EOF absent)")
	}
	if !startXrefOK(data) {
		// pdfcpu would rebuild the table by scanning; a scanner's
		// output never needs that, and a file that does is damaged.
		return Result{}, model.Reject(model.ReasonPDFMalformed, "(startxref ne désigne pas une table des références)")
	}
	if err := checkXref(data, lim); err != nil {
		// Same reason: pdfcpu would rebuild a table whose offsets are
		// wrong, silently, where qpdf calls the file damaged.
		return Result{}, fmt.Errorf("pdfcheck: %w", err)
	}
	res, err = structure(data, lim)
	if err != nil {
		return Result{}, fmt.Errorf("pdfcheck: %w", err)
	}
	res.DecodedBytes = decoded
	return res, nil
}

// hasEOF reports whether the file ends with a %%EOF marker, allowing the
// trailing whitespace and garbage that real writers leave (readers look in
// the last 1024 bytes).
func hasEOF(data []byte) bool {
	tail := data[max(0, len(data)-1024):]
	return bytes.Contains(tail, []byte("%%EOF"))
}

// xrefAtRE matches what startxref must point at: a classic table or a
// cross-reference stream object.
var xrefAtRE = regexp.MustCompile(`^[\x00\t\n\f\r ]*(?:xref|\d+[\x00\t\n\f\r ]+\d+[\x00\t\n\f\r ]+obj)`)

// lastStartXref returns the offset the last startxref gives, if it is
// inside the file.
func lastStartXref(data []byte) (int64, bool) {
	i := bytes.LastIndex(data, []byte("startxref"))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(data[i+len("startxref"):], "\x00\t\n\f\r ")
	j := 0
	for j < len(rest) && j < 20 && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	off, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil || off < 0 || off >= int64(len(data)) {
		return 0, false
	}
	return off, true
}

// startXrefOK reports whether the last startxref points at a
// cross-reference section.
func startXrefOK(data []byte) bool {
	off, ok := lastStartXref(data)
	if !ok {
		return false
	}
	return xrefAtRE.Match(data[off:min(int64(len(data)), off+64)])
}

// structure runs pdfcpu over data, turning its errors and panics into
// rejections.
func structure(data []byte, lim Limits) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			// pdfcpu panics on some malformed input; the stack is of
			// no use to the sender and might be large.
			err = model.Reject(model.ReasonPDFMalformed, "")
		}
	}()
	conf := pdfmodel.NewDefaultConfiguration()
	conf.ValidationMode = pdfmodel.ValidationRelaxed
	conf.Cmd = pdfmodel.VALIDATE
	conf.Offline = true
	// Read and validate in two steps (what api.ReadAndValidate does), so
	// that the page tree is walked as the file has it: relaxed
	// validation repairs it, e.g. a kid that does not exist becomes a
	// blank page.
	pdfErr := func(err error) error {
		if errors.Is(err, pdfcpu.ErrWrongPassword) || errors.Is(err, pdfcpu.ErrEncrypted) ||
			errors.Is(err, pdfcpu.ErrUnsupportedEncryptionFeature) || errors.Is(err, pdfcpu.ErrMalformedEncryption) {
			return model.Reject(model.ReasonPDFEncrypted, "")
		}
		return model.Reject(model.ReasonPDFMalformed, "("+shortErr(err)+")")
	}
	ctx, err := api.ReadContext(bytes.NewReader(data), conf)
	if err != nil {
		return Result{}, pdfErr(err)
	}
	if ctx.Encrypt != nil || ctx.E != nil {
		// pdfcpu opened it with the empty user password; still encrypted.
		return Result{}, model.Reject(model.ReasonPDFEncrypted, "")
	}
	pages, err := countPages(ctx.XRefTable)
	if err != nil {
		return Result{}, err
	}
	if err := api.ValidateContext(ctx); err != nil {
		return Result{}, pdfErr(err)
	}
	if pages <= 0 {
		return Result{}, model.Reject(model.ReasonPDFMalformed, "(aucune page)")
	}
	if pages > lim.MaxPages {
		return Result{}, model.Reject(model.ReasonPDFTooManyPages,
			fmt.Sprintf("(%d pages, maximum %d)", pages, lim.MaxPages))
	}
	res = Result{Pages: pages}
	if ctx.HeaderVersion != nil {
		res.Version = ctx.HeaderVersion.String()
	}
	res.PDFA = pdfaClaim(xmp(ctx))
	return res, nil
}

// shortErr keeps pdfcpu's message readable in a rejection.
func shortErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// xmp returns the catalog's XMP metadata, or nil.
func xmp(ctx *pdfmodel.Context) []byte {
	cat, err := ctx.Catalog()
	if err != nil {
		return nil
	}
	o, ok := cat.Find("Metadata")
	if !ok {
		return nil
	}
	sd, _, err := ctx.DereferenceStreamDict(o)
	if err != nil || sd == nil {
		return nil
	}
	if sd.Content == nil {
		if err := sd.Decode(); err != nil {
			return nil
		}
	}
	return sd.Content
}

// XMP forms of the PDF/A identification: attributes (pdfaid:part="2") or
// elements (<pdfaid:part>2</pdfaid:part>).
var (
	partRE = regexp.MustCompile(`pdfaid:part\s*(?:=\s*["']\s*([0-9]+)\s*["']|>\s*([0-9]+)\s*<)`)
	confRE = regexp.MustCompile(`pdfaid:conformance\s*(?:=\s*["']\s*([A-Za-z]+)\s*["']|>\s*([A-Za-z]+)\s*<)`)
)

// pdfaClaim returns the PDF/A claim of an XMP packet, e.g. "2B", or "".
func pdfaClaim(x []byte) string {
	pm := partRE.FindSubmatch(x)
	if pm == nil {
		return ""
	}
	part := string(pm[1]) + string(pm[2])
	conf := ""
	if cm := confRE.FindSubmatch(x); cm != nil {
		conf = string(cm[1]) + string(cm[2])
	}
	return part + string(bytes.ToUpper([]byte(conf)))
}
