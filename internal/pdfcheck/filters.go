package pdfcheck

import (
	"bufio"
	"compress/flate"
	"compress/zlib"
	"errors"
	"fmt"
	"io"

	"github.com/etatcivil/etatcivil/internal/model"
)

// maxFilterChain bounds how many filters one stream may chain. Real scans
// use one (two at most, ASCII85 over Flate); a long chain only serves to
// multiply decoding work.
const maxFilterChain = 8

// limitError reports which cap a stream hit. It travels up through the
// decoders as a read error; budget.hit keeps it in case one swallows it.
type limitError struct{ detail string }

func (e *limitError) Error() string { return "decompression limit: " + e.detail }

// budget tracks the decoded bytes of one document against Limits. Every
// filter stage of every stream counts: the work of an intermediate stage is
// as real as the last one's.
type budget struct {
	lim Limits
	doc int64
	// hit is the first cap exceeded. It is sticky because a decoder may
	// swallow the error a counting stage under it returned.
	hit *limitError
}

// stage counts the output of one filter stage of one stream whose encoded
// size is encoded. It is an io.Writer that discards, and fails as soon as
// a cap is exceeded.
type stage struct {
	b       *budget
	encoded int64
	n       int64
}

func (s *stage) add(n int64) error {
	if s.b.hit != nil {
		return s.b.hit
	}
	s.n += n
	s.b.doc += n
	lim := s.b.lim
	switch {
	case s.n > lim.MaxStreamDecoded:
		s.b.hit = &limitError{fmt.Sprintf("un flux dépasse %d octets décodés", lim.MaxStreamDecoded)}
	case s.b.doc > lim.MaxDocDecoded:
		s.b.hit = &limitError{fmt.Sprintf("le document dépasse %d octets décodés", lim.MaxDocDecoded)}
	case s.n > lim.RatioGrace && s.n/max(s.encoded, 1) > lim.MaxRatio:
		s.b.hit = &limitError{fmt.Sprintf("un flux de %d octets dépasse un taux de %d:1", s.encoded, lim.MaxRatio)}
	}
	if s.b.hit != nil {
		return s.b.hit
	}
	return nil
}

// Write implements io.Writer: it counts p and throws it away.
func (s *stage) Write(p []byte) (int, error) {
	if err := s.add(int64(len(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// countingReader counts what an intermediate filter stage produces.
type countingReader struct {
	r io.Reader
	s *stage
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		if lerr := c.s.add(int64(n)); lerr != nil {
			return n, lerr
		}
	}
	return n, err
}

// filterKind classifies a /Filter name.
type filterKind int

const (
	filterUnknown  filterKind = iota
	filterDecoding            // we decode it, streaming
	filterTerminal            // an image codec: counted, not decoded
)

// classify returns how the scanner treats the filter name (without the
// slash), accepting the abbreviations allowed in inline images.
func classify(name string) filterKind {
	switch name {
	case "FlateDecode", "Fl", "LZWDecode", "LZW", "ASCIIHexDecode", "AHx",
		"ASCII85Decode", "A85", "RunLengthDecode", "RL":
		return filterDecoding
	case "DCTDecode", "DCT", "JPXDecode", "CCITTFaxDecode", "CCF", "JBIG2Decode":
		return filterTerminal
	}
	return filterUnknown
}

// decoder wraps r with the streaming decoder of a filterDecoding name.
// parms are the filter's integer /DecodeParms (EarlyChange is the only one
// that changes how many bytes come out; predictors are not undone because
// they only shrink the output slightly).
func decoder(name string, r io.Reader, parms map[string]int64) (io.Reader, error) {
	switch name {
	case "FlateDecode", "Fl":
		return newFlateReader(r)
	case "LZWDecode", "LZW":
		early := true
		if v, ok := parms["EarlyChange"]; ok && v == 0 {
			early = false
		}
		return newLZWReader(r, early), nil
	case "ASCIIHexDecode", "AHx":
		return &hexReader{r: bufio.NewReader(r)}, nil
	case "ASCII85Decode", "A85":
		return &a85Reader{r: bufio.NewReader(r)}, nil
	case "RunLengthDecode", "RL":
		return &rlReader{r: bufio.NewReader(r)}, nil
	}
	return nil, fmt.Errorf("filter %q: not decodable", name)
}

// newFlateReader reads zlib data, or raw deflate data as some writers
// produce, telling them apart by the zlib header.
func newFlateReader(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	h, err := br.Peek(2)
	if err == nil && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
		zr, zerr := zlib.NewReader(br)
		if zerr != nil {
			return nil, fmt.Errorf("zlib header: %w", zerr)
		}
		return zr, nil
	}
	return flate.NewReader(br), nil
}

// hexReader decodes ASCIIHexDecode, stopping at '>'.
type hexReader struct {
	r    *bufio.Reader
	done bool
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (h *hexReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && !h.done {
		var digits [2]byte
		got := 0
		for got < 2 {
			c, err := h.r.ReadByte()
			if err != nil {
				h.done = true
				break
			}
			if c == '>' {
				h.done = true
				break
			}
			if isWhite(c) {
				continue
			}
			v, ok := unhex(c)
			if !ok {
				return n, fmt.Errorf("ASCIIHexDecode: bad byte %#x", c)
			}
			digits[got] = v
			got++
		}
		if got == 0 {
			break
		}
		p[n] = digits[0]<<4 | digits[1] // a lone last digit is followed by 0
		n++
	}
	if n == 0 && h.done {
		return 0, io.EOF
	}
	return n, nil
}

// a85Reader decodes ASCII85Decode, stopping at '~'.
type a85Reader struct {
	r    *bufio.Reader
	out  [4]byte
	nout int
	off  int
	done bool
}

func (a *a85Reader) fill() error {
	var v uint32
	got := 0
	for got < 5 {
		c, err := a.r.ReadByte()
		if err != nil || c == '~' {
			a.done = true
			break
		}
		if isWhite(c) {
			continue
		}
		if c == 'z' && got == 0 {
			a.out = [4]byte{}
			a.nout, a.off = 4, 0
			return nil
		}
		if c < '!' || c > 'u' {
			return fmt.Errorf("ASCII85Decode: bad byte %#x", c)
		}
		v = v*85 + uint32(c-'!')
		got++
	}
	if got == 0 {
		a.nout, a.off = 0, 0
		return nil
	}
	if got == 1 {
		return errors.New("ASCII85Decode: lone final byte")
	}
	for i := got; i < 5; i++ {
		v = v*85 + 84
	}
	a.out = [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	a.nout, a.off = got-1, 0
	return nil
}

func (a *a85Reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if a.off == a.nout {
			if a.done {
				break
			}
			if err := a.fill(); err != nil {
				return n, err
			}
			continue
		}
		c := copy(p[n:], a.out[a.off:a.nout])
		a.off += c
		n += c
	}
	if n == 0 && a.done {
		return 0, io.EOF
	}
	return n, nil
}

// rlReader decodes RunLengthDecode.
type rlReader struct {
	r    *bufio.Reader
	lit  int  // literal bytes left to copy
	rep  int  // repeats of b left
	b    byte // the repeated byte
	done bool
}

func (l *rlReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case l.lit > 0:
			c, err := l.r.ReadByte()
			if err != nil {
				l.done, l.lit = true, 0
				continue
			}
			p[n] = c
			n++
			l.lit--
		case l.rep > 0:
			k := min(l.rep, len(p)-n)
			for i := range k {
				p[n+i] = l.b
			}
			n += k
			l.rep -= k
		case l.done:
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		default:
			c, err := l.r.ReadByte()
			if err != nil || c == 128 {
				l.done = true
				continue
			}
			if c < 128 {
				l.lit = int(c) + 1
				continue
			}
			b, err := l.r.ReadByte()
			if err != nil {
				l.done = true
				continue
			}
			l.b, l.rep = b, 257-int(c)
		}
	}
	return n, nil
}

// lzwReader decodes PDF's LZWDecode (MSB-first codes of 9 to 12 bits,
// Clear = 256, EOD = 257, with or without "early change").
type lzwReader struct {
	r      *bufio.Reader
	early  bool
	acc    uint32
	nbits  uint
	width  uint
	prefix [4096]uint16
	suffix [4096]byte
	first  [4096]byte
	next   int
	prev   int
	stack  []byte // decoded bytes of the current code, reversed
	done   bool
}

func newLZWReader(r io.Reader, early bool) *lzwReader {
	l := &lzwReader{r: bufio.NewReader(r), early: early, stack: make([]byte, 0, 4096)}
	l.reset()
	return l
}

func (l *lzwReader) reset() {
	for i := range 256 {
		l.suffix[i], l.first[i] = byte(i), byte(i)
	}
	l.next, l.width, l.prev = 258, 9, -1
}

func (l *lzwReader) code() (int, error) {
	for l.nbits < l.width {
		c, err := l.r.ReadByte()
		if err != nil {
			return 0, err
		}
		l.acc = l.acc<<8 | uint32(c)
		l.nbits += 8
	}
	l.nbits -= l.width
	return int(l.acc>>l.nbits) & (1<<l.width - 1), nil
}

// push appends code's string, reversed, to the stack.
func (l *lzwReader) push(code int) {
	for code >= 256 {
		l.stack = append(l.stack, l.suffix[code])
		code = int(l.prefix[code])
	}
	l.stack = append(l.stack, byte(code))
}

func (l *lzwReader) step() error {
	c, err := l.code()
	if err != nil {
		l.done = true
		return nil
	}
	switch {
	case c == 256:
		l.reset()
		return nil
	case c == 257:
		l.done = true
		return nil
	case l.prev < 0:
		if c > 255 {
			return errors.New("LZWDecode: bad first code")
		}
		l.stack = append(l.stack, byte(c))
		l.prev = c
		return nil
	case c < l.next:
		l.push(c)
	case c == l.next:
		// KwKwK: the previous string plus its own first byte.
		l.stack = append(l.stack, l.first[l.prev])
		l.push(l.prev)
	default:
		return errors.New("LZWDecode: bad code")
	}
	if l.next < 4096 {
		first := l.stack[len(l.stack)-1]
		l.prefix[l.next] = uint16(l.prev)
		l.suffix[l.next] = first
		l.first[l.next] = l.first[l.prev]
		l.next++
	}
	l.prev = c
	shift := l.next
	if l.early {
		shift++
	}
	if shift > 1<<l.width && l.width < 12 {
		l.width++
	}
	return nil
}

func (l *lzwReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(l.stack) > 0 {
			for n < len(p) && len(l.stack) > 0 {
				p[n] = l.stack[len(l.stack)-1]
				l.stack = l.stack[:len(l.stack)-1]
				n++
			}
			continue
		}
		if l.done {
			break
		}
		if err := l.step(); err != nil {
			return n, err
		}
	}
	if n == 0 && l.done {
		return 0, io.EOF
	}
	return n, nil
}

// drain passes one stream's raw bytes through its filter chain into the
// budget, without keeping any decoded byte. sink, if not nil, also sees the
// fully decoded bytes (used to look for names inside object streams).
// Decoding errors end the stream quietly: the structure check is pdfcpu's
// job; only the caps produce an error here.
func (b *budget) drain(raw []byte, filters []string, parms []map[string]int64, sink io.Writer) error {
	if len(filters) > maxFilterChain {
		return model.Reject(model.ReasonPDFDecompressionLimit,
			fmt.Sprintf("(%d filtres enchaînés sur un même flux)", len(filters)))
	}
	encoded := int64(len(raw))
	var r io.Reader = &sliceReader{b: raw}
	for i, f := range filters {
		switch classify(f) {
		case filterTerminal, filterUnknown:
			// An image codec (or a filter we do not know, such as
			// /Crypt): what comes out is not ours to decode; count
			// what goes in.
			last := &stage{b: b, encoded: encoded}
			_, err := io.Copy(last, r)
			return b.limitOnly(err)
		}
		var p map[string]int64
		if i < len(parms) {
			p = parms[i]
		}
		d, err := decoder(f, r, p)
		if err != nil {
			return nil // a broken header: nothing decodes, nothing to count
		}
		if i < len(filters)-1 {
			d = &countingReader{r: d, s: &stage{b: b, encoded: encoded}}
		}
		r = d
	}
	last := &stage{b: b, encoded: encoded}
	var w io.Writer = last
	if sink != nil {
		w = io.MultiWriter(last, sink)
	}
	_, err := io.Copy(w, r)
	return b.limitOnly(err)
}

// limitOnly turns a cap that was hit into a rejection and drops any other
// decoding error.
func (b *budget) limitOnly(error) error {
	if b.hit != nil {
		return model.Reject(model.ReasonPDFDecompressionLimit, "("+b.hit.detail+")")
	}
	return nil
}

// sliceReader is bytes.Reader without the seeking, so io.Copy cannot take
// a WriterTo shortcut around the counting.
type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}
