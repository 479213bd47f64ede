package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// FuzzUploadHandlers sends arbitrary manifests (JSON, CSV, multipart or
// an unknown type) and then an arbitrary file body to the real server:
// whatever the bytes, the answer is never a 5xx, every refusal is an RFC
// 9457 problem with a type, and the server goes on answering. The seed
// corpus (here and testdata/fuzz/FuzzUploadHandlers) runs with go test;
// CI fuzzes it briefly (scripts/stack.sh fuzz).
func FuzzUploadHandlers(f *testing.F) {
	s := testenv.NewStack(f, testenv.StackOptions{})
	s.Hub(f, "h", "12202")
	tok := s.Token(f, auth.RoleHub, "h")
	pdf := goodPDF(900)
	good, err := json.Marshal(map[string]any{"hub": "h", "acts": []map[string]any{act("a.pdf", pdf, 1)}})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct {
		kind     uint8
		manifest []byte
		file     []byte
	}{
		{0, good, pdf},
		{0, good, []byte("%PDF-1.7\n%%EOF")},
		{0, []byte(`{"hub":"h","acts":[{"file":"a.pdf","size":1e400}]}`), nil},
		{0, []byte(`{"hub":"h","acts":[` + strings.Repeat(`{},`, 200) + `{}]}`), nil},
		{1, []byte("file,size,sha256,commune,kind,year,number\na.pdf,3,abc,12202,naissance,2024,1\n"), []byte("abc")},
		{1, []byte("\xef\xbb\xbf\"unterminated\n"), nil},
		{2, good, pdf},
		{2, []byte("--x\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\r\n{}\r\n--x--"), nil},
		{3, []byte{0xff, 0xfe, 0}, nil},
	} {
		f.Add(seed.kind, seed.manifest, seed.file)
	}
	f.Fuzz(func(t *testing.T, kind uint8, manifest, file []byte) {
		var req apiReq
		switch kind % 4 {
		case 0:
			req = apiReq{method: "POST", path: "/api/v1/batches", body: manifest, header: http.Header{"Content-Type": {"application/json"}}}
		case 1:
			req = apiReq{method: "POST", path: "/api/v1/batches", body: manifest, header: http.Header{"Content-Type": {"text/csv"}}}
		case 2:
			// The manifest as the multipart form's first part, the file as
			// the second; or the bytes as the whole body when they look
			// like a form already.
			var b bytes.Buffer
			mw := multipart.NewWriter(&b)
			if pw, err := mw.CreateFormFile("manifest", "manifest.json"); err == nil {
				_, _ = pw.Write(manifest)
			}
			if pw, err := mw.CreateFormFile("a.pdf", "a.pdf"); err == nil {
				_, _ = pw.Write(file)
			}
			_ = mw.Close()
			ct := mw.FormDataContentType()
			body := b.Bytes()
			if bytes.HasPrefix(manifest, []byte("--x")) {
				ct, body = "multipart/form-data; boundary=x", manifest
			}
			req = apiReq{method: "POST", path: "/api/v1/batches", body: body, header: http.Header{"Content-Type": {ct}}}
		default:
			req = apiReq{method: "POST", path: "/api/v1/batches", body: manifest, header: http.Header{"Content-Type": {"application/octet-stream"}}}
		}
		r := send(t, s.URL, tok, req)
		checkAnswer(t, "manifeste", r)
		if r.status != 200 && r.status != 201 {
			return
		}
		var b struct {
			ID      string `json:"id"`
			Entries []struct {
				File string `json:"file"`
			} `json:"entries"`
		}
		if err := json.Unmarshal(r.body, &b); err != nil || b.ID == "" {
			t.Fatalf("lot accepté illisible : %v : %s", err, r.body)
		}
		for _, e := range b.Entries {
			if strings.ContainsAny(e.File, "/?#%") || e.File == "" {
				continue // not a path segment the client could name
			}
			put := send(t, s.URL, tok, apiReq{method: "PUT", path: fmt.Sprintf("/api/v1/batches/%s/files/%s", b.ID, e.File), body: file,
				header: http.Header{"Content-Type": {"application/pdf"}}})
			checkAnswer(t, "fichier", put)
			break
		}
	})
}

// checkAnswer fails on a 5xx, or on a refusal that is not a problem
// document with a type.
func checkAnswer(t *testing.T, what string, r apiResp) {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("%s : HTTP %d : %s", what, r.status, r.body)
	}
	if r.status >= 400 {
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("%s : HTTP %d en %q : %s", what, r.status, ct, r.body)
		}
		if p := r.problem(t); p["type"] == "" || p["type"] == nil {
			t.Fatalf("%s : problème sans type : %s", what, r.body)
		}
	}
}
