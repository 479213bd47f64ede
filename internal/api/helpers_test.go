package api_test

// Helpers shared by authz_test.go, badinput_test.go and identity_test.go:
// raw HTTP requests, batch uploads, and hostile PDFs built in code.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/store"
)

// sha returns the lowercase hex SHA-256 of b.
func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// entryFor is act() with another commune.
func entryFor(file string, data []byte, commune string, number int) map[string]any {
	e := act(file, data, number)
	e["commune"] = commune
	return e
}

// with returns a copy of e with the given fields set (a nil value deletes).
func with(e map[string]any, kv ...any) map[string]any {
	out := maps.Clone(e)
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
			continue
		}
		out[k] = kv[i+1]
	}
	return out
}

// apiReq is one request of a test, without its token.
type apiReq struct {
	method string
	path   string
	body   []byte // nil: no body
	header http.Header
}

// apiResp is what came back.
type apiResp struct {
	status int
	header http.Header
	body   []byte
}

// problem decodes an RFC 9457 body.
func (r apiResp) problem(t *testing.T) map[string]any {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("corps d'erreur illisible (%d): %v: %s", r.status, err, r.body)
	}
	return p
}

// send performs req against base with token ("" for no Authorization
// header) and returns the whole answer.
func send(t *testing.T, base, token string, req apiReq) apiResp {
	t.Helper()
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, req.method, base+req.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: lecture: %v", req.method, req.path, err)
	}
	return apiResp{status: resp.StatusCode, header: resp.Header, body: data}
}

// wantProblem checks that r is a problem document of status (and of type
// typ, unless empty).
func wantProblem(t *testing.T, what string, r apiResp, status int, typ string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: statut %d, attendu %d: %s", what, r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("%s: Content-Type %q, attendu application/problem+json", what, ct)
	}
	p := r.problem(t)
	if fmt.Sprint(p["status"]) != fmt.Sprint(status) {
		t.Fatalf("%s: status %v dans le corps, attendu %d", what, p["status"], status)
	}
	if typ != "" && p["type"] != typ {
		t.Fatalf("%s: type %v, attendu %q: %s", what, p["type"], typ, r.body)
	}
	if d, _ := p["detail"].(string); d == "" {
		t.Fatalf("%s: detail vide: %s", what, r.body)
	}
	return p
}

// clientErr returns the status of an error from the client package, 0 if
// err is nil, and fails on a transport error.
func clientErr(t *testing.T, err error) (int, string) {
	t.Helper()
	if err == nil {
		return 0, ""
	}
	ce, ok := err.(*client.Error)
	if !ok {
		t.Fatalf("erreur de transport: %v", err)
	}
	return ce.Status, ce.Type
}

// waitBatch polls a batch until nothing is pending.
func waitBatch(t *testing.T, c *client.Client, id string) store.BatchView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	b, raw, err := c.WaitBatch(ctx, id, nil)
	if err != nil {
		t.Fatalf("attente du lot %s: %v (dernier état: %s)", id, err, raw)
	}
	return b
}

// uploadBatch creates a batch from manifest, PUTs files (name → bytes),
// submits and waits. Every PUT must succeed.
func uploadBatch(t *testing.T, c *client.Client, manifest []byte, files map[string][]byte) store.BatchView {
	t.Helper()
	ctx := context.Background()
	b, created, err := c.CreateBatch(ctx, manifest, false, key(manifest))
	if err != nil || !created {
		t.Fatalf("création du lot: created=%v err=%v", created, err)
	}
	for name, data := range files {
		if err := c.PutFile(ctx, b.ID, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("PUT %s: %v", name, err)
		}
	}
	if _, _, err := c.Submit(ctx, b.ID); err != nil {
		t.Fatalf("soumission: %v", err)
	}
	return waitBatch(t, c, b.ID)
}

// entryByFile finds the first entry of b for file.
func entryByFile(t *testing.T, b store.BatchView, file string) store.BatchEntry {
	t.Helper()
	for _, e := range b.Acts {
		if e.File == file {
			return e
		}
	}
	t.Fatalf("pas d'entrée %q dans le lot %s", file, b.ID)
	return store.BatchEntry{}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// describe renders an entry for failure messages.
func describe(e store.BatchEntry) string {
	return fmt.Sprintf("{file=%q state=%s reason=%v message=%v version=%v id=%v unchanged=%v}",
		e.File, e.State, deref(e.Reason), deref(e.Message), deref(e.Version), deref(e.ID), e.Unchanged)
}

// ---- PDFs built in code ------------------------------------------------

// grayImage is a deflated 100×100 8-bit grey image with some noise.
func grayImage(seed int) []byte {
	px := make([]byte, 100*100)
	x := uint32(seed*7919 + 1)
	for i := range px {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		px[i] = byte(200 + x%56)
	}
	return pdfgen.Deflate(px)
}

// docOpts shapes the small scan-like documents of buildPDF.
type docOpts struct {
	pages       int
	catalog     string // extra catalog entries
	page        string // extra entries of every page
	content     []byte // raw content stream of the first page (default: draw the image)
	contentDict string // dictionary entries (filter) of that content stream
}

// buildPDF builds a small, valid-by-default PDF: a catalog, a page tree
// and pages each drawing one grey image.
func buildPDF(o docOpts) []byte {
	if o.pages == 0 {
		o.pages = 1
	}
	d := pdfgen.New("1.7")
	cat := d.Reserve()
	pages := d.Reserve()
	var kids []string
	for i := 0; i < o.pages; i++ {
		im := d.AddStream("/Type /XObject /Subtype /Image /Width 100 /Height 100 /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode", grayImage(i))
		content, dict := pdfgen.Deflate([]byte("q 595 0 0 842 0 0 cm /Im0 Do Q")), "/Filter /FlateDecode"
		if i == 0 && o.content != nil {
			content, dict = o.content, o.contentDict
		}
		c := d.AddStream(dict, content)
		p := d.Add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R %s >>", pages, im, c, o.page))
		kids = append(kids, fmt.Sprintf("%d 0 R", p))
	}
	d.Set(pages, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), o.pages))
	d.Set(cat, fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R %s >>", pages, o.catalog))
	d.Trailer(fmt.Sprintf("/Root %d 0 R", cat))
	return d.Bytes()
}

// brokenXref returns good with every cross-reference offset moved 7
// bytes forward (startxref still points at the table).
func brokenXref(good []byte) []byte {
	i := bytes.LastIndex(good, []byte("\nxref\n")) + 1
	head, table := good[:i], string(good[i:])
	lines := strings.Split(table, "\n")
	for j, l := range lines {
		var off, gen int
		var kind string
		if n, _ := fmt.Sscanf(l, "%010d %05d %1s", &off, &gen, &kind); n == 3 && kind == "n" {
			lines[j] = fmt.Sprintf("%010d %05d n\r", off+7, gen)
		}
	}
	return append(bytes.Clone(head), strings.Join(lines, "\n")...)
}

var (
	bombOnce sync.Once
	bomb     []byte
)

// gigaBomb returns about 1 MB of zlib data that inflates to 1 GiB of zeros.
func gigaBomb() []byte {
	bombOnce.Do(func() { bomb = pdfgen.ZeroFlate(1 << 30) })
	return bomb
}

// brokenPageTree is a document whose page tree names a page object that
// does not exist.
func brokenPageTree() []byte {
	d := pdfgen.New("1.7")
	d.Add("<< /Type /Catalog /Pages 2 0 R >>")
	d.Add("<< /Type /Pages /Kids [3 0 R 99 0 R] /Count 2 >>")
	d.Add("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>")
	d.AddStream("/Type /XObject /Subtype /Image /Width 100 /Height 100 /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode", grayImage(0))
	d.AddStream("/Filter /FlateDecode", pdfgen.Deflate([]byte("q 595 0 0 842 0 0 cm /Im0 Do Q")))
	d.Trailer("/Root 1 0 R")
	return d.Bytes()
}

// verification fetches an act's integrity report with c (an auditor's).
func verification(t *testing.T, c *client.Client, actID string) api.Report {
	t.Helper()
	raw, err := c.Get(context.Background(), "/api/v1/acts/"+actID+"/verification", nil)
	if err != nil {
		t.Fatal(err)
	}
	var r api.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// failingChecks names the checks of r that fail, comma-separated.
func failingChecks(r api.Report) string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return strings.Join(out, ",")
}
