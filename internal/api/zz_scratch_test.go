package api_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/pdfcheck"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
)

func TestScratchHostile(t *testing.T) {
	good := buildPDF(docOpts{})
	scan := goodPDF(7)
	t.Logf("scan size %d, 2p %d, buildPDF %d", len(scan), len(pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 9, Pages: 2, DPI: 100})), len(good))
	cases := map[string][]byte{
		"good":     good,
		"scan":     scan,
		"junk":     append([]byte("JUNK\n"), scan...),
		"xref":     brokenXref(scan),
		"trunc":    scan[:len(scan)*2/3],
		"noeof":    bytes.TrimSuffix(scan, []byte("%%EOF\n")),
		"enc":      pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 3, DPI: 100, Encrypt: true}),
		"js":       pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 4, DPI: 100, CatalogExtra: "/OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >>"}),
		"uri":      buildPDF(docOpts{page: "/Annots [<< /Type /Annot /Subtype /Link /Rect [0 0 9 9] /A << /S /URI /URI (https://example.org) >> >>]"}),
		"attach":   buildPDF(docOpts{catalog: "/Names << /EmbeddedFiles << /Names [(a.txt) << /Type /Filespec /F (a.txt) >>] >> >>"}),
		"p21":      buildPDF(docOpts{pages: 21}),
		"p20":      buildPDF(docOpts{pages: 20}),
		"bomb":     buildPDF(docOpts{content: gigaBomb(), contentDict: "/Filter /FlateDecode"}),
	}
	t.Logf("bomb %d", len(gigaBomb()))
	for n, b := range cases {
		res, err := pdfcheck.Check(bytes.NewReader(b), int64(len(b)), pdfcheck.DefaultLimits())
		var rej *model.Rejection
		if errors.As(err, &rej) {
			t.Logf("%s: %s %s", n, rej.Reason, rej.Message)
		} else {
			t.Logf("%s: %+v %v", n, res, err)
		}
	}
}
