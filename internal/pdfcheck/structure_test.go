package pdfcheck

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	pdfmodel "github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
)

// objOffsets returns the offset of every "N 0 obj" header of b.
func objOffsets(b []byte) map[int]int {
	m := map[int]int{}
	for _, x := range regexp.MustCompile(`(?m)^(\d+) 0 obj`).FindAllSubmatchIndex(b, -1) {
		n, _ := strconv.Atoi(string(b[x[2]:x[3]]))
		m[n] = x[0]
	}
	return m
}

// startXrefOf returns the offset of the last startxref of b.
func startXrefOf(b []byte) int {
	off, ok := lastStartXref(b)
	if !ok {
		panic("no startxref")
	}
	return int(off)
}

// setXrefOffset rewrites the classic xref entry of object num in b (the
// table at the last startxref) to give off.
func setXrefOffset(b []byte, num, off int) []byte {
	b = append([]byte{}, b...)
	x := startXrefOf(b)
	// "xref\n0 N\n" then 20-byte entries.
	hdr := bytes.IndexByte(b[x+5:], '\n') + x + 6
	e := hdr + 20*num
	copy(b[e:e+10], fmt.Sprintf("%010d", off))
	return b
}

// appendUpdate appends an incremental update to b: the objects of objs
// (number -> body), a classic section with one subsection per object and
// entries ending with eol, and a trailer with /Prev. bad shifts every
// offset of the new section by that much.
func appendUpdate(b []byte, objs map[int]string, root int, eol string, bad int) []byte {
	out := bytes.NewBuffer(append([]byte{}, b...))
	prev := startXrefOf(b)
	offs := map[int]int{}
	maxNum := 0
	var nums []int
	for n := range objs {
		nums = append(nums, n)
	}
	for i := 1; i < len(nums); i++ { // insertion sort: deterministic output
		for j := i; j > 0 && nums[j] < nums[j-1]; j-- {
			nums[j], nums[j-1] = nums[j-1], nums[j]
		}
	}
	for _, n := range nums {
		offs[n] = out.Len()
		fmt.Fprintf(out, "%d 0 obj\n%s\nendobj\n", n, objs[n])
		maxNum = max(maxNum, n)
	}
	size := max(maxNum+1, len(objOffsets(b))+1)
	xref := out.Len()
	out.WriteString("xref\n")
	for _, n := range nums {
		fmt.Fprintf(out, "%d 1\n%010d 00000 n%s", n, offs[n]+bad, eol)
	}
	fmt.Fprintf(out, "trailer\n<< /Size %d /Root %d 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n", size, root, prev, xref)
	return out.Bytes()
}

// xrefStreamPDF is a PDF 1.5 whose page lives in an object stream, with a
// Flate-compressed cross-reference stream using the PNG Up predictor, as
// real writers make them. mangle may change the rows before encoding.
func xrefStreamPDF(mangle func(rows [][]byte)) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
	offs := map[int]int{}
	add := func(n int, body string) {
		offs[n] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", n, body)
	}
	add(1, "<< /Type /Catalog /Pages 2 0 R >>")
	add(2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
	page := "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"
	head := "3 0 "
	offs[4] = b.Len()
	b.Write(streamObj(fmt.Sprintf("/Type /ObjStm /N 1 /First %d /Filter /FlateDecode", len(head)),
		deflate([]byte(head+page))))
	b.WriteString("\nendobj\n")
	// streamObj does not number: put the header in front.
	raw := b.Bytes()
	hdr := []byte("4 0 obj\n")
	b2 := bytes.NewBuffer(append(append(append([]byte{}, raw[:offs[4]]...), hdr...), raw[offs[4]:]...))
	xref := b2.Len()
	rows := [][]byte{
		{0, 0, 0, 255},
		{1, byte(offs[1] >> 8), byte(offs[1]), 0},
		{1, byte(offs[2] >> 8), byte(offs[2]), 0},
		{2, 0, 4, 0}, // object 3: index 0 of object stream 4
		{1, byte(offs[4] >> 8), byte(offs[4]), 0},
		{1, byte(xref >> 8), byte(xref), 0},
	}
	if mangle != nil {
		mangle(rows)
	}
	// PNG Up predictor: each row is tagged 2 and holds the difference
	// with the row above.
	var enc []byte
	prev := make([]byte, 4)
	for _, r := range rows {
		enc = append(enc, 2)
		for i := range r {
			enc = append(enc, r[i]-prev[i])
		}
		prev = r
	}
	data := deflate(enc)
	fmt.Fprintf(b2, "5 0 obj\n<< /Type /XRef /Size 6 /W [1 2 1] /Root 1 0 R /Filter /FlateDecode /DecodeParms << /Columns 4 /Predictor 12 >> /Length %d >>\nstream\n", len(data))
	b2.Write(data)
	fmt.Fprintf(b2, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", xref)
	return b2.Bytes()
}

// treeDoc is a document whose page tree root (object 2) has body root;
// objects 3 and 4 are pages (parent 2), extra ones follow from 5.
func treeDoc(root string, extra ...string) []byte {
	d := newDoc("1.7")
	d.add("<< /Type /Catalog /Pages 2 0 R >>")
	d.add("<< /Type /Pages " + root + " >>")
	d.add("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>")
	d.add("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>")
	for _, e := range extra {
		d.add(e)
	}
	d.trailer = "/Root 1 0 R"
	return d.bytes()
}

// pdfcpuRewrite is good rewritten by pdfcpu (object and xref streams).
func pdfcpuRewrite(t *testing.T, good []byte) []byte {
	t.Helper()
	conf := pdfmodel.NewDefaultConfiguration()
	conf.WriteObjectStream = true
	conf.WriteXRefStream = true
	var out bytes.Buffer
	if err := api.Optimize(bytes.NewReader(good), &out, conf); err != nil {
		t.Fatalf("pdfcpu optimize: %v", err)
	}
	return out.Bytes()
}

func TestStructureAccepted(t *testing.T) {
	t.Parallel()
	good := buildDoc(opts{pages: 2})
	catalog := "<< /Type /Catalog /Pages 2 0 R /Lang (fr) >>"
	withFree := func() []byte {
		d := pdfgen.New("1.7")
		d.Add("<< /Type /Catalog /Pages 2 0 R >>")
		d.Add("<< /Type /Pages /Kids [4 0 R] /Count 1 >>")
		d.Reserve() // object 3: a free entry
		d.Add("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>")
		d.Trailer("/Root 1 0 R")
		return d.Bytes()
	}()
	twoUpdates := appendUpdate(appendUpdate(good, map[int]string{1: catalog}, 1, " \n", 0),
		map[int]string{1: catalog, 40: "<< /Producer (x) >>"}, 1, " \r", 0)

	tests := []struct {
		name  string
		pdf   []byte
		pages int
	}{
		{"pdfgen scan", pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 1, Pages: 3}), 3},
		{"pdfgen free entry", withFree, 1},
		{"update crlf", appendUpdate(good, map[int]string{1: catalog}, 1, "\r\n", 0), 2},
		{"update space lf", appendUpdate(good, map[int]string{1: catalog, 30: "<< /A 1 >>"}, 1, " \n", 0), 2},
		{"update space cr", appendUpdate(good, map[int]string{1: catalog}, 1, " \r", 0), 2},
		{"two updates", twoUpdates, 2},
		{"xref stream", xrefStreamDoc(""), 1},
		{"xref stream with predictor and object stream", xrefStreamPDF(nil), 1},
		{"pdfcpu rewrite", pdfcpuRewrite(t, good), 2},
		{"nested page tree", treeDoc("/Kids [3 0 R 5 0 R] /Count 3",
			"<< /Type /Pages /Parent 2 0 R /Kids [4 0 R 6 0 R] /Count 2 >>",
			"<< /Type /Page /Parent 5 0 R /MediaBox [0 0 595 842] >>"), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := check(tt.pdf, DefaultLimits())
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if res.Pages != tt.pages {
				t.Fatalf("got %d pages, want %d", res.Pages, tt.pages)
			}
		})
	}
}

func TestStructureRejected(t *testing.T) {
	t.Parallel()
	good := buildDoc(opts{pages: 2})
	offs := objOffsets(good)
	catalog := "<< /Type /Catalog /Pages 2 0 R /Lang (fr) >>"

	// Two entries swapped: each points at a real object, the wrong one.
	swapped := setXrefOffset(setXrefOffset(good, 3, offs[4]), 4, offs[3])
	// Every offset one byte late.
	late := good
	for n, off := range offs {
		late = setXrefOffset(late, n, off+1)
	}
	// An update whose own section is wrong, and one over a wrong table.
	badUpdate := appendUpdate(good, map[int]string{1: catalog}, 1, "\r\n", 3)
	updateOverBad := appendUpdate(swapped, map[int]string{1: catalog}, 1, "\r\n", 0)
	// A /Prev into the middle of an object.
	badPrev := bytes.Replace(appendUpdate(good, map[int]string{1: catalog}, 1, "\r\n", 0),
		[]byte(fmt.Sprintf("/Prev %d", startXrefOf(good))), []byte(fmt.Sprintf("/Prev %d", offs[3]+2)), 1)
	// A cross-reference stream whose entry for object 2 is off by one.
	badStream := xrefStreamPDF(func(rows [][]byte) { rows[2][2]++ })
	// A generation that is not the object's.
	badGen := bytes.Replace(good, []byte(fmt.Sprintf("%010d 00000 n", offs[2])), []byte(fmt.Sprintf("%010d 00001 n", offs[2])), 1)
	// An offset past the end of the file.
	pastEnd := setXrefOffset(good, 2, len(good)+100)

	tests := []struct {
		name string
		pdf  []byte
	}{
		{"xref entries swapped", swapped},
		{"xref offsets one byte late", late},
		{"xref generation mismatch", badGen},
		{"xref offset past end", pastEnd},
		{"bad update section", badUpdate},
		{"update over bad table", updateOverBad},
		{"prev into an object", badPrev},
		{"xref stream bad offset", badStream},

		{"kid missing", treeDoc("/Kids [3 0 R 99 0 R] /Count 2")},
		{"only kid missing", treeDoc("/Kids [99 0 R] /Count 1")},
		{"page listed twice", treeDoc("/Kids [3 0 R 3 0 R] /Count 2")},
		{"count too high", treeDoc("/Kids [3 0 R 4 0 R] /Count 3")},
		{"count too low", treeDoc("/Kids [3 0 R 4 0 R] /Count 1")},
		{"cycle through root", treeDoc("/Kids [3 0 R 5 0 R] /Count 2",
			"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>")},
		{"node is its own kid", treeDoc("/Kids [3 0 R 5 0 R] /Count 2",
			"<< /Type /Pages /Parent 2 0 R /Kids [5 0 R] /Count 1 >>")},
		{"kid not a page", treeDoc("/Kids [3 0 R 5 0 R] /Count 2", "<< /Type /Font >>")},
		{"kid not a dict", treeDoc("/Kids [3 0 R 5 0 R] /Count 2", "42")},
		{"direct kid", treeDoc("/Kids [3 0 R << /Type /Page /MediaBox [0 0 9 9] >>] /Count 2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := check(tt.pdf, DefaultLimits())
			if got := reasonOf(t, err); got != model.ReasonPDFMalformed {
				t.Fatalf("got %q (%v, %+v), want pdf_malformed", got, err, res)
			}
		})
	}
}

// TestXrefBounded checks that a huge or lying table is refused quickly.
func TestXrefBounded(t *testing.T) {
	t.Parallel()
	good := buildDoc(opts{})
	x := startXrefOf(good)
	tail := good[x:]
	hdrEnd := bytes.IndexByte(tail[5:], '\n') + 6
	n := len(objOffsets(good)) + 1

	// A million free entries in front of the real ones, then one whose
	// object is not there: all parsed, then refused.
	var big bytes.Buffer
	big.Write(good[:x])
	fmt.Fprintf(&big, "xref\n0 %d\n", n)
	big.Write(tail[hdrEnd : hdrEnd+20*n])
	const million = 1_000_000
	fmt.Fprintf(&big, "%d %d\n", 1000, million)
	free := strings.Repeat("0000000000 00001 f\r\n", million-1)
	big.WriteString(free)
	fmt.Fprintf(&big, "%010d 00000 n\r\n", 9)
	fmt.Fprintf(&big, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", 1000+million, x)

	// Subsections announcing more entries than the cap, or than the file.
	overCap := bytes.Replace(good, []byte(fmt.Sprintf("xref\n0 %d\n", n)), []byte("xref\n0 20000000\n"), 1)
	lying := bytes.Replace(good, []byte(fmt.Sprintf("xref\n0 %d\n", n)), []byte("xref\n0 9999999\n"), 1)

	for _, tt := range []struct {
		name string
		pdf  []byte
	}{
		{"million entries", big.Bytes()},
		{"over cap", overCap},
		{"lying count", lying},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := checkXref(tt.pdf, DefaultLimits())
			if got := reasonOf(t, err); got != model.ReasonPDFMalformed {
				t.Fatalf("got %q (%v), want pdf_malformed", got, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestCheckXrefStreams checks cross-reference streams with checkXref
// alone: pdfcpu refuses some bad ones by itself, which would hide a check
// of ours that let them through.
func TestCheckXrefStreams(t *testing.T) {
	t.Parallel()
	good := buildDoc(opts{pages: 2})
	for _, tt := range []struct {
		name string
		pdf  []byte
		want model.Reason
	}{
		{"plain", xrefStreamDoc(""), ""},
		{"predictor and object stream", xrefStreamPDF(nil), ""},
		{"pdfcpu rewrite", pdfcpuRewrite(t, good), ""},
		{"offset off by one", xrefStreamPDF(func(rows [][]byte) { rows[2][2]++ }), model.ReasonPDFMalformed},
		{"wrong generation", xrefStreamPDF(func(rows [][]byte) { rows[1][3] = 2 }), model.ReasonPDFMalformed},
		{"own offset wrong", xrefStreamPDF(func(rows [][]byte) { rows[5][2] -= 3 }), model.ReasonPDFMalformed},
		{"object stream entry ignored", xrefStreamPDF(func(rows [][]byte) { rows[3][1] = 0x7f }), ""},
		{"free entry ignored", xrefStreamPDF(func(rows [][]byte) { rows[0][1] = 0x7f }), ""},
		{"truncated rows", bytes.Replace(xrefStreamPDF(nil), []byte("/Size 6"), []byte("/Size 9"), 1), model.ReasonPDFMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkXref(tt.pdf, DefaultLimits())
			if got := reasonOf(t, err); got != tt.want {
				t.Fatalf("got %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}
