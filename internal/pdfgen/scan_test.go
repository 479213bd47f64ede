package pdfgen

import (
	"bytes"
	"testing"
	"time"
)

func TestScanPDFValid(t *testing.T) {
	cases := map[string]ScanOptions{
		"default":  {},
		"full":     {Seed: 1, Pages: 3, Header: []string{"MAIRIE DE RODEZ", "ACTE DE DÉCÈS N° 42", "ANNÉE 2021"}, Margin: []string{"N° 42", "MARTIN"}, Stamp: "MAIRIE DE RODEZ", PDFA: true, Title: "Acte de décès n° 42 (Rodez)"},
		"grey":     {Seed: 2, Pages: 1, Grey: true, Stamp: "MAIRIE DE MILLAU"},
		"a3-300":   {Seed: 3, Pages: 1, Paper: "A3", DPI: 300, Noise: -1},
		"target":   {Seed: 4, Pages: 2, TargetSize: 400_000},
		"version":  {Seed: 5, Version: "1.4"},
		"4pages":   {Seed: 6, Pages: 4},
		"paris-tz": {Seed: 7, Date: time.Date(2023, 5, 1, 9, 30, 0, 0, time.FixedZone("CEST", 2*3600))},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			b := ScanPDF(o)
			qpdfCheck(t, b)
			want := max(1, o.Pages)
			if n := pdfcpuValidate(t, b); n != want {
				t.Fatalf("pages = %d, want %d", n, want)
			}
		})
	}
}

func TestScanPDFDeterministic(t *testing.T) {
	o := ScanOptions{Seed: 42, Pages: 2, Stamp: "MAIRIE", PDFA: true}
	a, b := ScanPDF(o), ScanPDF(o)
	if !bytes.Equal(a, b) {
		t.Fatal("same options gave different bytes")
	}
	o.Seed = 43
	if bytes.Equal(a, ScanPDF(o)) {
		t.Fatal("different seeds gave the same bytes")
	}
}

func TestScanPDFContent(t *testing.T) {
	b := ScanPDF(ScanOptions{Seed: 1, PDFA: true, Title: "Acte"})
	for _, s := range []string{"/BitsPerComponent 1", "/FlateDecode", "/Type /Metadata /Subtype /XML", "<pdfaid:part>2</pdfaid:part>", "<pdfaid:conformance>B</pdfaid:conformance>", "/ID [<"} {
		if !bytes.Contains(b, []byte(s)) {
			t.Errorf("missing %q", s)
		}
	}
	if bytes.Contains(ScanPDF(ScanOptions{Seed: 1}), []byte("pdfaid")) {
		t.Error("XMP written without PDFA")
	}
	g := ScanPDF(ScanOptions{Seed: 1, Grey: true})
	if !bytes.Contains(g, []byte("/DCTDecode")) || !bytes.Contains(g, []byte("/BitsPerComponent 8")) {
		t.Error("grey page is not an 8-bit JPEG")
	}
}

func TestScanPDFTargetSize(t *testing.T) {
	for _, target := range []int{450_000, 650_000, 950_000} {
		b := ScanPDF(ScanOptions{Seed: int64(target), Pages: 3, DPI: 300, TargetSize: target})
		if r := float64(len(b)) / float64(target); r < 0.85 || r > 1.15 {
			t.Errorf("target %d: got %d bytes", target, len(b))
		}
	}
}

func BenchmarkScanPDF(b *testing.B) {
	for _, c := range []struct {
		name string
		o    ScanOptions
	}{
		{"bitonal-200dpi-2p", ScanOptions{Pages: 2, Header: []string{"MAIRIE", "ACTE"}, Stamp: "MAIRIE"}},
		{"bitonal-300dpi-3p-600KB", ScanOptions{Pages: 3, DPI: 300, TargetSize: 600_000}},
		{"grey-200dpi-1p", ScanOptions{Pages: 1, Grey: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			for i := 0; i < b.N; i++ {
				c.o.Seed = int64(i)
				n += len(ScanPDF(c.o))
			}
			b.ReportMetric(float64(n)/float64(b.N), "bytes/file")
		})
	}
}

func TestScanPDFEncrypted(t *testing.T) {
	b := ScanPDF(ScanOptions{Seed: 9, Pages: 2, Encrypt: true, PDFA: true, Title: "Acte chiffré"})
	if !bytes.Contains(b, []byte("/Encrypt ")) || !bytes.Contains(b, []byte("/Filter /Standard /V 2 /R 3")) {
		t.Fatal("no /Encrypt")
	}
	if bytes.Contains(b, []byte("pdfaid")) {
		t.Fatal("metadata not encrypted")
	}
	// qpdf decrypts with the empty user password and checks every stream.
	qpdfCheck(t, b)
	if n := pdfcpuValidate(t, b); n != 2 {
		t.Fatalf("pages = %d", n)
	}
	if !bytes.Contains(qpdfShowEncryption(t, b), []byte("R = 3")) {
		t.Fatal("qpdf does not see R3 encryption")
	}
}

func TestScanPDFCatalogExtra(t *testing.T) {
	b := ScanPDF(ScanOptions{Seed: 9, CatalogExtra: `/OpenAction << /S /JavaScript /JS (app.alert\(1\);) >>`})
	if !bytes.Contains(b, []byte("/OpenAction << /S /JavaScript")) {
		t.Fatal("catalog extra missing")
	}
	qpdfCheck(t, b)
}
