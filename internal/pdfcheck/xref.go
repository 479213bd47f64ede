package pdfcheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/etatcivil/etatcivil/internal/model"
)

// Bounds of the cross-reference check. Each entry costs a constant amount
// of work (a bounded look at the offset it gives), so the whole check is
// linear in the file and capped by maxXrefEntries.
const (
	// maxXrefEntries caps the entries of all sections together.
	maxXrefEntries = 10_000_000
	// maxXrefSections caps the sections followed through /Prev and
	// /XRefStm: one per incremental update, plus one per hybrid stream.
	maxXrefSections = 1024
	// maxObjLead is how much whitespace may come between the offset of an
	// entry and its "N G obj".
	maxObjLead = 256
	// maxXrefField is the widest field of a cross-reference stream row
	// (/W) we read; 8 bytes is already more than a file can address.
	maxXrefField = 8
	// maxPredictorRow bounds the row of a PNG or TIFF predictor.
	maxPredictorRow = 1 << 16
)

// errBadXref is the rejection of a cross-reference table that does not
// match the file.
var errBadXref = model.Reject(model.ReasonPDFMalformed, "(table des références incohérente)")

// checkXref follows the cross-reference sections from the last startxref
// (through /Prev, and /XRefStm of hybrid files) and checks that every
// in-use entry gives the offset of its own object: "N G obj", N and G
// being the entry's object and generation numbers, after optional
// whitespace. pdfcpu, in relaxed mode, silently rebuilds a table that does
// not hold up; qpdf --check calls such a file damaged, and so do we.
//
// Classic tables are read entry by entry, tolerating the end-of-line
// variants of real writers (" \r\n", " \n", " \r", "\r\n", even a lone
// "\n"). Free entries are skipped. Entries of sections that a later update
// overrides are checked too: an incremental update leaves the earlier
// bytes, hence their offsets, untouched.
//
// Cross-reference streams are decoded (filters and PNG/TIFF predictors)
// under the scanner's caps, streaming, row by row; type 1 entries are
// checked like classic ones, type 2 (objects inside an object stream) and
// free ones are skipped. A stream whose filter chain or predictor we do
// not decode (an image codec, an exotic bit depth) is not checked beyond
// being an object at its offset: no real writer produces one, and pdfcpu
// still has its say.
func checkXref(data []byte, lim Limits) error {
	start, ok := lastStartXref(data)
	if !ok {
		return errBadXref
	}
	x := &xrefChecker{
		data: data,
		s:    &scanner{data: data, found: &findings{}},
		bud:  &budget{lim: lim},
		seen: map[int64]bool{},
	}
	queue := []int64{start}
	for len(queue) > 0 {
		off := queue[0]
		queue = queue[1:]
		if x.seen[off] {
			continue // a /Prev loop: each section is checked once
		}
		x.seen[off] = true
		if len(x.seen) > maxXrefSections {
			return model.Reject(model.ReasonPDFMalformed, "(trop de sections de références)")
		}
		next, err := x.section(off)
		if err != nil {
			return err
		}
		queue = append(queue, next...)
	}
	return nil
}

// xrefChecker holds the state of one checkXref run.
type xrefChecker struct {
	data    []byte
	s       *scanner // shared, so an indirect /Length indexes the file once
	bud     *budget
	seen    map[int64]bool // section offsets
	entries int64
}

// skipWhite returns the first non-whitespace offset at or after i.
func (x *xrefChecker) skipWhite(i int) int {
	for i < len(x.data) && isWhite(x.data[i]) {
		i++
	}
	return i
}

// uint reads an unsigned decimal integer at i (at most 18 digits, so
// that it cannot overflow).
func (x *xrefChecker) uint(i int) (v int64, next int, ok bool) {
	j := i
	for j < len(x.data) && j-i < 18 && x.data[j] >= '0' && x.data[j] <= '9' {
		v = v*10 + int64(x.data[j]-'0')
		j++
	}
	if j == i || (j < len(x.data) && x.data[j] >= '0' && x.data[j] <= '9') {
		return 0, i, false
	}
	return v, j, true
}

// objAt reports whether "num gen obj" is at off, after at most maxObjLead
// bytes of whitespace. The work is bounded whatever the file holds there.
func (x *xrefChecker) objAt(off, num, gen int64) bool {
	if off < 0 || off >= int64(len(x.data)) {
		return false
	}
	i := int(off)
	lim := min(len(x.data), i+maxObjLead)
	for i < lim && isWhite(x.data[i]) {
		i++
	}
	n, i, ok := x.uint(i)
	if !ok || n != num || i >= len(x.data) || !isWhite(x.data[i]) {
		return false
	}
	for j := 0; i < len(x.data) && isWhite(x.data[i]) && j < maxObjLead; j++ {
		i++
	}
	g, i, ok := x.uint(i)
	if !ok || g != gen {
		return false
	}
	for j := 0; i < len(x.data) && isWhite(x.data[i]) && j < maxObjLead; j++ {
		i++
	}
	return bytes.HasPrefix(x.data[i:], []byte("obj"))
}

// count adds n entries to the running total, failing past the cap.
func (x *xrefChecker) count(n int64) error {
	if n < 0 {
		return errBadXref
	}
	x.entries += n
	if x.entries > maxXrefEntries {
		return model.Reject(model.ReasonPDFMalformed,
			fmt.Sprintf("(plus de %d entrées de références)", maxXrefEntries))
	}
	return nil
}

// section checks the section at off, classic table or stream, and returns
// the offsets of the sections it links to.
func (x *xrefChecker) section(off int64) ([]int64, error) {
	if off < 0 || off >= int64(len(x.data)) {
		return nil, errBadXref
	}
	i := int(off)
	for j := 0; i < len(x.data) && isWhite(x.data[i]) && j < maxObjLead; j++ {
		i++
	}
	if bytes.HasPrefix(x.data[i:], []byte("xref")) {
		return x.table(i + len("xref"))
	}
	return x.stream(i)
}

// table checks a classic table whose entries start at i (just after the
// "xref" keyword) and reads its trailer.
func (x *xrefChecker) table(i int) ([]int64, error) {
	for {
		i = x.skipWhite(i)
		if bytes.HasPrefix(x.data[i:], []byte("trailer")) {
			break
		}
		first, j, ok := x.uint(i)
		if !ok {
			return nil, errBadXref
		}
		j = x.skipWhite(j)
		n, j, ok := x.uint(j)
		if !ok {
			return nil, errBadXref
		}
		if err := x.count(n); err != nil {
			return nil, err
		}
		i = j
		for k := int64(0); k < n; k++ {
			i = x.skipWhite(i)
			off, j, ok := x.uint(i)
			if !ok || j >= len(x.data) || !isWhite(x.data[j]) {
				return nil, errBadXref
			}
			j = x.skipWhite(j)
			gen, j, ok := x.uint(j)
			if !ok || j >= len(x.data) || !isWhite(x.data[j]) {
				return nil, errBadXref
			}
			j = x.skipWhite(j)
			if j >= len(x.data) {
				return nil, errBadXref
			}
			kind := x.data[j]
			j++
			if j < len(x.data) && !isWhite(x.data[j]) {
				return nil, errBadXref
			}
			switch kind {
			case 'n':
				if !x.objAt(off, first+k, gen) {
					return nil, errBadXref
				}
			case 'f':
			default:
				return nil, errBadXref
			}
			i = j
		}
	}
	s := x.s
	s.pos, s.peek = i+len("trailer"), s.peek[:0]
	v, err := s.value(s.lex(), 0)
	if err != nil {
		return nil, err
	}
	d, ok := v.(pdict)
	if !ok {
		return nil, errBadXref
	}
	var next []int64
	for _, k := range []string{"XRefStm", "Prev"} {
		switch p := d[k].(type) {
		case nil:
		case int64:
			next = append(next, p)
		default:
			return nil, errBadXref
		}
	}
	return next, nil
}

// stream checks the cross-reference stream object at i.
func (x *xrefChecker) stream(i int) ([]int64, error) {
	s := x.s
	s.pos, s.peek = i, s.peek[:0]
	if t := s.lex(); t.kind != tInt {
		return nil, errBadXref
	}
	if t := s.lex(); t.kind != tInt {
		return nil, errBadXref
	}
	if t := s.lex(); t.kind != tKeyword || t.s != "obj" {
		return nil, errBadXref
	}
	v, err := s.value(s.lex(), 0)
	if err != nil {
		return nil, err
	}
	d, ok := v.(pdict)
	if !ok {
		return nil, errBadXref
	}
	if typ, _ := d["Type"].(pname); typ != "XRef" {
		return nil, errBadXref
	}
	t := s.lex()
	if t.kind != tKeyword || t.s != "stream" {
		return nil, errBadXref
	}
	s.pos, s.peek = t.end, s.peek[:0]
	start, end := s.streamBounds(d)

	var next []int64
	switch p := d["Prev"].(type) {
	case nil:
	case int64:
		next = append(next, p)
	default:
		return nil, errBadXref
	}

	w, ok := d["W"].([]any)
	if !ok || len(w) != 3 {
		return nil, errBadXref
	}
	var widths [3]int
	row := 0
	for k, v := range w {
		n, ok := v.(int64)
		if !ok || n < 0 || n > maxXrefField {
			return nil, errBadXref
		}
		widths[k] = int(n)
		row += int(n)
	}
	if row == 0 || widths[1] == 0 {
		return nil, errBadXref
	}
	size, ok := d["Size"].(int64)
	if !ok || size < 0 {
		return nil, errBadXref
	}
	index := []int64{0, size}
	if v, found := d["Index"]; found {
		arr, ok := v.([]any)
		if !ok || len(arr)%2 != 0 {
			return nil, errBadXref
		}
		index = index[:0]
		for _, e := range arr {
			n, ok := e.(int64)
			if !ok || n < 0 {
				return nil, errBadXref
			}
			index = append(index, n)
		}
	}
	for k := 1; k < len(index); k += 2 {
		if err := x.count(index[k]); err != nil {
			return nil, err
		}
	}

	r, err := x.decoded(d, x.data[start:end])
	if err != nil {
		return nil, err
	}
	if r == nil {
		return next, nil // not decodable by us: see checkXref
	}
	br := bufio.NewReader(r)
	buf := make([]byte, row)
	for k := 0; k < len(index); k += 2 {
		for e := int64(0); e < index[k+1]; e++ {
			if _, err := io.ReadFull(br, buf); err != nil {
				if x.bud.hit != nil {
					return nil, x.bud.limitOnly(nil)
				}
				return nil, errBadXref // fewer rows than /Index announces
			}
			typ := int64(1)
			if widths[0] > 0 {
				typ = field(buf[:widths[0]])
			}
			if typ != 1 {
				continue // free, in an object stream, or reserved
			}
			off := field(buf[widths[0] : widths[0]+widths[1]])
			gen := field(buf[widths[0]+widths[1]:])
			if !x.objAt(off, index[k]+e, gen) {
				return nil, errBadXref
			}
		}
	}
	return next, nil
}

// field reads a big-endian field of a cross-reference stream row.
func field(b []byte) int64 {
	var v int64
	for _, c := range b {
		v = v<<8 | int64(c)
	}
	return v
}

// decoded returns a reader of the decoded data of the cross-reference
// stream whose dictionary is d, every stage counted against the caps, or
// nil if we do not decode its filters or predictor.
func (x *xrefChecker) decoded(d pdict, raw []byte) (io.Reader, error) {
	filters, parms := filterChain(d)
	if len(filters) > maxFilterChain {
		return nil, model.Reject(model.ReasonPDFDecompressionLimit,
			fmt.Sprintf("(%d filtres enchaînés sur un même flux)", len(filters)))
	}
	encoded := int64(len(raw))
	var r io.Reader = &sliceReader{b: raw}
	for k, f := range filters {
		if classify(f) != filterDecoding {
			return nil, nil
		}
		var p map[string]int64
		if k < len(parms) {
			p = parms[k]
		}
		dr, err := decoder(f, r, p)
		if err != nil {
			return nil, errBadXref // a broken header: the table cannot be read
		}
		r = &countingReader{r: dr, s: &stage{b: x.bud, encoded: encoded}}
		if pred := p["Predictor"]; pred > 1 && (f == "FlateDecode" || f == "Fl" || f == "LZWDecode" || f == "LZW") {
			pr, ok := newPredictor(r, p)
			if !ok {
				return nil, nil
			}
			r = pr
		}
	}
	return r, nil
}

// predictor undoes a PNG (10 to 15) or TIFF (2) predictor, 8 bits per
// component, row by row.
type predictor struct {
	r         io.Reader
	png       bool
	bpp       int
	prev, cur []byte // rows, with the PNG tag byte at [0] when png
	out       []byte // decoded bytes not yet read
	err       error
}

// newPredictor returns the reader that undoes the predictor of parms, or
// false for one we do not decode.
func newPredictor(r io.Reader, parms map[string]int64) (*predictor, bool) {
	pred := parms["Predictor"]
	colors, bpc, columns := int64(1), int64(8), int64(1)
	if v, ok := parms["Colors"]; ok {
		colors = v
	}
	if v, ok := parms["BitsPerComponent"]; ok {
		bpc = v
	}
	if v, ok := parms["Columns"]; ok {
		columns = v
	}
	if bpc != 8 || colors < 1 || colors > 32 || columns < 1 || colors*columns > maxPredictorRow {
		return nil, false
	}
	rowLen := int(colors * columns)
	p := &predictor{r: r, bpp: int(colors)}
	switch {
	case pred == 2:
	case pred >= 10 && pred <= 15:
		p.png = true
		rowLen++
	default:
		return nil, false
	}
	p.prev, p.cur = make([]byte, rowLen), make([]byte, rowLen)
	return p, true
}

var errPredictor = errors.New("predictor: bad row tag")

// Read implements io.Reader. A final partial row ends the data.
func (p *predictor) Read(b []byte) (int, error) {
	for len(p.out) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		if _, err := io.ReadFull(p.r, p.cur); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			p.err = err
			continue
		}
		if p.png {
			row, prev := p.cur[1:], p.prev[1:]
			switch p.cur[0] {
			case 0:
			case 1:
				for i := p.bpp; i < len(row); i++ {
					row[i] += row[i-p.bpp]
				}
			case 2:
				for i := range row {
					row[i] += prev[i]
				}
			case 3:
				for i := range row {
					var left int
					if i >= p.bpp {
						left = int(row[i-p.bpp])
					}
					row[i] += byte((left + int(prev[i])) / 2)
				}
			case 4:
				for i := range row {
					var a, c int
					if i >= p.bpp {
						a, c = int(row[i-p.bpp]), int(prev[i-p.bpp])
					}
					row[i] += byte(paeth(a, int(prev[i]), c))
				}
			default:
				p.err = errPredictor
				continue
			}
			p.out = row // p.cur is not read into again before p.out is drained
		} else {
			for i := p.bpp; i < len(p.cur); i++ {
				p.cur[i] += p.cur[i-p.bpp]
			}
			p.out = p.cur
		}
		p.prev, p.cur = p.cur, p.prev
	}
	n := copy(b, p.out)
	p.out = p.out[n:]
	return n, nil
}

// paeth is the PNG Paeth predictor.
func paeth(a, b, c int) int {
	p := a + b - c
	pa, pb, pc := abs(p-a), abs(p-b), abs(p-c)
	switch {
	case pa <= pb && pa <= pc:
		return a
	case pb <= pc:
		return b
	}
	return c
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
