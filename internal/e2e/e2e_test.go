package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/sample"
	"github.com/etatcivil/etatcivil/internal/store"
)

func hubToken(t testing.TB, s *server) string {
	return strings.TrimSpace(s.run(t, "token", "create", "--role", "hub", "--hub", "smica", "--name", "e2e smica"))
}

func decodeBatch(t *testing.T, b []byte) store.BatchView {
	t.Helper()
	var v store.BatchView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("JSON du lot: %v\n%s", err, b)
	}
	return v
}

// TestUploadResume kills "etatcivil upload" half-way, runs it again, then a
// third time: the second run sends only the missing files, the third
// changes nothing.
func TestUploadResume(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	tok := hubToken(t, s)
	dir := t.TempDir()
	const n = 40
	if err := sample.Generate(sample.Options{Dir: dir, Count: n, Seed: 7, SizeClass: sample.SizeRealistic}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// First run, killed once a few files have arrived.
	first := s.client(ctx, tok, "upload", "--parallel", "1", dir)
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for s.metric(t, "etatcivil_files_received_total") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("aucun fichier reçu:\n%s", firstErr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = first.Process.Kill()
	_ = first.Wait()
	atKill := receivedCount(t, s)
	if atKill >= n {
		t.Fatalf("l'envoi a fini avant d'être interrompu (%d fichiers) : le test ne prouve rien", atKill)
	}

	// What the server holds before the second run (the kill may have cut
	// one PUT after its bytes were recorded).
	got := receivedCount(t, s)
	putsBefore := s.metric(t, "etatcivil_file_puts_total")

	// Second run: resumes and sends only what is missing.
	second := s.client(ctx, tok, "upload", "--parallel", "1", "--wait", "--timeout", "3m", "--json", dir)
	var out2, err2 bytes.Buffer
	second.Stdout, second.Stderr = &out2, &err2
	if err := second.Run(); err != nil {
		t.Fatalf("deuxième envoi: %v\n%s", err, err2.String())
	}
	b2 := decodeBatch(t, out2.Bytes())
	if all := receivedCount(t, s); all != n {
		t.Fatalf("fichiers reçus = %d, attendu %d", all, n)
	}
	if sent := s.metric(t, "etatcivil_file_puts_total") - putsBefore; sent != int64(n-got) {
		t.Fatalf("la reprise a envoyé %d fichiers, il en manquait %d", sent, n-got)
	}
	if b2.Counts.Archived != n || b2.State != "done" {
		t.Fatalf("lot %s : %+v", b2.State, b2.Counts)
	}

	// Third run: nothing changes.
	puts := s.metric(t, "etatcivil_file_puts_total")
	third := s.client(ctx, tok, "upload", "--json", dir)
	var out3, err3 bytes.Buffer
	third.Stdout, third.Stderr = &out3, &err3
	if err := third.Run(); err != nil {
		t.Fatalf("troisième envoi: %v\n%s", err, err3.String())
	}
	b3 := decodeBatch(t, out3.Bytes())
	if b3.ID != b2.ID {
		t.Fatalf("nouveau lot %s au lieu de %s", b3.ID, b2.ID)
	}
	if got := s.metric(t, "etatcivil_file_puts_total"); got != puts {
		t.Fatalf("le troisième envoi a fait %d PUT", got-puts)
	}
	j2, _ := json.Marshal(b2.Acts)
	j3, _ := json.Marshal(b3.Acts)
	if !bytes.Equal(j2, j3) {
		t.Fatalf("le lot a changé:\n%s\n%s", j2, j3)
	}
}

// bombPDF is a one-page PDF whose content stream, or image, inflates
// from about 1 MB to 1 GB.
func bombPDF(image bool) []byte {
	d := pdfgen.New("1.7")
	cat, pages := d.Reserve(), d.Reserve()
	d.Set(cat, fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R >>", pages))
	bomb := pdfgen.ZeroFlate(1 << 30)
	var page int
	if image {
		img := d.AddStream("/Type /XObject /Subtype /Image /Width 32768 /Height 32768 /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode", bomb)
		content := d.AddStream("", []byte("q 595 0 0 842 0 0 cm /Im0 Do Q"))
		page = d.Add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>", pages, img, content))
	} else {
		content := d.AddStream("/Filter /FlateDecode", bomb)
		page = d.Add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R >>", pages, content))
	}
	d.Set(pages, fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] /Count 1 >>", page))
	d.Trailer(fmt.Sprintf("/Root %d 0 R", cat))
	return d.Bytes()
}

// TestHostileBatchBoundedMemory uploads the sample batch (good acts and
// bad entries) plus decompression bombs through the real binaries, and
// watches every etatcivil process's peak resident memory and /readyz.
func TestHostileBatchBoundedMemory(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	tok := hubToken(t, s)
	dir := t.TempDir()
	src := filepath.Join("..", "..", "testdata", "sample")
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Append the bombs to the manifest and the expectations.
	var m map[string]any
	var expected []map[string]any
	readJSON(t, filepath.Join(dir, "manifest.json"), &m)
	readJSON(t, filepath.Join(dir, "expected.json"), &expected)
	acts := m["acts"].([]any)
	for i, image := range []bool{false, true} {
		name := fmt.Sprintf("BOMB-%d.pdf", i)
		data := bombPDF(image)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		e := map[string]any{}
		for k, v := range acts[0].(map[string]any) {
			e[k] = v
		}
		e["file"], e["size"], e["sha256"], e["number"] = name, len(data), sha(data), 9900+i
		e["commune"], e["year"], e["act_date"], e["event_date"] = "12202", 2024, "2024-06-03", "2024-06-02"
		acts = append(acts, e)
		expected = append(expected, map[string]any{"file": name, "state": "rejected", "reason": "pdf_decompression_limit"})
	}
	m["acts"] = acts
	writeJSON(t, filepath.Join(dir, "manifest.json"), m)

	watch := watchRSS(s.bin)
	var notReady atomic.Int64
	var polls atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			resp, err := http.Get(s.ops + "/readyz")
			polls.Add(1)
			if err != nil || resp.StatusCode != 200 {
				notReady.Add(1)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	}()
	up := s.client(context.Background(), tok, "upload", "--wait", "--timeout", "4m", "--json", dir)
	var out, errb bytes.Buffer
	up.Stdout, up.Stderr = &out, &errb
	runErr := up.Run()
	close(stop)
	wg.Wait()
	peak, who, procs := watch.done()
	if runErr != nil {
		t.Fatalf("upload: %v\n%s", runErr, errb.String())
	}
	b := decodeBatch(t, out.Bytes())
	if len(b.Acts) != len(expected) {
		t.Fatalf("%d entrées, %d attendues", len(b.Acts), len(expected))
	}
	for i, e := range b.Acts {
		w := expected[i]
		wr, _ := w["reason"].(string)
		gr := ""
		if e.Reason != nil {
			gr = *e.Reason
		}
		if e.File != w["file"] || e.State != w["state"] || gr != wr {
			t.Errorf("%s : %s %s, attendu %v %v", e.File, e.State, gr, w["state"], w["reason"])
		}
		if e.State == "rejected" && (e.Message == nil || *e.Message == "") {
			t.Errorf("%s : refusé sans message", e.File)
		}
	}
	t.Logf("pic mémoire %d Mo (%s) sur %d processus etatcivil ; /readyz %d sondages", peak>>20, who, procs, polls.Load())
	if procs < 2 {
		t.Fatalf("%d processus etatcivil observés : les contrôleurs enfants n'ont pas été vus", procs)
	}
	if peak > 300<<20 {
		t.Fatalf("un processus etatcivil a atteint %d Mo (%s), limite 300 Mo", peak>>20, who)
	}
	if notReady.Load() > 0 || polls.Load() == 0 {
		t.Fatalf("/readyz a échoué %d fois sur %d", notReady.Load(), polls.Load())
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// receivedCount is how many entries have their file, from the database.
func receivedCount(t *testing.T, s *server) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM entries WHERE received_at IS NOT NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
