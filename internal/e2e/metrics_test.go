package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/sample"
)

// TestMetrics: after a batch, /metrics counts each stage's jobs with
// their durations (etatcivil_job_seconds), the HTTP answers by route and
// status with their latency, River's queue by kind and state, and the
// entries waiting and stalled.
func TestMetrics(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	tok := hubToken(t, s)
	dir := filepath.Join(t.TempDir(), "lot")
	const n = 5
	if err := sample.Generate(sample.Options{Dir: dir, Count: n, Seed: 91, Today: time.Now()}); err != nil {
		t.Fatal(err)
	}
	uploadWait(t, s, tok, dir)
	for name, want := range map[string]int64{
		`etatcivil_job_seconds_count{kind="validate",outcome="ok"}`:                                                n,
		`etatcivil_job_seconds_count{kind="seal",outcome="ok"}`:                                                    n,
		`etatcivil_job_seconds_count{kind="archive",outcome="ok"}`:                                                 n,
		`etatcivil_http_route_requests_total{method="PUT",route="/api/v1/batches/{id}/files/{file}",status="201"}`: n,
		`etatcivil_http_request_seconds_count{route="/api/v1/batches/{id}/files/{file}"}`:                          n,
		`etatcivil_entries_stalled`: 0,
	} {
		if got := s.metric(t, name); got != want {
			t.Errorf("%s = %d, attendu %d", name, got, want)
		}
	}
	if got := s.metric(t, `etatcivil_http_route_requests_total{method="POST",route="/api/v1/batches",status="201"}`); got != 1 {
		t.Errorf("création du lot comptée %d fois", got)
	}
	// Every step done: the pipeline's queues are there, and empty.
	for _, k := range []string{"validate", "seal", "archive"} {
		if got := s.metric(t, `etatcivil_jobs{kind="`+k+`",state="available"}`); got != 0 {
			t.Errorf("file %s : %d tâches en attente après le lot", k, got)
		}
	}
}
