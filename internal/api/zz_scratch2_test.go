package api_test

import (
	"bytes"
	"testing"
)

func TestScratchXref(t *testing.T) {
	b := brokenXref(buildPDF(docOpts{}))
	i := bytes.LastIndex(b, []byte("\nxref"))
	t.Logf("%q", b[i:])
	g := buildPDF(docOpts{})
	t.Logf("%q", g[bytes.LastIndex(g, []byte("\nxref")):])
	t.Logf("%q", g[:80])
}
