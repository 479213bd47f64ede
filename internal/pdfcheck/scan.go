package pdfcheck

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	"github.com/etatcivil/etatcivil/internal/model"
)

// maxNesting bounds how deep arrays and dictionaries may nest. Real files
// stay under ten; deep nesting only serves to exhaust a recursive parser's
// stack, which in Go is a fatal error, not a panic.
const maxNesting = 64

// activeNames are the name tokens that mean active content, and
// embeddedNames those that mean attached files.
var (
	activeNames = map[string]bool{
		"JavaScript": true, "JS": true, "OpenAction": true, "AA": true,
		"Launch": true, "URI": true, "SubmitForm": true, "XFA": true,
		"GoToR": true, "ImportData": true,
	}
	embeddedNames = map[string]bool{
		"EmbeddedFiles": true, "EmbeddedFile": true, "FileAttachment": true,
	}
)

// findings is what the scanner saw that is forbidden, besides the caps.
type findings struct {
	encrypted bool
	active    string // first active-content name seen, "" if none
	embedded  string // first embedded-file name seen, "" if none
}

// name records one name token (already #-decoded, without the slash).
func (f *findings) name(n string) {
	switch {
	case f.active == "" && activeNames[n]:
		f.active = n
	case f.embedded == "" && embeddedNames[n]:
		f.embedded = n
	}
}

// rejection returns the rejection the findings call for, most serious
// first, or nil.
func (f *findings) rejection() error {
	switch {
	case f.encrypted:
		return model.Reject(model.ReasonPDFEncrypted, "")
	case f.active != "":
		return model.Reject(model.ReasonPDFActiveContent, "(/"+f.active+")")
	case f.embedded != "":
		return model.Reject(model.ReasonPDFEmbeddedFiles, "(/"+f.embedded+")")
	}
	return nil
}

// Token kinds of the raw-file lexer.
type tokKind int

const (
	tEOF tokKind = iota
	tName
	tInt
	tReal
	tString
	tKeyword
	tDictOpen
	tDictClose
	tArrayOpen
	tArrayClose
	tOther // a stray delimiter such as '{' or ')'
)

type token struct {
	kind tokKind
	s    string // name (decoded) or keyword
	n    int64  // integer value
	end  int    // offset just past the token
}

// Parsed values. Only what the scanner needs is kept: names, integers,
// references, arrays and dictionaries; strings and reals are placeholders.
type (
	pname string
	pref  struct{ num, gen int64 }
	pdict map[string]any
)

// scanner walks the raw bytes of a PDF.
type scanner struct {
	data  []byte
	pos   int
	peek  []token // pushed-back tokens
	found *findings
	bud   *budget
	index map[int64]int // object number -> offset of "obj", built lazily
}

func isWhite(c byte) bool {
	return c == 0 || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '
}

func isDelim(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

// decodeName resolves #xx escapes, so /Java#53cript is /JavaScript.
func decodeName(raw []byte) string {
	if bytes.IndexByte(raw, '#') < 0 {
		return string(raw)
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == '#' && i+2 < len(raw) {
			hi, ok1 := unhex(raw[i+1])
			lo, ok2 := unhex(raw[i+2])
			if ok1 && ok2 {
				out = append(out, hi<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, raw[i])
	}
	return string(out)
}

// skipString skips a literal string starting at s.pos (on '(').
func (s *scanner) skipString() {
	depth := 0
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		s.pos++
		switch c {
		case '\\':
			s.pos++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return
			}
		}
	}
}

// lex returns the next token, flagging every name it meets.
func (s *scanner) lex() token {
	if n := len(s.peek); n > 0 {
		t := s.peek[n-1]
		s.peek = s.peek[:n-1]
		return t
	}
	d := s.data
	for s.pos < len(d) {
		c := d[s.pos]
		switch {
		case isWhite(c):
			s.pos++
			continue
		case c == '%':
			for s.pos < len(d) && d[s.pos] != '\n' && d[s.pos] != '\r' {
				s.pos++
			}
			continue
		case c == '(':
			s.skipString()
			return token{kind: tString, end: s.pos}
		case c == '<':
			if s.pos+1 < len(d) && d[s.pos+1] == '<' {
				s.pos += 2
				return token{kind: tDictOpen, end: s.pos}
			}
			if i := bytes.IndexByte(d[s.pos:], '>'); i >= 0 {
				s.pos += i + 1
			} else {
				s.pos = len(d)
			}
			return token{kind: tString, end: s.pos}
		case c == '>':
			if s.pos+1 < len(d) && d[s.pos+1] == '>' {
				s.pos += 2
				return token{kind: tDictClose, end: s.pos}
			}
			s.pos++
			return token{kind: tOther, end: s.pos}
		case c == '[':
			s.pos++
			return token{kind: tArrayOpen, end: s.pos}
		case c == ']':
			s.pos++
			return token{kind: tArrayClose, end: s.pos}
		case c == '/':
			start := s.pos + 1
			s.pos = start
			for s.pos < len(d) && !isWhite(d[s.pos]) && !isDelim(d[s.pos]) {
				s.pos++
			}
			n := decodeName(d[start:s.pos])
			s.found.name(n)
			return token{kind: tName, s: n, end: s.pos}
		case isDelim(c):
			s.pos++
			return token{kind: tOther, end: s.pos}
		}
		start := s.pos
		for s.pos < len(d) && !isWhite(d[s.pos]) && !isDelim(d[s.pos]) {
			s.pos++
		}
		w := d[start:s.pos]
		if v, err := strconv.ParseInt(string(w), 10, 64); err == nil {
			return token{kind: tInt, n: v, end: s.pos}
		}
		if _, err := strconv.ParseFloat(string(w), 64); err == nil {
			return token{kind: tReal, end: s.pos}
		}
		return token{kind: tKeyword, s: string(w), end: s.pos}
	}
	return token{kind: tEOF, end: s.pos}
}

func (s *scanner) unlex(t token) { s.peek = append(s.peek, t) }

// errTooDeep is returned when nesting exceeds maxNesting.
var errTooDeep = model.Reject(model.ReasonPDFMalformed, "(imbrication trop profonde)")

// value parses one object starting with t. Keywords other than the
// value-like ones come back as a token, for the caller to act on.
func (s *scanner) value(t token, depth int) (any, error) {
	if depth > maxNesting {
		return nil, errTooDeep
	}
	switch t.kind {
	case tName:
		return pname(t.s), nil
	case tInt:
		// "N G R" is a reference.
		t2 := s.lex()
		if t2.kind == tInt {
			t3 := s.lex()
			if t3.kind == tKeyword && t3.s == "R" {
				return pref{t.n, t2.n}, nil
			}
			s.unlex(t3)
		}
		s.unlex(t2)
		return t.n, nil
	case tArrayOpen:
		var arr []any
		for {
			t := s.lex()
			if t.kind == tArrayClose || t.kind == tEOF {
				return arr, nil
			}
			if t.kind == tKeyword && isStructural(t.s) {
				s.unlex(t) // an unterminated array; let the caller resync
				return arr, nil
			}
			v, err := s.value(t, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
	case tDictOpen:
		d := pdict{}
		for {
			k := s.lex()
			if k.kind == tDictClose || k.kind == tEOF {
				return d, nil
			}
			if k.kind == tKeyword && isStructural(k.s) {
				s.unlex(k)
				return d, nil
			}
			if k.kind != tName {
				// Not a key: parse it to keep nesting right, and move on.
				if _, err := s.value(k, depth+1); err != nil {
					return nil, err
				}
				continue
			}
			vt := s.lex()
			if vt.kind == tDictClose {
				d[k.s] = nil
				return d, nil
			}
			v, err := s.value(vt, depth+1)
			if err != nil {
				return nil, err
			}
			d[k.s] = v
		}
	}
	return t, nil
}

// isStructural reports the keywords that can never be inside an object,
// where an unterminated dictionary or array must stop.
func isStructural(k string) bool {
	switch k {
	case "obj", "endobj", "stream", "endstream", "trailer", "xref", "startxref":
		return true
	}
	return false
}

// scan walks every object in the file, draining each stream through its
// filters and recording forbidden names. It returns the first rejection.
func (s *scanner) scan() error {
	var last any
	for {
		t := s.lex()
		if t.kind == tEOF {
			return nil
		}
		if t.kind == tKeyword {
			switch t.s {
			case "stream":
				d, _ := last.(pdict)
				s.pos, s.peek = t.end, s.peek[:0]
				if err := s.stream(d); err != nil {
					return err
				}
				last = nil
				continue
			case "trailer":
				nt := s.lex()
				v, err := s.value(nt, 0)
				if err != nil {
					return err
				}
				if d, ok := v.(pdict); ok {
					if _, enc := d["Encrypt"]; enc {
						s.found.encrypted = true
					}
				}
				last = nil
				continue
			}
		}
		v, err := s.value(t, 0)
		if err != nil {
			return err
		}
		last = v
	}
}

var eolEndstream = []byte("endstream")

// stream handles the data of a stream whose dictionary is d (nil if the
// "stream" keyword did not follow a dictionary), positioned just after
// the keyword.
func (s *scanner) stream(d pdict) error {
	start, end := s.streamBounds(d)
	raw := s.data[start:end]

	if typ, _ := d["Type"].(pname); typ == "XRef" {
		if _, enc := d["Encrypt"]; enc {
			s.found.encrypted = true
		}
	}
	filters, parms := filterChain(d)
	var sink *nameSink
	if typ, _ := d["Type"].(pname); typ == "ObjStm" {
		sink = &nameSink{found: s.found}
	}
	if sink == nil {
		return s.bud.drain(raw, filters, parms, nil)
	}
	err := s.bud.drain(raw, filters, parms, sink)
	sink.flush()
	return err
}

// streamBounds returns where the data of a stream whose dictionary is d
// starts and ends, s being positioned just after the "stream" keyword,
// and moves s past "endstream". /Length is trusted if "endstream"
// follows it; otherwise the data runs to the next "endstream".
func (s *scanner) streamBounds(d pdict) (start, end int) {
	start = s.pos
	if start < len(s.data) && s.data[start] == '\r' {
		start++
	}
	if start < len(s.data) && s.data[start] == '\n' {
		start++
	}
	end = -1
	if n, ok := s.length(d["Length"]); ok && n >= 0 && int64(start)+n <= int64(len(s.data)) {
		e := start + int(n)
		j := e
		for j < len(s.data) && isWhite(s.data[j]) {
			j++
		}
		if bytes.HasPrefix(s.data[j:], eolEndstream) {
			end = e
			s.pos = j + len(eolEndstream)
		}
	}
	if end < 0 {
		if i := bytes.Index(s.data[start:], eolEndstream); i >= 0 {
			end = start + i
			s.pos = end + len(eolEndstream)
		} else {
			end = len(s.data)
			s.pos = end
		}
	}
	return start, end
}

// filterChain reads /Filter and /DecodeParms (name or array of names, dict
// or array of dicts).
func filterChain(d pdict) ([]string, []map[string]int64) {
	var filters []string
	switch f := d["Filter"].(type) {
	case pname:
		filters = []string{string(f)}
	case []any:
		for _, v := range f {
			n, _ := v.(pname)
			filters = append(filters, string(n)) // "" for junk: unknown, counted
		}
	}
	intParms := func(v any) map[string]int64 {
		pd, ok := v.(pdict)
		if !ok {
			return nil
		}
		m := map[string]int64{}
		for k, x := range pd {
			if n, ok := x.(int64); ok {
				m[k] = n
			}
		}
		return m
	}
	var parms []map[string]int64
	switch p := d["DecodeParms"].(type) {
	case pdict:
		parms = []map[string]int64{intParms(p)}
	case []any:
		for _, v := range p {
			parms = append(parms, intParms(v))
		}
	}
	return filters, parms
}

// objRE finds object headers, to resolve an indirect /Length.
var objRE = regexp.MustCompile(`(\d+)[\x00\t\n\f\r ]+\d+[\x00\t\n\f\r ]+obj`)

// length resolves a /Length value: a direct integer, or a reference to
// an object holding one.
func (s *scanner) length(v any) (int64, bool) {
	switch l := v.(type) {
	case int64:
		return l, true
	case pref:
		if s.index == nil {
			s.index = map[int64]int{}
			for _, m := range objRE.FindAllSubmatchIndex(s.data, -1) {
				if n, err := strconv.ParseInt(string(s.data[m[2]:m[3]]), 10, 64); err == nil {
					s.index[n] = m[1]
				}
			}
		}
		off, ok := s.index[l.num]
		if !ok {
			return 0, false
		}
		sub := &scanner{data: s.data, pos: off, found: &findings{}}
		t := sub.lex()
		return t.n, t.kind == tInt
	}
	return 0, false
}

// nameSink looks for name tokens in decoded object-stream data as it goes
// by, skipping strings and comments, without keeping the data.
type nameSink struct {
	found   *findings
	state   int // 0 normal, 1 comment, 2 string, 3 hex string, 4 name
	depth   int // literal string nesting
	escape  bool
	afterLT bool // previous byte was '<' in normal state
	name    []byte
	long    bool // the name is longer than any we look for
}

const maxNameLen = 64

// Write implements io.Writer.
func (n *nameSink) Write(p []byte) (int, error) {
	for _, c := range p {
		n.byte(c)
	}
	return len(p), nil
}

func (n *nameSink) byte(c byte) {
	switch n.state {
	case 1:
		if c == '\n' || c == '\r' {
			n.state = 0
		}
		return
	case 2:
		switch {
		case n.escape:
			n.escape = false
		case c == '\\':
			n.escape = true
		case c == '(':
			n.depth++
		case c == ')':
			n.depth--
			if n.depth == 0 {
				n.state = 0
			}
		}
		return
	case 3:
		if c == '>' {
			n.state = 0
		}
		return
	case 4:
		if !isWhite(c) && !isDelim(c) {
			if len(n.name) < maxNameLen {
				n.name = append(n.name, c)
			} else {
				n.long = true
			}
			return
		}
		n.flush()
	}
	// Normal state.
	if n.afterLT {
		n.afterLT = false
		if c != '<' {
			n.state = 3
			if c == '>' {
				n.state = 0
			}
			return
		}
		return
	}
	switch c {
	case '%':
		n.state = 1
	case '(':
		n.state, n.depth, n.escape = 2, 1, false
	case '<':
		n.afterLT = true
	case '/':
		n.state, n.name, n.long = 4, n.name[:0], false
	}
}

// flush ends a pending name token.
func (n *nameSink) flush() {
	if n.state == 4 {
		if !n.long {
			n.found.name(decodeName(n.name))
		}
		n.state = 0
	}
}

// scanObjects runs the scanner over data with the budget of lim.
func scanObjects(data []byte, lim Limits) (int64, error) {
	f := &findings{}
	s := &scanner{data: data, found: f, bud: &budget{lim: lim}}
	if err := s.scan(); err != nil {
		return s.bud.doc, fmt.Errorf("scan: %w", err)
	}
	if err := f.rejection(); err != nil {
		return s.bud.doc, fmt.Errorf("scan: %w", err)
	}
	return s.bud.doc, nil
}
