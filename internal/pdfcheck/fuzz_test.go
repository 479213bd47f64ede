package pdfcheck

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etatcivil/etatcivil/internal/model"
)

// FuzzCheck asserts that Check never panics and always returns either a
// result or a rejection (the input is in memory, so no internal fault).
func FuzzCheck(f *testing.F) {
	small := Limits{MaxStreamDecoded: 1 << 20, MaxDocDecoded: 4 << 20, RatioGrace: 64 << 10}
	for _, seed := range [][]byte{
		nil,
		[]byte("%PDF-"),
		buildDoc(opts{}),
		buildDoc(opts{pages: 2, xmp: xmpPDFA}),
		buildDoc(opts{catalog: "/OpenAction << /S /JavaScript /JS (x) >>"}),
		buildDoc(opts{content: lzwEncode([]byte("q Q q Q q Q"), true), contentDict: "/Filter /LZWDecode"}),
		buildDoc(opts{content: a85([]byte("q Q")), contentDict: "/Filter /A85"}),
		buildDoc(opts{content: runLength([]byte("q Q")), contentDict: "/Filter /RL"}),
		objStmDoc([]byte("<< /A 1 >>"), "/Filter /FlateDecode", true),
		xrefStreamDoc(""),
		brokenKids(),
		goodScan(1, 4096),
	} {
		f.Add(seed)
	}
	// The repository's sample batch (testdata/sample): the hostile files
	// (encrypted, JavaScript, truncated, not a PDF, empty) and two scans.
	files, _ := filepath.Glob("../../testdata/sample/*.pdf")
	if len(files) < 10 {
		f.Fatalf("testdata/sample : %d PDF", len(files))
	}
	for _, p := range files {
		if base := filepath.Base(p); strings.HasPrefix(base, "BAD-") || strings.HasPrefix(base, "N-12202") {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := Check(bytes.NewReader(b), int64(len(b)), small)
		if err == nil {
			if res.Pages <= 0 {
				t.Fatalf("accepted with %d pages", res.Pages)
			}
			return
		}
		var rej *model.Rejection
		if !errors.As(err, &rej) || !rej.Reason.Known() {
			t.Fatalf("not a known rejection: %v", err)
		}
	})
}

// BenchmarkCheck measures Check on a ~500 KB four-page scan.
func BenchmarkCheck(b *testing.B) {
	pdf := goodScan(4, 500<<10)
	b.SetBytes(int64(len(pdf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Check(bytes.NewReader(pdf), int64(len(pdf)), DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}
