package pdfgen

import (
	"math"
	"math/rand/v2"
	"strings"
	"unicode"
)

// bitmap is a 1-bit raster, one bit per pixel, rows padded to whole bytes,
// most significant bit first (the layout of a PDF 1-bpc image). A set bit
// is ink; pack inverts it so that 1 means white as DeviceGray expects.
type bitmap struct {
	w, h, stride int
	pix          []byte
}

func newBitmap(w, h int) *bitmap {
	s := (w + 7) / 8
	return &bitmap{w: w, h: h, stride: s, pix: make([]byte, s*h)}
}

func (b *bitmap) set(x, y int) {
	if x < 0 || y < 0 || x >= b.w || y >= b.h {
		return
	}
	b.pix[y*b.stride+x>>3] |= 0x80 >> uint(x&7)
}

func (b *bitmap) clear(x, y int) {
	if x < 0 || y < 0 || x >= b.w || y >= b.h {
		return
	}
	b.pix[y*b.stride+x>>3] &^= 0x80 >> uint(x&7)
}

func (b *bitmap) get(x, y int) bool {
	if x < 0 || y < 0 || x >= b.w || y >= b.h {
		return false
	}
	return b.pix[y*b.stride+x>>3]&(0x80>>uint(x&7)) != 0
}

// hspan sets pixels x0..x1 inclusive on row y.
func (b *bitmap) hspan(x0, x1, y int) {
	if y < 0 || y >= b.h {
		return
	}
	if x0 < 0 {
		x0 = 0
	}
	if x1 >= b.w {
		x1 = b.w - 1
	}
	row := b.pix[y*b.stride:]
	for x := x0; x <= x1; x++ {
		if x&7 == 0 && x+7 <= x1 {
			row[x>>3] = 0xff
			x += 7
			continue
		}
		row[x>>3] |= 0x80 >> uint(x&7)
	}
}

func (b *bitmap) rect(x0, y0, x1, y1 int) {
	for y := y0; y <= y1; y++ {
		b.hspan(x0, x1, y)
	}
}

// packed returns the image bytes with 1 = white, 0 = black.
func (b *bitmap) packed() []byte {
	out := make([]byte, len(b.pix))
	for i, v := range b.pix {
		out[i] = ^v
	}
	// Padding bits at the end of each row: keep them white.
	if pad := b.stride*8 - b.w; pad > 0 {
		mask := byte(1<<uint(pad) - 1)
		for y := 0; y < b.h; y++ {
			out[y*b.stride+b.stride-1] |= mask
		}
	}
	return out
}

// pen draws round-ish strokes of a given radius, skipping a fraction of
// dabs to imitate uneven ink.
type pen struct {
	b     *bitmap
	r     int
	spans []int // half-width of the disk for dy = -r..r
	rng   *rand.Rand
	skip  float64
}

func newPen(b *bitmap, r int, rng *rand.Rand, skip float64) *pen {
	p := &pen{b: b, r: r, rng: rng, skip: skip}
	for dy := -r; dy <= r; dy++ {
		p.spans = append(p.spans, int(math.Sqrt(float64(r*r-dy*dy))+0.35))
	}
	return p
}

func (p *pen) dab(x, y int) {
	for i, hw := range p.spans {
		p.b.hspan(x-hw, x+hw, y+i-p.r)
	}
}

// line draws from (x0,y0) to (x1,y1).
func (p *pen) line(x0, y0, x1, y1 float64) {
	dx, dy := x1-x0, y1-y0
	n := int(math.Max(math.Abs(dx), math.Abs(dy)))
	step := 1
	if p.r >= 2 {
		step = p.r / 2
	}
	for i := 0; i <= n; i += step {
		if p.skip > 0 && p.rng.Float64() < p.skip {
			continue
		}
		t := 0.0
		if n > 0 {
			t = float64(i) / float64(n)
		}
		p.dab(int(x0+dx*t+0.5), int(y0+dy*t+0.5))
	}
}

// polyline draws through pts given as x,y pairs.
func (p *pen) polyline(pts []float64) {
	for i := 2; i+1 < len(pts); i += 2 {
		p.line(pts[i-2], pts[i-1], pts[i], pts[i+1])
	}
}

// 5x7 bitmap font, upper case, digits and the punctuation of civil-status
// headers. Each glyph is 7 rows of 5 bits.
var font5x7 = map[rune][7]string{
	'A':  {"01110", "10001", "10001", "11111", "10001", "10001", "10001"},
	'B':  {"11110", "10001", "10001", "11110", "10001", "10001", "11110"},
	'C':  {"01110", "10001", "10000", "10000", "10000", "10001", "01110"},
	'D':  {"11110", "10001", "10001", "10001", "10001", "10001", "11110"},
	'E':  {"11111", "10000", "10000", "11110", "10000", "10000", "11111"},
	'F':  {"11111", "10000", "10000", "11110", "10000", "10000", "10000"},
	'G':  {"01110", "10001", "10000", "10111", "10001", "10001", "01111"},
	'H':  {"10001", "10001", "10001", "11111", "10001", "10001", "10001"},
	'I':  {"01110", "00100", "00100", "00100", "00100", "00100", "01110"},
	'J':  {"00111", "00010", "00010", "00010", "00010", "10010", "01100"},
	'K':  {"10001", "10010", "10100", "11000", "10100", "10010", "10001"},
	'L':  {"10000", "10000", "10000", "10000", "10000", "10000", "11111"},
	'M':  {"10001", "11011", "10101", "10101", "10001", "10001", "10001"},
	'N':  {"10001", "10001", "11001", "10101", "10011", "10001", "10001"},
	'O':  {"01110", "10001", "10001", "10001", "10001", "10001", "01110"},
	'P':  {"11110", "10001", "10001", "11110", "10000", "10000", "10000"},
	'Q':  {"01110", "10001", "10001", "10001", "10101", "10010", "01101"},
	'R':  {"11110", "10001", "10001", "11110", "10100", "10010", "10001"},
	'S':  {"01111", "10000", "10000", "01110", "00001", "00001", "11110"},
	'T':  {"11111", "00100", "00100", "00100", "00100", "00100", "00100"},
	'U':  {"10001", "10001", "10001", "10001", "10001", "10001", "01110"},
	'V':  {"10001", "10001", "10001", "10001", "10001", "01010", "00100"},
	'W':  {"10001", "10001", "10001", "10101", "10101", "10101", "01010"},
	'X':  {"10001", "10001", "01010", "00100", "01010", "10001", "10001"},
	'Y':  {"10001", "10001", "10001", "01010", "00100", "00100", "00100"},
	'Z':  {"11111", "00001", "00010", "00100", "01000", "10000", "11111"},
	'0':  {"01110", "10001", "10011", "10101", "11001", "10001", "01110"},
	'1':  {"00100", "01100", "00100", "00100", "00100", "00100", "01110"},
	'2':  {"01110", "10001", "00001", "00010", "00100", "01000", "11111"},
	'3':  {"11111", "00010", "00100", "00010", "00001", "10001", "01110"},
	'4':  {"00010", "00110", "01010", "10010", "11111", "00010", "00010"},
	'5':  {"11111", "10000", "11110", "00001", "00001", "10001", "01110"},
	'6':  {"00110", "01000", "10000", "11110", "10001", "10001", "01110"},
	'7':  {"11111", "00001", "00010", "00100", "01000", "01000", "01000"},
	'8':  {"01110", "10001", "10001", "01110", "10001", "10001", "01110"},
	'9':  {"01110", "10001", "10001", "01111", "00001", "00010", "01100"},
	'.':  {"00000", "00000", "00000", "00000", "00000", "01100", "01100"},
	',':  {"00000", "00000", "00000", "00000", "01100", "00100", "01000"},
	'-':  {"00000", "00000", "00000", "11111", "00000", "00000", "00000"},
	':':  {"00000", "01100", "01100", "00000", "01100", "01100", "00000"},
	'/':  {"00001", "00001", "00010", "00100", "01000", "10000", "10000"},
	'(':  {"00010", "00100", "01000", "01000", "01000", "00100", "00010"},
	')':  {"01000", "00100", "00010", "00010", "00010", "00100", "01000"},
	'\'': {"01100", "00100", "01000", "00000", "00000", "00000", "00000"},
	'°':  {"01100", "10010", "10010", "01100", "00000", "00000", "00000"},
}

// accents maps an upper-case accented letter to its base glyph and mark.
var accents = map[rune]struct {
	base rune
	mark byte // a acute, g grave, c circumflex, t trema, s cedilla
}{
	'É': {'E', 'a'}, 'È': {'E', 'g'}, 'Ê': {'E', 'c'}, 'Ë': {'E', 't'},
	'À': {'A', 'g'}, 'Â': {'A', 'c'}, 'Î': {'I', 'c'}, 'Ï': {'I', 't'},
	'Ô': {'O', 'c'}, 'Ù': {'U', 'g'}, 'Û': {'U', 'c'}, 'Ü': {'U', 't'},
	'Ç': {'C', 's'}, 'Œ': {'O', 0}, 'Æ': {'A', 0},
}

var marks = map[byte][][2]int{
	'a': {{3, -2}, {2, -1}},
	'g': {{1, -2}, {2, -1}},
	'c': {{2, -2}, {1, -1}, {3, -1}},
	't': {{1, -1}, {3, -1}},
	's': {{2, 7}, {1, 8}},
}

// textWidth is the width in pixels of s printed at scale px per font dot.
func textWidth(s string, scale int) int {
	n := len([]rune(s))
	if n == 0 {
		return 0
	}
	return (n*6 - 1) * scale
}

// text prints s (upper-cased) with its top-left corner at (x, y), each font
// dot a scale×scale square. Unknown characters print as spaces.
func (b *bitmap) text(x, y, scale int, s string) {
	for _, r := range strings.ToUpper(s) {
		r = unicode.ToUpper(r)
		var mark byte
		if a, ok := accents[r]; ok {
			r, mark = a.base, a.mark
		}
		if g, ok := font5x7[r]; ok {
			for gy, row := range g {
				for gx := 0; gx < 5; gx++ {
					if row[gx] == '1' {
						b.rect(x+gx*scale, y+gy*scale, x+gx*scale+scale-1, y+gy*scale+scale-1)
					}
				}
			}
			for _, m := range marks[mark] {
				b.rect(x+m[0]*scale, y+m[1]*scale, x+m[0]*scale+scale-1, y+m[1]*scale+scale-1)
			}
		}
		x += 6 * scale
	}
}
