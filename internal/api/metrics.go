package api

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/etatcivil/etatcivil/internal/store"
)

// Metrics are the counters etatcivil exports in the Prometheus text
// format on the operations listener: a few written here, the HTTP ones
// by route (with their latency histograms) through client_golang.
type Metrics struct {
	routes  *prometheus.CounterVec
	latency *prometheus.HistogramVec

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
func NewMetrics() *Metrics {
	return &Metrics{
		routes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etatcivil_http_route_requests_total",
			Help: "HTTP responses by method, route and status."}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "etatcivil_http_request_seconds",
			Help: "Time to answer, by route.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"route"}),
	}
}

// Collectors are the metrics kept by client_golang, to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	if m.routes == nil {
		return nil
	}
	return []prometheus.Collector{m.routes, m.latency}
}

// Route counts one answer of route (its pattern; "" for no route: a 404
// of the router, counted under "unmatched").
func (m *Metrics) Route(method, route string, status int, d time.Duration) {
	if m.routes == nil {
		return
	}
	if route == "" {
		route, method = "unmatched", ""
	} else if i := strings.IndexByte(route, ' '); i > 0 {
		method, route = route[:i], route[i+1:]
	}
	m.routes.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

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
	if depth, err := st.QueueDepth(ctx); err == nil {
		writePairGauge(w, "etatcivil_jobs", "Jobs not yet done, by kind and state (River).", "kind", "state", depth)
	}
	if waiting, stalled, err := st.Pending(ctx); err == nil {
		fmt.Fprint(w, "# HELP etatcivil_entries_waiting Entries waiting on infrastructure, by cause.\n# TYPE etatcivil_entries_waiting gauge\n")
		for _, c := range slices.Sorted(maps.Keys(waiting)) {
			fmt.Fprintf(w, "etatcivil_entries_waiting{cause=%q} %d\n", c, waiting[c])
		}
		fmt.Fprintf(w, "# HELP etatcivil_entries_stalled Entries stalled (acts retry resumes them).\n# TYPE etatcivil_entries_stalled gauge\netatcivil_entries_stalled %d\n", stalled)
	}
	if depth, err := st.Depth(ctx); err == nil {
		writePairGauge(w, "etatcivil_transmissions", "Transmissions by registry and state.", "registry", "state", depth)
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

// writePairGauge writes a gauge with two labels, its series sorted.
func writePairGauge[N int | int64](w io.Writer, name, help, l1, l2 string, v map[[2]string]N) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	for _, k := range slices.SortedFunc(maps.Keys(v), func(a, b [2]string) int { return cmp.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) }) {
		fmt.Fprintf(w, "%s{%s=%q,%s=%q} %d\n", name, l1, k[0], l2, k[1], v[k])
	}
}
