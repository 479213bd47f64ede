package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestS3DownDuringUpload: while S3 refuses connections, a PUT answers 503
// with Retry-After and records nothing; the file stays missing, so the
// client can send it again once S3 is back.
func TestS3DownDuringUpload(t *testing.T) {
	t.Parallel()
	dead, err := blob.New(blob.Config{Endpoint: "127.0.0.1:1", Region: "us-east-1", AccessKey: "x", SecretKey: "y", Archive: "archive", Staging: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	s := testenv.NewStack(t, testenv.StackOptions{APIBlob: dead})
	s.Hub(t, "h1", "12202")
	tok := s.Token(t, auth.RoleHub, "h1")
	pdf := goodPDF(5)
	m := manifestBytes(t, "h1", act("a.pdf", pdf, 1))
	b, _, err := client.New(s.URL, tok).CreateBatch(context.Background(), m, false, key(m))
	if err != nil {
		t.Fatal(err)
	}
	r := send(t, s.URL, tok, apiReq{method: "PUT", path: "/api/v1/batches/" + b.ID + "/files/a.pdf", body: pdf})
	wantProblem(t, "PUT sans S3", r, 503, "storage_unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 sans Retry-After")
	}
	if detail := r.problem(t)["detail"].(string); detail == "" || containsAny(detail, "127.0.0.1", "staging", "incoming/") {
		t.Errorf("détail interne exposé : %q", detail)
	}
	got, _, err := client.New(s.URL, tok).Batch(context.Background(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.MissingFiles) != 1 || got.Acts[0].State != "expected" {
		t.Fatalf("après l'échec : missing %v, état %s", got.MissingFiles, got.Acts[0].State)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
