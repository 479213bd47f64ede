package pdfcheck

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	pdfmodel "github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"github.com/etatcivil/etatcivil/internal/model"
)

// check runs Check on b with lim.
func check(b []byte, lim Limits) (Result, error) {
	return Check(bytes.NewReader(b), int64(len(b)), lim)
}

// reasonOf returns the rejection code of err, "" for nil, or fails the test
// on an error that is not a rejection.
func reasonOf(t *testing.T, err error) model.Reason {
	t.Helper()
	if err == nil {
		return ""
	}
	var rej *model.Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("error is not a *model.Rejection: %v", err)
	}
	return rej.Reason
}

const xmpPDFA = `<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" pdfaid:part="2" pdfaid:conformance="B"/>
</rdf:RDF></x:xmpmeta><?xpacket end="w"?>`

const xmpPDFAElements = `<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
<pdfaid:part>1</pdfaid:part><pdfaid:conformance>a</pdfaid:conformance>
</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>`

func TestAccepted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pdf     []byte
		pages   int
		version string
		pdfa    string
	}{
		{"one page", buildDoc(opts{pages: 1}), 1, "1.7", ""},
		{"four pages 1.4", buildDoc(opts{pages: 4, version: "1.4"}), 4, "1.4", ""},
		{"twenty pages", buildDoc(opts{pages: 20}), 20, "1.7", ""},
		{"pdfa attributes", buildDoc(opts{pages: 2, xmp: xmpPDFA}), 2, "1.7", "2B"},
		{"pdfa elements", buildDoc(opts{pages: 1, xmp: xmpPDFAElements}), 1, "1.7", "1A"},
		{"names only in strings", buildDoc(opts{
			extraObjs: []string{"<< /Title (/JavaScript /OpenAction /EmbeddedFiles \\) /URI) /Subject <2F4A53> >>"},
		}), 1, "1.7", ""},
		{"names in content stream", buildDoc(opts{
			content: []byte("/JavaScript /Launch /EmbeddedFile q Q"),
		}), 1, "1.7", ""},
		{"blank page 400:1", buildDoc(opts{
			image: zeroFlate(8 << 20), imageDict: "/Filter /FlateDecode",
		}), 1, "1.7", ""},
		{"realistic scan", goodScan(4, 500<<10), 4, "1.7", ""},
		{"hex and a85 content", buildDoc(opts{
			content: []byte("71 20 51>"), contentDict: "/Filter /ASCIIHexDecode",
		}), 1, "1.7", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := check(tt.pdf, DefaultLimits())
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if res.Pages != tt.pages || res.Version != tt.version || res.PDFA != tt.pdfa {
				t.Fatalf("got %+v, want pages=%d version=%s pdfa=%q", res, tt.pages, tt.version, tt.pdfa)
			}
		})
	}
}

// goodScan builds a scan-like PDF of pages pages and about size bytes,
// with images that do not compress much, as a real scanner's do.
func goodScan(pages, size int) []byte {
	d := newDoc("1.7")
	cat := d.reserve()
	pt := d.reserve()
	var kids []string
	per := size / pages
	for i := 0; i < pages; i++ {
		// DCT data is opaque to the checker: counted, never decoded.
		jpeg := make([]byte, per)
		x := uint32(i + 1)
		for j := range jpeg {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			jpeg[j] = byte(x)
		}
		copy(jpeg, "\xff\xd8\xff\xe0")
		im := d.addStream("/Type /XObject /Subtype /Image /Width 1240 /Height 1754 /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode", jpeg)
		c := d.addStream("/Filter /FlateDecode", deflate([]byte("q 595 0 0 842 0 0 cm /Im0 Do Q")))
		p := d.add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>", pt, im, c))
		kids = append(kids, fmt.Sprintf("%d 0 R", p))
	}
	d.set(pt, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), pages))
	d.set(cat, fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R >>", pt))
	d.trailer = fmt.Sprintf("/Root %d 0 R", cat)
	return d.bytes()
}

// encrypted returns good encrypted with pdfcpu itself.
func encrypted(t *testing.T, aes bool) []byte {
	t.Helper()
	var conf *pdfmodel.Configuration
	if aes {
		conf = pdfmodel.NewAESConfiguration("", "owner", 256)
	} else {
		conf = pdfmodel.NewRC4Configuration("", "owner", 128)
	}
	var out bytes.Buffer
	if err := api.Encrypt(bytes.NewReader(buildDoc(opts{pages: 2})), &out, conf); err != nil {
		t.Fatalf("pdfcpu encrypt: %v", err)
	}
	return out.Bytes()
}

func TestRejected(t *testing.T) {
	t.Parallel()
	good := buildDoc(opts{pages: 2})
	small := DefaultLimits()
	small.MaxFileSize = int64(len(good)) - 1

	// A broken xref: every offset off by 7.
	brokenXref := bytes.Replace(good, []byte(" 00000 n "), []byte(" 00007 n "), -1)
	brokenXref = bytes.Replace(brokenXref, []byte("0000000015"), []byte("0000000003"), 1)
	// startxref pointing into the middle of an object.
	i := bytes.LastIndex(good, []byte("startxref\n"))
	badStart := append(append([]byte{}, good[:i]...), []byte("startxref\n123\n%%EOF\n")...)
	noEOF := bytes.TrimSuffix(good, []byte("%%EOF\n"))
	truncated := good[:len(good)*2/3]
	truncatedEOF := append(append([]byte{}, good[:len(good)*2/3]...), "\n%%EOF\n"...)

	tests := []struct {
		name string
		pdf  []byte
		lim  Limits
		want model.Reason
	}{
		{"empty", nil, Limits{}, model.ReasonNotPDF},
		{"four bytes", []byte("%PDF"), Limits{}, model.ReasonNotPDF},
		{"junk before header", append([]byte("x"), good...), Limits{}, model.ReasonNotPDF},
		{"bom before header", append([]byte("\xef\xbb\xbf"), good...), Limits{}, model.ReasonNotPDF},
		{"html polyglot", append([]byte("<html><body>hi</body></html>\n"), good...), Limits{}, model.ReasonNotPDF},
		{"zip polyglot", append([]byte("PK\x03\x04\x14\x00\x00\x00\x08\x00"), good...), Limits{}, model.ReasonNotPDF},
		{"plain text", []byte("hello, world"), Limits{}, model.ReasonNotPDF},

		{"broken xref offsets", brokenXref, Limits{}, model.ReasonPDFMalformed},
		{"startxref into nowhere", badStart, Limits{}, model.ReasonPDFMalformed},
		{"missing EOF", noEOF, Limits{}, model.ReasonPDFMalformed},
		{"truncated", truncated, Limits{}, model.ReasonPDFMalformed},
		{"truncated with EOF", truncatedEOF, Limits{}, model.ReasonPDFMalformed},
		{"header only", []byte("%PDF-1.7\n%%EOF\n"), Limits{}, model.ReasonPDFMalformed},
		{"kids to missing object", bytes.Replace(good, []byte("/Kids ["), []byte("/Kids [99 0 R "), 1), Limits{}, model.ReasonPDFMalformed},
		{"kids not an array", brokenKids(), Limits{}, model.ReasonPDFMalformed},
		{"deep nesting", deepNesting(), Limits{}, model.ReasonPDFMalformed},

		{"encrypt in trailer", buildDoc(opts{trailer: "/Encrypt << /Filter /Standard /V 1 /R 2 /O <00> /U <00> /P -4 >>"}), Limits{}, model.ReasonPDFEncrypted},
		{"encrypt in xref stream", xrefStreamDoc("/Encrypt 9 0 R"), Limits{}, model.ReasonPDFEncrypted},

		{"openaction javascript", buildDoc(opts{catalog: "/OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >>"}), Limits{}, model.ReasonPDFActiveContent},
		{"openaction goto", buildDoc(opts{catalog: "/OpenAction [3 0 R /Fit]"}), Limits{}, model.ReasonPDFActiveContent},
		{"page AA", buildDoc(opts{page: "/AA << /O << /S /Named /N /NextPage >> >>"}), Limits{}, model.ReasonPDFActiveContent},
		{"launch", buildDoc(opts{extraObjs: []string{"<< /S /Launch /F (calc.exe) >>"}}), Limits{}, model.ReasonPDFActiveContent},
		{"uri link", buildDoc(opts{page: "/Annots [<< /Type /Annot /Subtype /Link /Rect [0 0 9 9] /A << /S /URI /URI (https://example.org) >> >>]"}), Limits{}, model.ReasonPDFActiveContent},
		{"submitform", buildDoc(opts{catalog: "/AcroForm << /Fields [<< /FT /Btn /T (b) /A << /S /SubmitForm /F (https://example.org) >> >>] >>"}), Limits{}, model.ReasonPDFActiveContent},
		{"xfa", buildDoc(opts{catalog: "/AcroForm << /Fields [] /XFA [(template) 5 0 R] >>"}), Limits{}, model.ReasonPDFActiveContent},
		{"javascript name tree", buildDoc(opts{catalog: "/Names << /JavaScript << /Names [(a) << /S /JavaScript /JS (x) >>] >> >>"}), Limits{}, model.ReasonPDFActiveContent},
		{"gotor", buildDoc(opts{extraObjs: []string{"<< /S /GoToR /F (other.pdf) /D [0 /Fit] >>"}}), Limits{}, model.ReasonPDFActiveContent},
		{"importdata", buildDoc(opts{extraObjs: []string{"<< /S /ImportData /F (x.fdf) >>"}}), Limits{}, model.ReasonPDFActiveContent},
		{"escaped name", buildDoc(opts{extraObjs: []string{"<< /S /Java#53cript /J#53 (x) >>"}}), Limits{}, model.ReasonPDFActiveContent},
		{"js in object stream", objStmDoc([]byte("<< /S /JavaScript /JS (x) >>"), "/Filter /FlateDecode", true), Limits{}, model.ReasonPDFActiveContent},

		{"embedded files tree", buildDoc(opts{catalog: "/Names << /EmbeddedFiles << /Names [(a.txt) << /Type /Filespec /F (a.txt) >>] >> >>"}), Limits{}, model.ReasonPDFEmbeddedFiles},
		{"file attachment annot", buildDoc(opts{page: "/Annots [<< /Type /Annot /Subtype /FileAttachment /Rect [0 0 9 9] /FS << /Type /Filespec /F (a.txt) >> >>]"}), Limits{}, model.ReasonPDFEmbeddedFiles},
		{"embedded file stream", buildDoc(opts{extraObjs: []string{"<< /Type /EmbeddedFile /Length 0 >>\nstream\n\nendstream"}}), Limits{}, model.ReasonPDFEmbeddedFiles},
		{"attachment in object stream", objStmDoc([]byte("<< /Type /Filespec /EF << /F 3 0 R >> >> << /EmbeddedFiles 1 0 R >>"), "/Filter /FlateDecode", true), Limits{}, model.ReasonPDFEmbeddedFiles},

		{"21 pages", buildDoc(opts{pages: 21}), Limits{}, model.ReasonPDFTooManyPages},
		{"over max file size", good, small, model.ReasonPDFTooLarge},

		{"bomb in content stream", buildDoc(opts{content: gigaBomb(), contentDict: "/Filter /FlateDecode"}), Limits{}, model.ReasonPDFDecompressionLimit},
		{"bomb in image", buildDoc(opts{image: gigaBomb(), imageDict: "/Filter /FlateDecode"}), Limits{}, model.ReasonPDFDecompressionLimit},
		{"bomb with indirect length", indirectLengthBomb(), Limits{}, model.ReasonPDFDecompressionLimit},
		{"bomb without length", bytes.Replace(buildDoc(opts{content: gigaBomb(), contentDict: "/Filter /FlateDecode"}), []byte(fmt.Sprintf("/Length %d", len(gigaBomb()))), []byte("/Length 7"), 1), Limits{}, model.ReasonPDFDecompressionLimit},
		{"deep filter chain", buildDoc(opts{content: deepChain(5), contentDict: "/Filter [/FlateDecode /FlateDecode /FlateDecode /FlateDecode /FlateDecode /FlateDecode]"}), Limits{}, model.ReasonPDFDecompressionLimit},
		{"too many filters", buildDoc(opts{content: []byte("00>"), contentDict: "/Filter [" + strings.Repeat("/AHx ", 9) + "]"}), Limits{}, model.ReasonPDFDecompressionLimit},
		{"bomb in object stream", objStmDoc(gigaBomb(), "/Filter /FlateDecode", false), Limits{}, model.ReasonPDFDecompressionLimit},
		{"ratio over grace", buildDoc(opts{content: zeroFlate(3 << 20), contentDict: "/Filter /FlateDecode"}), Limits{RatioGrace: 1 << 20}, model.ReasonPDFDecompressionLimit},
		{"document cap", buildDoc(opts{pages: 3, image: zeroFlate(2 << 20), imageDict: "/Filter /FlateDecode"}), Limits{MaxDocDecoded: 5 << 20}, model.ReasonPDFDecompressionLimit},
		{"hex bomb via a85", buildDoc(opts{content: a85(deflateBytes(zeroFlate(80 << 20))), contentDict: "/Filter [/A85 /Fl /Fl]"}), Limits{}, model.ReasonPDFDecompressionLimit},
		{"lzw bomb", buildDoc(opts{content: lzwZeros(70 << 20), contentDict: "/Filter /LZWDecode"}), Limits{}, model.ReasonPDFDecompressionLimit},
		{"runlength bomb", buildDoc(opts{content: bytes.Repeat([]byte{129, 0}, 600_000), contentDict: "/Filter /RunLengthDecode"}), Limits{MaxStreamDecoded: 16 << 20}, model.ReasonPDFDecompressionLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := check(tt.pdf, tt.lim)
			if got := reasonOf(t, err); got != tt.want {
				t.Fatalf("got %q (%v, %+v), want %q", got, err, res, tt.want)
			}
		})
	}
}

func TestEncryptedByPDFCPU(t *testing.T) {
	t.Parallel()
	for _, aes := range []bool{false, true} {
		t.Run(fmt.Sprintf("aes=%v", aes), func(t *testing.T) {
			t.Parallel()
			_, err := check(encrypted(t, aes), Limits{})
			if got := reasonOf(t, err); got != model.ReasonPDFEncrypted {
				t.Fatalf("got %q (%v), want pdf_encrypted", got, err)
			}
		})
	}
}

// TestBombMemory checks that refusing a 1 GiB bomb neither takes long nor
// holds the decoded bytes.
func TestBombMemory(t *testing.T) {
	// Not parallel: memory statistics are process-wide.
	for _, tt := range []struct {
		name string
		pdf  []byte
	}{
		{"content", buildDoc(opts{content: gigaBomb(), contentDict: "/Filter /FlateDecode"})},
		{"image", buildDoc(opts{image: gigaBomb(), imageDict: "/Filter /FlateDecode"})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := check(tt.pdf, DefaultLimits())
			runtime.ReadMemStats(&after)
			if got := reasonOf(t, err); got != model.ReasonPDFDecompressionLimit {
				t.Fatalf("got %q, want pdf_decompression_limit", got)
			}
			const budget = 64 << 20
			t.Logf("allocated %d KiB, heap in use %+d KiB", (after.TotalAlloc-before.TotalAlloc)>>10,
				(int64(after.HeapInuse)-int64(before.HeapInuse))>>10)
			if d := after.TotalAlloc - before.TotalAlloc; d > budget {
				t.Errorf("allocated %d MiB during the check", d>>20)
			}
			if after.HeapInuse > before.HeapInuse+budget {
				t.Errorf("heap grew by %d MiB", (after.HeapInuse-before.HeapInuse)>>20)
			}
		})
	}
}

func TestCheckReaderError(t *testing.T) {
	t.Parallel()
	good := buildDoc(opts{})
	// A reader shorter than announced is not the announced file.
	_, err := Check(bytes.NewReader(good[:100]), int64(len(good)), Limits{})
	if got := reasonOf(t, err); got != model.ReasonPDFMalformed {
		t.Fatalf("got %q, want pdf_malformed", got)
	}
	// A failing reader is an internal fault, not a rejection.
	_, err = Check(failingReader{}, 1000, Limits{})
	var rej *model.Rejection
	if err == nil || errors.As(err, &rej) {
		t.Fatalf("got %v, want an internal error", err)
	}
}

type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }

func TestScannerNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{"<< /S /URI >>", "URI"},
		{"<< /T (a /URI b) >>", ""},
		{"<< /T (nested (paren /JS) \\) /AA) >>", ""},
		{"<< /T <2F4A53> >>", ""},
		{"% /JavaScript in a comment\n<< >>", ""},
		{"<< /URIx 1 >>", ""},
		{"<< /J#53 1 >>", "JS"},
	}
	for _, tt := range tests {
		f := &findings{}
		s := &scanner{data: []byte(tt.in), found: f, bud: &budget{lim: DefaultLimits()}}
		if err := s.scan(); err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if f.active != tt.want {
			t.Errorf("%q: active %q, want %q", tt.in, f.active, tt.want)
		}
		// The streaming scanner of object streams must agree.
		g := &findings{}
		ns := &nameSink{found: g}
		for i := 0; i < len(tt.in); i++ { // byte by byte: state must carry over
			ns.Write([]byte{tt.in[i]})
		}
		ns.flush()
		if g.active != tt.want {
			t.Errorf("%q (object stream): active %q, want %q", tt.in, g.active, tt.want)
		}
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	want := []byte("Hello, scanned world! 0000000000000000000000000000000000000")
	tests := []struct {
		name   string
		filter string
		enc    []byte
		parms  map[string]int64
	}{
		{"flate", "FlateDecode", deflate(want), nil},
		{"hex", "ASCIIHexDecode", []byte(fmt.Sprintf("%X>", want)), nil},
		{"a85", "ASCII85Decode", a85(want), nil},
		{"rl", "RunLengthDecode", runLength(want), nil},
		{"lzw", "LZWDecode", lzwEncode(want, true), nil},
		{"lzw late", "LZWDecode", lzwEncode(want, false), map[string]int64{"EarlyChange": 0}},
	}
	for _, tt := range tests {
		r, err := decoder(tt.filter, &sliceReader{b: tt.enc}, tt.parms)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got bytes.Buffer
		if _, err := got.ReadFrom(r); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: got %q", tt.name, got.Bytes())
		}
	}
}

// TestZeroFlate checks the test's bomb builder: the shortcut must still
// produce valid zlib data of the announced size.
func TestZeroFlate(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{100, 3 << 20, 9 << 20} {
		zr, err := zlib.NewReader(bytes.NewReader(zeroFlate(n)))
		if err != nil {
			t.Fatal(err)
		}
		var nonzero bool
		got, err := io.Copy(writerFunc(func(p []byte) (int, error) {
			for _, c := range p {
				nonzero = nonzero || c != 0
			}
			return len(p), nil
		}), zr)
		if err != nil || got != n || nonzero {
			t.Fatalf("n=%d: got %d bytes (nonzero %v), err %v", n, got, nonzero, err)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
