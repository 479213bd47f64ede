package pdfgen

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

func init() { model.ConfigPath = "disable" }

// minimal builds a one-page document with a vector content stream and
// reserved-then-set objects. (pdfcpu's strict mode wants /FirstChar even on
// standard-14 fonts, so no text here.)
func minimal() []byte {
	d := New("1.7")
	cat := d.Reserve()
	pages := d.Reserve()
	info := d.Add("<< /Producer (pdfgen test) >>")
	content := d.AddStream("/Filter /FlateDecode", Deflate([]byte("0 0 1 RG 2 w 72 720 m 300 720 l S\n")))
	page := d.Add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Resources << >> /Contents %d 0 R >>", pages, content))
	d.Set(pages, fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] /Count 1 >>", page))
	d.Set(cat, fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R >>", pages))
	d.Trailer(fmt.Sprintf("/Root %d 0 R /Info %d 0 R", cat, info))
	return d.Bytes()
}

// qpdfCheck runs qpdf --check on b and fails on any error or warning.
func qpdfCheck(t *testing.T, b []byte) {
	t.Helper()
	qpdf, err := exec.LookPath("qpdf")
	if err != nil {
		t.Fatal("qpdf not found in PATH: install it (apt-get install qpdf; the Makefile does)")
	}
	f := filepath.Join(t.TempDir(), "x.pdf")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(qpdf, "--check", f).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("WARNING")) {
		t.Fatalf("qpdf --check: %v\n%s", err, out)
	}
}

// pdfcpuValidate validates b with pdfcpu in strict mode and returns the page count.
func pdfcpuValidate(t *testing.T, b []byte) int {
	t.Helper()
	conf := model.NewDefaultConfiguration()
	conf.ValidationMode = model.ValidationStrict
	ctx, err := api.ReadContext(bytes.NewReader(b), conf)
	if err != nil {
		t.Fatalf("pdfcpu read: %v", err)
	}
	if err := api.ValidateContext(ctx); err != nil {
		t.Fatalf("pdfcpu validate: %v", err)
	}
	return ctx.PageCount
}

func TestMinimalValid(t *testing.T) {
	b := minimal()
	qpdfCheck(t, b)
	if n := pdfcpuValidate(t, b); n != 1 {
		t.Fatalf("pages = %d, want 1", n)
	}
	if !bytes.HasPrefix(b, []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")) {
		t.Fatalf("bad header %q", b[:20])
	}
	if !bytes.HasSuffix(b, []byte("%%EOF\n")) {
		t.Fatal("missing EOF marker")
	}
}

func TestXrefOffsets(t *testing.T) {
	b := minimal()
	m := regexp.MustCompile(`startxref\n(\d+)\n%%EOF\n$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no startxref")
	}
	x, _ := strconv.Atoi(string(m[1]))
	if !bytes.HasPrefix(b[x:], []byte("xref\n0 6\n")) {
		t.Fatalf("startxref %d does not point at xref: %q", x, b[x:x+10])
	}
	lines := regexp.MustCompile(`(\d{10}) (\d{5}) ([nf])\r\n`).FindAllSubmatch(b[x:], -1)
	if len(lines) != 6 {
		t.Fatalf("%d xref entries, want 6", len(lines))
	}
	for i, l := range lines[1:] {
		off, _ := strconv.Atoi(string(l[1]))
		want := fmt.Sprintf("%d 0 obj\n", i+1)
		if !bytes.HasPrefix(b[off:], []byte(want)) {
			t.Errorf("object %d: offset %d points at %q", i+1, off, b[off:off+10])
		}
	}
	if !bytes.Contains(b, []byte("trailer\n<< /Size 6 /Root 1 0 R /Info 3 0 R >>")) {
		t.Error("trailer missing /Size 6")
	}
}

func TestStreamLength(t *testing.T) {
	d := New("1.4")
	data := []byte("abc\ndef")
	n := d.AddStream("", data)
	d.Trailer("")
	b := d.Bytes()
	want := fmt.Sprintf("%d 0 obj\n<< /Length 7 >>\nstream\nabc\ndef\nendstream\nendobj\n", n)
	if !bytes.Contains(b, []byte(want)) {
		t.Fatalf("stream not written as expected:\n%s", b)
	}
}

func TestUnsetReservedIsFree(t *testing.T) {
	d := New("1.7")
	cat := d.Reserve()
	_ = d.Reserve() // left unset
	pages := d.Add("<< /Type /Pages /Kids [] /Count 0 >>")
	d.Set(cat, fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R >>", pages))
	d.Trailer(fmt.Sprintf("/Root %d 0 R", cat))
	b := d.Bytes()
	if !bytes.Contains(b, []byte("0000000002 65535 f\r\n")) || !bytes.Contains(b, []byte("0000000000 00001 f\r\n")) {
		t.Fatalf("free list not linked:\n%s", b)
	}
}

func TestDeflateRoundTrip(t *testing.T) {
	in := bytes.Repeat([]byte("etat civil "), 1000)
	r, err := zlib.NewReader(bytes.NewReader(Deflate(in)))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	if !bytes.Equal(in, out) {
		t.Fatal("round trip differs")
	}
}

func TestSetUnallocatedPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New("1.7").Set(3, "null")
}

func qpdfShowEncryption(t *testing.T, b []byte) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "x.pdf")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qpdf", "--show-encryption", f).CombinedOutput()
	if err != nil {
		t.Fatalf("qpdf --show-encryption: %v\n%s", err, out)
	}
	return out
}
