package pdfcheck

import (
	"bytes"
	"compress/zlib"
	"encoding/ascii85"
	"fmt"
	"strings"
	"sync"

	"github.com/etatcivil/etatcivil/internal/pdfgen"
)

// pdfDoc is a tiny PDF writer for tests: objects numbered from 1, a
// classic xref table with exact offsets, and a trailer.
type pdfDoc struct {
	version string
	objs    [][]byte
	trailer string // extra trailer entries
	noEOF   bool
}

func newDoc(version string) *pdfDoc { return &pdfDoc{version: version} }

func (d *pdfDoc) reserve() int { d.objs = append(d.objs, nil); return len(d.objs) }

func (d *pdfDoc) set(n int, body string) { d.objs[n-1] = []byte(body) }

func (d *pdfDoc) add(body string) int { n := d.reserve(); d.set(n, body); return n }

// setStream fills object n with a stream; dict holds the entries without
// << >> and without /Length, which is added.
func (d *pdfDoc) setStream(n int, dict string, data []byte) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<< %s /Length %d >>\nstream\n", dict, len(data))
	b.Write(data)
	b.WriteString("\nendstream")
	d.objs[n-1] = b.Bytes()
}

func (d *pdfDoc) addStream(dict string, data []byte) int {
	n := d.reserve()
	d.setStream(n, dict, data)
	return n
}

func (d *pdfDoc) bytes() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%%PDF-%s\n%%\xe2\xe3\xcf\xd3\n", d.version)
	offs := make([]int, len(d.objs))
	for i, o := range d.objs {
		offs[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n", i+1)
		if o == nil {
			o = []byte("null")
		}
		b.Write(o)
		b.WriteString("\nendobj\n")
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(d.objs)+1)
	for _, off := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d %s >>\nstartxref\n%d\n", len(d.objs)+1, d.trailer, xref)
	if !d.noEOF {
		b.WriteString("%%EOF\n")
	}
	return b.Bytes()
}

func deflate(b []byte) []byte {
	var out bytes.Buffer
	w, _ := zlib.NewWriterLevel(&out, zlib.BestCompression)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// opts shapes the documents built by buildDoc.
type opts struct {
	pages       int
	version     string
	catalog     string // extra catalog entries
	page        string // extra entries of every page
	content     []byte // raw content stream of every page (default: draw the image)
	contentDict string // filter entries of the content stream
	image       []byte // raw image data (default: a small deflated gray image)
	imageDict   string // filter entries of the image
	extraObjs   []string
	trailer     string
	xmp         string
}

// buildDoc builds a scan-like PDF: a catalog, a page tree and n pages,
// each drawing one image XObject.
func buildDoc(o opts) []byte {
	if o.version == "" {
		o.version = "1.7"
	}
	if o.pages == 0 {
		o.pages = 1
	}
	d := newDoc(o.version)
	cat := d.reserve()
	pages := d.reserve()
	var kids []string
	for i := 0; i < o.pages; i++ {
		img := o.image
		imgDict := o.imageDict
		if img == nil {
			img = grayImage(100, 100, int64(i))
			imgDict = "/Filter /FlateDecode"
		}
		im := d.addStream("/Type /XObject /Subtype /Image /Width 100 /Height 100 /ColorSpace /DeviceGray /BitsPerComponent 8 "+imgDict, img)
		content := o.content
		contentDict := o.contentDict
		if content == nil {
			content = deflate([]byte("q 595 0 0 842 0 0 cm /Im0 Do Q"))
			contentDict = "/Filter /FlateDecode"
		}
		c := d.addStream(contentDict, content)
		p := d.add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R %s >>", pages, im, c, o.page))
		kids = append(kids, fmt.Sprintf("%d 0 R", p))
	}
	d.set(pages, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), o.pages))
	for _, e := range o.extraObjs {
		d.add(e)
	}
	catalog := "<< /Type /Catalog /Pages " + fmt.Sprint(pages) + " 0 R " + o.catalog
	if o.xmp != "" {
		m := d.addStream("/Type /Metadata /Subtype /XML", []byte(o.xmp))
		catalog += fmt.Sprintf(" /Metadata %d 0 R", m)
	}
	d.set(cat, catalog+" >>")
	d.trailer = fmt.Sprintf("/Root %d 0 R %s", cat, o.trailer)
	return d.bytes()
}

// grayImage is a deflated 8-bit gray image with some noise, so that it
// compresses like a scan rather than like a blank page.
func grayImage(w, h int, seed int64) []byte {
	px := make([]byte, w*h)
	x := uint32(seed*7919 + 1)
	for i := range px {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		px[i] = byte(200 + x%56)
	}
	return deflate(px)
}

// zeroFlate is pdfgen.ZeroFlate: the bomb builder shared with other packages.
func zeroFlate(n int64) []byte { return pdfgen.ZeroFlate(n) }

var (
	bombOnce sync.Once
	bomb1G   []byte // ~1 MB of zlib that inflates to 1 GiB of zeros
)

// gigaBomb returns the shared 1 GiB bomb, built once per test binary.
func gigaBomb() []byte {
	bombOnce.Do(func() { bomb1G = zeroFlate(1 << 30) })
	return bomb1G
}

// deepChain wraps the giga bomb in k more layers of Flate.
func deepChain(k int) []byte {
	b := gigaBomb()
	for range k {
		b = deflate(b)
	}
	return b
}

func deflateBytes(b []byte) []byte { return deflate(b) }

// a85 encodes b for ASCII85Decode.
func a85(b []byte) []byte {
	out := make([]byte, ascii85.MaxEncodedLen(len(b)))
	n := ascii85.Encode(out, b)
	return append(out[:n], "~>"...)
}

// runLength encodes b for RunLengthDecode, as literal runs.
func runLength(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		k := min(len(b), 128)
		out = append(out, byte(k-1))
		out = append(out, b[:k]...)
		b = b[k:]
	}
	return append(out, 128)
}

// lzwBits writes LZW codes MSB first, with the width a PDF decoder uses
// when it reads them.
type lzwBits struct {
	out   []byte
	acc   uint64
	n     uint
	early int
	dnext int // the decoder's next free code when it reads the next code
	width uint
	codes int
}

func newLZWBits(early bool) *lzwBits {
	e := 0
	if early {
		e = 1
	}
	return &lzwBits{early: e, dnext: 258, width: 9}
}

func (w *lzwBits) emit(code int) {
	w.acc = w.acc<<w.width | uint64(code)
	w.n += w.width
	for w.n >= 8 {
		w.n -= 8
		w.out = append(w.out, byte(w.acc>>w.n))
	}
	w.codes++
	if w.codes >= 2 && code != 256 && code != 257 {
		if w.dnext < 4096 {
			w.dnext++
		}
		if w.dnext+w.early > 1<<w.width && w.width < 12 {
			w.width++
		}
	}
}

func (w *lzwBits) end() []byte {
	w.emit(257)
	if w.n > 0 {
		w.out = append(w.out, byte(w.acc<<(8-w.n)))
	}
	return w.out
}

// lzwEncode encodes b for LZWDecode (no Clear codes: b is small).
func lzwEncode(b []byte, early bool) []byte {
	w := newLZWBits(early)
	table := map[int]int{}
	next := 258
	cur := int(b[0])
	for _, c := range b[1:] {
		if code, ok := table[cur<<8|int(c)]; ok {
			cur = code
			continue
		}
		w.emit(cur)
		if next < 4096 {
			table[cur<<8|int(c)] = next
			next++
		}
		cur = int(c)
	}
	w.emit(cur)
	return w.end()
}

// lzwZeros encodes n zero bytes for LZWDecode, greedily as an encoder
// would, without materialising the zeros.
func lzwZeros(n int64) []byte {
	w := newLZWBits(true)
	maxLen := int64(1) // longest run of zeros with a code
	next := 258
	for n > 0 {
		m := min(n, maxLen)
		code := 0
		if m > 1 {
			code = int(m) + 256
		}
		w.emit(code)
		n -= m
		if next < 4096 && m == maxLen {
			next++
			maxLen++
		}
	}
	return w.end()
}

// brokenKids is a document whose page tree's /Kids is not an array.
func brokenKids() []byte {
	d := newDoc("1.7")
	d.add("<< /Type /Catalog /Pages 2 0 R >>")
	d.add("<< /Type /Pages /Kids 3 0 R /Count 1 >>")
	d.addStream("/Filter /FlateDecode", deflate([]byte("q Q")))
	d.trailer = "/Root 1 0 R"
	return d.bytes()
}

// deepNesting is a document with an object of 1000 nested arrays.
func deepNesting() []byte {
	return buildDoc(opts{extraObjs: []string{strings.Repeat("[", 1000) + strings.Repeat("]", 1000)}})
}

// xrefStreamDoc is a PDF 1.5 with a cross-reference stream whose
// dictionary has extra entries.
func xrefStreamDoc(extra string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.5\n")
	offs := []int{}
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
	}
	for i, o := range objs {
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	var rows []byte
	rows = append(rows, 0, 0, 0, 255)
	for _, off := range offs {
		rows = append(rows, 1, byte(off>>8), byte(off), 0)
	}
	rows = append(rows, 1, byte(xref>>8), byte(xref), 0)
	fmt.Fprintf(&b, "4 0 obj\n<< /Type /XRef /Size 5 /W [1 2 1] /Root 1 0 R %s /Length %d >>\nstream\n", extra, len(rows))
	b.Write(rows)
	fmt.Fprintf(&b, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", xref)
	return b.Bytes()
}

// objStmDoc is a good document plus an object stream holding body. With
// wrap, body is one object's text, numbered and deflated here; without,
// body is the raw (already encoded) stream data.
func objStmDoc(body []byte, dict string, wrap bool) []byte {
	first := 0
	data := body
	if wrap {
		head := "40 0 "
		first = len(head)
		data = deflate(append([]byte(head), body...))
	}
	return buildDoc(opts{extraObjs: []string{string(streamObj(
		fmt.Sprintf("/Type /ObjStm /N 1 /First %d %s", first, dict), data))}})
}

// streamObj is the text of a stream object body.
func streamObj(dict string, data []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<< %s /Length %d >>\nstream\n", dict, len(data))
	b.Write(data)
	b.WriteString("\nendstream")
	return b.Bytes()
}

// indirectLengthBomb puts the giga bomb in a content stream whose /Length
// is an indirect reference.
func indirectLengthBomb() []byte {
	bomb := gigaBomb()
	d := newDoc("1.7")
	d.add("<< /Type /Catalog /Pages 2 0 R >>")
	d.add("<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
	d.add("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>")
	var b bytes.Buffer
	b.WriteString("<< /Filter /FlateDecode /Length 5 0 R >>\nstream\n")
	b.Write(bomb)
	b.WriteString("\nendstream")
	d.objs = append(d.objs, b.Bytes())
	d.add(fmt.Sprint(len(bomb)))
	d.trailer = "/Root 1 0 R"
	return d.bytes()
}
