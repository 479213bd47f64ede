package pdfgen

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf16"
)

// ScanOptions describes a simulated scanned civil-status act.
// The zero value gives a one-page bitonal A4 scan at 200 dpi.
type ScanOptions struct {
	// Seed makes the output deterministic: the same options give the same bytes.
	Seed int64
	// Pages is the number of pages, 1 if zero.
	Pages int
	// DPI is the scan resolution, 200 if zero.
	DPI int
	// Paper is "A4" (the default) or "A3".
	Paper string
	// Grey makes 8-bit greyscale JPEG pages (DCTDecode) instead of 1-bit
	// Flate pages. Greyscale is slower and larger.
	Grey bool
	// Header lines are printed at the top of the first page, e.g.
	// "MAIRIE DE RODEZ", "ACTE DE NAISSANCE N° 42". French accents are kept.
	Header []string
	// Margin is a short text written in the left column of the first page
	// (act number and surname, as registers have), optional.
	Margin []string
	// Stamp, if set, is printed inside a round town-hall stamp on the last page.
	Stamp string
	// Noise is the fraction of the page covered with scanner specks;
	// 0.0004 if zero, negative for none.
	Noise float64
	// TargetSize, if positive, is the file size in bytes to aim for: extra
	// scanner noise is added to bitonal pages until the file is within
	// about 15 % of it (it is never made smaller than the clean scan).
	// Ignored for greyscale.
	TargetSize int
	// Quality is the JPEG quality of greyscale pages, 60 if zero.
	Quality int
	// PDFA adds an XMP metadata stream claiming PDF/A-2B conformance and a
	// matching Info dictionary. (Only a claim: no output intent is written.)
	PDFA bool
	// Title goes in the Info dictionary (and XMP dc:title).
	Title string
	// Date is the scan date (Info CreationDate); 2024-01-02 10:00 UTC if zero.
	Date time.Time
	// Version is the PDF header version, "1.7" if empty.
	Version string

	// The fields below build hostile files for tests.

	// CatalogExtra is appended to the document catalog dictionary, e.g.
	// "/OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >>".
	CatalogExtra string
	// Encrypt encrypts the file with the standard security handler (RC4
	// 128-bit, revision 3), with an empty user password and OwnerPassword,
	// so it opens without a password but is encrypted.
	Encrypt bool
	// OwnerPassword is the owner password when Encrypt is set ("proprietaire" if empty).
	OwnerPassword string
}

// Scan page geometry in millimetres.
var paperMM = map[string][2]float64{"A4": {210, 297}, "A3": {297, 420}}

func (o *ScanOptions) defaults() {
	if o.Pages <= 0 {
		o.Pages = 1
	}
	if o.DPI <= 0 {
		o.DPI = 200
	}
	if _, ok := paperMM[o.Paper]; !ok {
		o.Paper = "A4"
	}
	if o.Noise == 0 {
		o.Noise = 0.0004
	}
	if o.Noise < 0 {
		o.Noise = 0
	}
	if o.Quality <= 0 || o.Quality > 100 {
		o.Quality = 60
	}
	if o.Date.IsZero() {
		o.Date = time.Date(2024, 1, 2, 10, 0, 0, 0, time.UTC)
	}
	if o.Version == "" {
		o.Version = "1.7"
	}
}

// ScanPDF returns a PDF that looks like a scanned act: each page is one
// full-page image of white paper with specks, a printed header, lines of
// handwriting, signatures and optionally a stamp. It is deterministic in opt.
func ScanPDF(opt ScanOptions) []byte {
	opt.defaults()
	rng := rand.New(rand.NewPCG(uint64(opt.Seed), 0x5ca11ed))
	mm := paperMM[opt.Paper]
	wpt, hpt := mm[0]/25.4*72, mm[1]/25.4*72
	wpx := int(math.Round(mm[0] / 25.4 * float64(opt.DPI)))
	hpx := int(math.Round(mm[1] / 25.4 * float64(opt.DPI)))

	// Page images, each from its own generator so that TargetSize retries
	// do not shift later pages.
	type img struct {
		dict string
		data []byte
	}
	imgs := make([]img, opt.Pages)
	perPage := 0
	if opt.TargetSize > 0 {
		perPage = (opt.TargetSize - 1500 - 400*opt.Pages) / opt.Pages
		if opt.PDFA {
			perPage -= 1200 / opt.Pages
		}
	}
	for i := range imgs {
		prng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		bm := newBitmap(wpx, hpx)
		renderPage(bm, prng, &opt, i)
		if opt.Grey {
			imgs[i] = img{
				dict: fmt.Sprintf("/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode", wpx, hpx),
				data: greyJPEG(bm, prng, opt.Quality),
			}
			continue
		}
		// Reach the target by adding specks. Guess the clean page's size
		// (about 14.5 bytes per 1000 pixels) to compress once in the usual
		// case; then correct, learning the bytes per speck from each pass.
		perSpeck := 2.7
		if perPage > 0 {
			if n := int((float64(perPage) - 0.0145*float64(wpx*hpx)) / perSpeck); n > 0 {
				specks(bm, prng, n, opt.DPI)
			}
		}
		data := deflateLevel(bm.packed(), zlib.BestSpeed)
		for pass := 0; perPage > 0 && pass < 4 && float64(len(data)) < 0.9*float64(perPage); pass++ {
			n := int(float64(perPage-len(data)) / perSpeck)
			before := len(data)
			specks(bm, prng, n, opt.DPI)
			data = deflateLevel(bm.packed(), zlib.BestSpeed)
			if grown := len(data) - before; grown > 0 {
				perSpeck = float64(grown) / float64(n)
			}
		}
		imgs[i] = img{
			dict: fmt.Sprintf("/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 1 /Filter /FlateDecode", wpx, hpx),
			data: data,
		}
	}

	h := sha256.Sum256([]byte(fmt.Sprintf("%d/%d/%s", opt.Seed, opt.Pages, opt.Title)))
	id := h[:16]
	var enc *rc4Encrypter
	if opt.Encrypt {
		owner := opt.OwnerPassword
		if owner == "" {
			owner = "proprietaire"
		}
		// Printing allowed, modification and copying not.
		enc = newRC4Encrypter("", owner, -3904, id)
	}
	// str and data encrypt strings and stream data of object num if needed.
	str := func(num int, s string) string {
		if enc == nil {
			return pdfText(s)
		}
		return enc.text(num, s)
	}
	data := func(num int, b []byte) []byte {
		if enc == nil {
			return b
		}
		return enc.crypt(num, b)
	}

	d := New(opt.Version)
	cat := d.Reserve()
	pages := d.Reserve()
	created := pdfDate(opt.Date)
	producer := "etatcivil pdfgen scan simulator"
	infoNum := d.Reserve()
	info := fmt.Sprintf("/Producer %s /Creator %s /CreationDate %s /ModDate %s",
		str(infoNum, producer), str(infoNum, "Numérisation registre"), str(infoNum, created), str(infoNum, created))
	if opt.Title != "" {
		info += " /Title " + str(infoNum, opt.Title)
	}
	d.Set(infoNum, "<< "+info+" >>")
	var kids []string
	for _, im := range imgs {
		imNum := d.Reserve()
		d.SetStream(imNum, im.dict, data(imNum, im.data))
		content := d.Reserve()
		d.SetStream(content, "", data(content, []byte(fmt.Sprintf("q %.2f 0 0 %.2f 0 0 cm /Im0 Do Q", wpt, hpt))))
		pg := d.Add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %.2f %.2f] /Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>",
			pages, wpt, hpt, imNum, content))
		kids = append(kids, fmt.Sprintf("%d 0 R", pg))
	}
	d.Set(pages, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(kids)))
	catalog := fmt.Sprintf("/Type /Catalog /Pages %d 0 R", pages)
	if opt.PDFA {
		meta := d.Reserve()
		d.SetStream(meta, "/Type /Metadata /Subtype /XML", data(meta, []byte(xmp(opt.Title, producer, opt.Date))))
		catalog += fmt.Sprintf(" /Metadata %d 0 R", meta)
	}
	if opt.CatalogExtra != "" {
		catalog += " " + opt.CatalogExtra
	}
	d.Set(cat, "<< "+catalog+" >>")
	trailer := fmt.Sprintf("/Root %d 0 R /Info %d 0 R /ID [<%x> <%x>]", cat, infoNum, id, id)
	if enc != nil {
		trailer += fmt.Sprintf(" /Encrypt %d 0 R", d.Add(enc.dict()))
	}
	d.Trailer(trailer)
	return d.Bytes()
}

func deflateLevel(b []byte, level int) []byte {
	var out bytes.Buffer
	out.Grow(len(b) / 8)
	w, _ := zlib.NewWriterLevel(&out, level)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// renderPage draws page i (0-based) of the act on bm.
func renderPage(bm *bitmap, rng *rand.Rand, opt *ScanOptions, i int) {
	mm := float64(opt.DPI) / 25.4
	px := func(v float64) int { return int(math.Round(v * mm)) }
	last := i == opt.Pages-1
	nibR := max(1, px(0.17))
	ink := newPen(bm, nibR, rng, 0.02)
	thin := newPen(bm, max(1, nibR-1), rng, 0)

	left, right, top, bottom := px(18+rng.Float64()*4), bm.w-px(15), px(14+rng.Float64()*3), bm.h-px(15)
	y := top

	// Printed header.
	if i == 0 && len(opt.Header) > 0 {
		scale := max(2, px(0.55))
		for j, line := range opt.Header {
			s := scale
			if j == 0 {
				s = scale * 4 / 3
			}
			w := textWidth(line, s)
			bm.text((bm.w-w)/2, y+2*s, s, line)
			y += 11 * s
		}
		y += px(2)
		thin.line(float64(left), float64(y), float64(right), float64(y))
		y += px(6)
	} else {
		y += px(4)
	}

	// Left column for the act number, names and marginal mentions.
	col := left + px(42)
	thin.line(float64(col), float64(y-px(3)), float64(col), float64(bottom))
	lineGap := px(7.5 + rng.Float64()*1.5)
	xh := float64(lineGap) * (0.22 + rng.Float64()*0.05)
	slant := 0.15 + rng.Float64()*0.25
	if i == 0 && len(opt.Margin) > 0 {
		scale := max(2, px(0.4))
		my := y
		for _, line := range opt.Margin {
			bm.text(left+px(2), my, scale, line)
			my += 11 * scale
		}
		// A few handwritten words under it.
		for k := 0; k < 2+rng.IntN(3); k++ {
			my += lineGap
			handLine(ink, rng, float64(left+px(2)), float64(col-px(3)), float64(my), xh, slant, true)
		}
	} else if rng.Float64() < 0.3 {
		// A marginal mention on a later page.
		my := y + px(20+rng.Float64()*100)
		for k := 0; k < 3+rng.IntN(5) && my < bottom-px(30); k++ {
			handLine(ink, rng, float64(left+px(2)), float64(col-px(3)), float64(my), xh*0.85, slant, true)
			my += lineGap * 4 / 5
		}
	}

	// Body text.
	bodyEnd := bottom - px(5)
	if last {
		bodyEnd = y + int(float64(bottom-px(60)-y)*(0.45+0.55*rng.Float64()))
	}
	x0, x1 := float64(col+px(5)), float64(right)
	para := true
	for y += lineGap; y < bodyEnd; y += lineGap {
		start := x0
		if para {
			start += float64(px(10))
		}
		end := x1 - float64(px(rng.Float64()*6))
		para = rng.Float64() < 0.12
		if para {
			end = start + (end-start)*(0.2+0.6*rng.Float64())
		}
		handLine(ink, rng, start, end, float64(y), xh, slant, false)
	}

	if last {
		// Signatures of the officer and the parties, and the stamp.
		sy := float64(y + px(15))
		n := 2 + rng.IntN(3)
		for k := 0; k < n; k++ {
			sx := x0 + (x1-x0-float64(px(40)))*float64(k)/float64(n-1) + float64(px(rng.Float64()*4))
			signature(ink, rng, sx, sy+float64(px(float64(k%2)*18+rng.Float64()*4)), float64(px(30+rng.Float64()*10)), float64(px(10+rng.Float64()*4)))
		}
		if opt.Stamp != "" {
			stamp(bm, rng, int(x1)-px(25), int(sy)+px(45), px(17), opt.Stamp, opt.DPI)
		}
	}
	if opt.Pages > 1 {
		s := max(2, px(0.35))
		label := fmt.Sprintf("%d/%d", i+1, opt.Pages)
		bm.text((bm.w-textWidth(label, s))/2, bm.h-px(9), s, label)
	}

	// Scanner artefacts: a dark edge on one side, then specks.
	if rng.Float64() < 0.5 {
		edge(bm, rng, px(2.5))
	}
	specks(bm, rng, int(opt.Noise*float64(bm.w*bm.h)/3), opt.DPI)
}

// handLine writes cursive-looking words between x0 and x1 on baseline y.
func handLine(p *pen, rng *rand.Rand, x0, x1, y, xh, slant float64, short bool) {
	drift := (rng.Float64() - 0.5) * xh * 0.6 / math.Max(1, x1-x0) // baseline slope
	x := x0
	if short {
		x1 = x0 + (x1-x0)*(0.4+0.6*rng.Float64())
	}
	for x < x1-xh*2 {
		wlen := xh * (2 + rng.Float64()*9)
		if x+wlen > x1 {
			wlen = x1 - x
		}
		word(p, rng, x, x+wlen, y+drift*(x-x0), xh, slant)
		x += wlen + xh*(1.2+rng.Float64()*1.2)
	}
}

// word draws one cursive word as a zigzag of letters with ascenders,
// descenders, loops, i-dots and t-bars.
func word(p *pen, rng *rand.Rand, x0, x1, base, xh, slant float64) {
	pts := make([]float64, 0, 64)
	add := func(x, y float64) {
		pts = append(pts, x+(base-y)*slant, y+(rng.Float64()-0.5)*xh*0.12)
	}
	x := x0
	add(x, base-xh*0.2)
	for x < x1 {
		lw := xh * (0.55 + rng.Float64()*0.5)
		r := rng.Float64()
		switch {
		case r < 0.16: // ascender (l, d, b, h)
			add(x+lw*0.45, base-xh*(2.1+rng.Float64()*0.6))
			add(x+lw*0.35, base-xh*0.6)
			add(x+lw, base)
		case r < 0.26: // descender (g, p, q)
			add(x+lw*0.4, base-xh)
			add(x+lw*0.5, base+xh*(1+rng.Float64()*0.4))
			add(x+lw*0.2, base+xh*0.5)
			add(x+lw, base-xh*0.3)
		case r < 0.45: // loop (o, a, e)
			add(x+lw*0.8, base-xh)
			add(x+lw*0.2, base-xh*0.8)
			add(x+lw*0.3, base)
			add(x+lw, base-xh*0.3)
		default: // plain hump (n, m, u, i)
			add(x+lw*0.4, base-xh*(0.85+rng.Float64()*0.3))
			add(x+lw, base)
			if rng.Float64() < 0.1 { // i-dot
				p.line(x+lw*0.4+xh*1.8*slant, base-xh*1.8, x+lw*0.4+xh*1.8*slant+1, base-xh*1.8)
			}
		}
		x += lw
	}
	p.polyline(pts)
	if rng.Float64() < 0.15 { // t-bar
		tx := x0 + (x1-x0)*rng.Float64()
		p.line(tx, base-xh*1.3, tx+xh*1.2, base-xh*1.35)
	}
}

// signature draws a looping flourish in a w×h box whose left baseline is
// (x, y), underlined.
func signature(p *pen, rng *rand.Rand, x, y, w, h float64) {
	const n = 90
	loops := 3 + rng.Float64()*4
	amp := 0.5 + rng.Float64()*0.4
	ph := rng.Float64() * math.Pi
	pts := make([]float64, 0, 2*n+6)
	for k := 0; k <= n; k++ {
		t := float64(k) / n
		a := 2*math.Pi*loops*t + ph
		env := math.Sin(math.Pi * math.Min(1, t*1.3)) // taller at the start
		pts = append(pts, x+w*t+w*0.06*math.Cos(a), y-h*0.5-h*0.5*amp*env*math.Sin(a))
	}
	pts = append(pts, x+w*(0.9+rng.Float64()*0.2), y+h*0.15, x+w*0.05, y+h*(0.1+rng.Float64()*0.15))
	p.polyline(pts)
}

// stamp draws a faded round stamp centred at (cx, cy) with radius r.
func stamp(bm *bitmap, rng *rand.Rand, cx, cy, r int, label string, dpi int) {
	p := newPen(bm, max(1, dpi/150), rng, 0)
	for _, rr := range []float64{float64(r), float64(r) * 0.78} {
		const n = 96
		pts := make([]float64, 0, 2*n+2)
		for k := 0; k <= n; k++ {
			a := 2 * math.Pi * float64(k) / n
			pts = append(pts, float64(cx)+rr*math.Cos(a), float64(cy)+rr*math.Sin(a))
		}
		p.polyline(pts)
	}
	// Ticks between the rings stand for the stamp's circular lettering.
	for k := 0; k < 40; k++ {
		a := 2 * math.Pi * float64(k) / 40
		c, s := math.Cos(a), math.Sin(a)
		p.line(float64(cx)+float64(r)*0.83*c, float64(cy)+float64(r)*0.83*s, float64(cx)+float64(r)*0.94*c, float64(cy)+float64(r)*0.94*s)
	}
	scale := max(1, r/45)
	words := strings.Fields(strings.ToUpper(label))
	lines := []string{}
	for _, w := range words {
		if len(lines) > 0 && textWidth(lines[len(lines)-1]+" "+w, scale) < r*3/2 {
			lines[len(lines)-1] += " " + w
		} else {
			lines = append(lines, w)
		}
	}
	ty := cy - len(lines)*11*scale/2
	for _, l := range lines {
		bm.text(cx-textWidth(l, scale)/2, ty, scale, l)
		ty += 11 * scale
	}
	// Fade: drop a third of the ink.
	for y := cy - r - 2; y <= cy+r+2; y++ {
		for x := cx - r - 2; x <= cx+r+2; x++ {
			if rng.IntN(3) == 0 {
				bm.clear(x, y)
			}
		}
	}
}

// edge darkens a ragged band along one side of the page, as a scanner lid
// or a binding does.
func edge(bm *bitmap, rng *rand.Rand, maxw int) {
	side := rng.IntN(2)
	w := float64(maxw) / 2
	n := bm.h
	if side == 1 {
		n = bm.w
	}
	for k := 0; k < n; k++ {
		w += (rng.Float64() - 0.5) * 1.5
		w = math.Max(0, math.Min(float64(maxw), w))
		if side == 0 {
			bm.hspan(0, int(w), k)
		} else {
			for y := 0; y <= int(w); y++ {
				bm.set(k, y)
			}
		}
	}
}

// specks sprinkles n dust specks of 1 to 3 pixels across, more of them small.
func specks(bm *bitmap, rng *rand.Rand, n int, dpi int) {
	big := max(1, dpi/120)
	for k := 0; k < n; k++ {
		x, y := rng.IntN(bm.w), rng.IntN(bm.h)
		switch r := rng.IntN(20); {
		case r < 14:
			bm.set(x, y)
		case r < 19:
			bm.rect(x, y, x+1, y+big-1)
		default:
			bm.rect(x, y, x+big+1, y+big)
		}
	}
}

// greyJPEG turns the ink bitmap into an 8-bit scan: off-white paper with
// grain, dark-grey ink, encoded as baseline JPEG.
func greyJPEG(bm *bitmap, rng *rand.Rand, quality int) []byte {
	g := image.NewGray(image.Rect(0, 0, bm.w, bm.h))
	paper := 232 + rng.IntN(14)
	s := rng.Uint64() | 1
	for y := 0; y < bm.h; y++ {
		row := g.Pix[y*g.Stride : y*g.Stride+bm.w]
		shade := paper - 6*y/bm.h // a slight gradient down the page
		for x := range row {
			s ^= s << 13
			s ^= s >> 7
			s ^= s << 17
			if bm.get(x, y) {
				row[x] = byte(40 + s%40)
			} else {
				row[x] = byte(shade + int(s%5))
			}
		}
	}
	var out bytes.Buffer
	_ = jpeg.Encode(&out, g, &jpeg.Options{Quality: quality})
	return out.Bytes()
}

// pdfDate formats t as the text of a PDF date string.
func pdfDate(t time.Time) string {
	_, off := t.Zone()
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	return fmt.Sprintf("D:%s%c%02d'%02d'", t.Format("20060102150405"), sign, off/3600, off%3600/60)
}

// pdfText returns s as a PDF text string: literal if plain ASCII,
// otherwise UTF-16BE with a byte-order mark, in hex.
func pdfText(s string) string {
	plain := true
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '(' || r == ')' || r == '\\' {
			plain = false
			break
		}
	}
	if plain {
		return "(" + s + ")"
	}
	var b strings.Builder
	b.WriteString("<FEFF")
	for _, u := range utf16.Encode([]rune(s)) {
		fmt.Fprintf(&b, "%04X", u)
	}
	b.WriteString(">")
	return b.String()
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// xmp returns an XMP packet claiming PDF/A-2B.
func xmp(title, producer string, t time.Time) string {
	date := t.Format(time.RFC3339)
	var dc string
	if title != "" {
		dc = `   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">` + xmlEscape(title) + `</rdf:li></rdf:Alt></dc:title>
`
	}
	return `<?xpacket begin="` + "\ufeff" + `" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
   <pdfaid:part>2</pdfaid:part>
   <pdfaid:conformance>B</pdfaid:conformance>
   <dc:format>application/pdf</dc:format>
` + dc + `   <xmp:CreateDate>` + date + `</xmp:CreateDate>
   <xmp:ModifyDate>` + date + `</xmp:ModifyDate>
   <xmp:MetadataDate>` + date + `</xmp:MetadataDate>
   <xmp:CreatorTool>Numérisation registre</xmp:CreatorTool>
   <pdf:Producer>` + xmlEscape(producer) + `</pdf:Producer>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>`
}
