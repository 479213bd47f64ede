package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// act is a manifest entry for tests, with a valid default index.
func act(file string, data []byte, number int) map[string]any {
	sum := sha256.Sum256(data)
	return map[string]any{
		"file": file, "size": len(data), "sha256": hex.EncodeToString(sum[:]),
		"commune": "12202", "kind": "naissance", "year": 2021, "number": number,
		"act_date": "2021-03-15", "event_date": "2021-03-14", "flow": "reprise",
		"persons": []map[string]any{{"role": "titulaire", "surname": "MARTIN", "given_names": []string{"Jeanne"}, "sex": "F"}},
	}
}

func manifestBytes(t *testing.T, hub string, acts ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"hub": hub, "acts": acts})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func key(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func goodPDF(seed int64) []byte {
	return pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: seed, Pages: 1, DPI: 100})
}

func TestUploadValidates(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "smica", "12202")
	c := client.New(s.URL, s.Token(t, auth.RoleHub, "smica"))
	ctx := context.Background()
	pdf := goodPDF(1)
	m := manifestBytes(t, "smica", act("a.pdf", pdf, 1))
	b, created, err := c.CreateBatch(ctx, m, false, key(m))
	if err != nil || !created {
		t.Fatalf("création: %v %v", created, err)
	}
	if fmt.Sprint(b.MissingFiles) != "[a.pdf]" {
		t.Fatalf("missing_files = %v", b.MissingFiles)
	}
	if err := c.PutFile(ctx, b.ID, "a.pdf", bytes.NewReader(pdf), int64(len(pdf))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Submit(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	got, _, err := c.WaitBatch(wctx, b.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Acts[0].State != "archived" || got.State != "done" {
		t.Fatalf("état %s / lot %s, raison %v", got.Acts[0].State, got.State, got.Acts[0].Reason)
	}
	var _ store.BatchView = got
}
