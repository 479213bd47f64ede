package api

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/etatcivil/etatcivil/internal/store"
)

// Metrics are the few counters etatcivil exports in the Prometheus text
// format on the operations listener.
type Metrics struct {
	requests       [6]atomic.Int64 // by status class 1xx..5xx (index 1..5)
	BatchesCreated atomic.Int64
	FilePuts       atomic.Int64 // PUT requests for files, whatever their outcome
	FilesReceived  atomic.Int64
	BytesReceived  atomic.Int64
	FilesMismatch  atomic.Int64
	// IntegrityAlerts counts archive reads whose bytes differed from the ledger.
	IntegrityAlerts atomic.Int64
}

// NewMetrics returns zeroed metrics.
func NewMetrics() *Metrics { return &Metrics{} }

// Request counts one response by status class.
func (m *Metrics) Request(status int) {
	if c := status / 100; c >= 1 && c <= 5 {
		m.requests[c].Add(1)
	}
}

// WriteTo writes the metrics in the Prometheus text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	var n int64
	p := func(format string, args ...any) {
		k, _ := fmt.Fprintf(w, format, args...)
		n += int64(k)
	}
	p("# HELP etatcivil_http_requests_total HTTP responses by status class.\n# TYPE etatcivil_http_requests_total counter\n")
	for c := 1; c <= 5; c++ {
		p("etatcivil_http_requests_total{class=\"%dxx\"} %d\n", c, m.requests[c].Load())
	}
	p("# TYPE etatcivil_batches_created_total counter\netatcivil_batches_created_total %d\n", m.BatchesCreated.Load())
	p("# TYPE etatcivil_file_puts_total counter\netatcivil_file_puts_total %d\n", m.FilePuts.Load())
	p("# TYPE etatcivil_files_received_total counter\netatcivil_files_received_total %d\n", m.FilesReceived.Load())
	p("# TYPE etatcivil_bytes_received_total counter\netatcivil_bytes_received_total %d\n", m.BytesReceived.Load())
	p("# TYPE etatcivil_files_mismatch_total counter\netatcivil_files_mismatch_total %d\n", m.FilesMismatch.Load())
	p("# HELP etatcivil_integrity_alerts_total Archive reads whose bytes differed from the ledger.\n# TYPE etatcivil_integrity_alerts_total counter\netatcivil_integrity_alerts_total %d\n", m.IntegrityAlerts.Load())
	return n, nil
}

// WriteLedgerMetrics writes the gauges read from the ledger: every process
// reports the same figures, whichever one is scraped. A gauge whose query
// fails is left out (the scrape shows it missing, not zero).
func WriteLedgerMetrics(ctx context.Context, w io.Writer, st *store.Store) {
	if depth, err := st.Depth(ctx); err == nil {
		keys := slices.SortedFunc(maps.Keys(depth), func(a, b [2]string) int { return cmp.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
		fmt.Fprint(w, "# HELP etatcivil_transmissions Transmissions by registry and state.\n# TYPE etatcivil_transmissions gauge\n")
		for _, k := range keys {
			fmt.Fprintf(w, "etatcivil_transmissions{registry=%q,state=%q} %d\n", k[0], k[1], depth[k])
		}
	}
	if counts, last, err := st.FixityCounts(ctx); err == nil {
		fmt.Fprint(w, "# HELP etatcivil_fixity_versions Archived object versions by their last fixity audit's verdict.\n# TYPE etatcivil_fixity_versions gauge\n")
		for _, o := range slices.Sorted(maps.Keys(counts)) {
			fmt.Fprintf(w, "etatcivil_fixity_versions{outcome=%q} %d\n", o, counts[o])
		}
		if last != nil {
			fmt.Fprintf(w, "# HELP etatcivil_fixity_last_check_timestamp_seconds When the last fixity audit ran.\n# TYPE etatcivil_fixity_last_check_timestamp_seconds gauge\netatcivil_fixity_last_check_timestamp_seconds %d\n", last.Unix())
		}
	}
}
