package ingest

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/etatcivil/etatcivil/internal/transmit"
)

// SendMetrics counts sends to the registries, per registry and outcome,
// and their latency, for Prometheus. A nil *SendMetrics counts nothing.
type SendMetrics struct {
	mu  sync.Mutex
	per map[string]*sendFigures
}

type sendFigures struct {
	outcomes map[string]int64 // acknowledged, sent, refused, failed
	buckets  []int64          // latency histogram, cumulative at write time
	count    int64
	sum      float64
}

// latencyBuckets are the histogram's upper bounds, in seconds.
var latencyBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// NewSendMetrics returns empty send metrics.
func NewSendMetrics() *SendMetrics { return &SendMetrics{per: map[string]*sendFigures{}} }

// sent counts one send to registry and what came of it.
func (m *SendMetrics) sent(registry string, o transmit.Outcome, err error, took time.Duration) {
	if m == nil {
		return
	}
	outcome := "sent"
	switch {
	case err != nil && errors.Is(err, transmit.ErrTransient):
		outcome = "failed"
	case err != nil:
		outcome = "error"
	case o.Refused:
		outcome = "refused"
	case o.Acknowledged:
		outcome = "acknowledged"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.per[registry]
	if f == nil {
		f = &sendFigures{outcomes: map[string]int64{}, buckets: make([]int64, len(latencyBuckets))}
		m.per[registry] = f
	}
	f.outcomes[outcome]++
	secs := took.Seconds()
	for i, b := range latencyBuckets {
		if secs <= b {
			f.buckets[i]++
		}
	}
	f.count++
	f.sum += secs
}

// WriteTo writes the send counters and latency histogram in the
// Prometheus text format.
func (m *SendMetrics) WriteTo(w io.Writer) (int64, error) {
	var n int64
	p := func(format string, args ...any) {
		k, _ := fmt.Fprintf(w, format, args...)
		n += int64(k)
	}
	p("# HELP etatcivil_registry_sends_total Messages sent to the registries, by registry and outcome (failed: unavailable, retried).\n# TYPE etatcivil_registry_sends_total counter\n")
	if m == nil {
		return n, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	regs := make([]string, 0, len(m.per))
	for r := range m.per {
		regs = append(regs, r)
	}
	slices.Sort(regs)
	for _, r := range regs {
		f := m.per[r]
		outs := make([]string, 0, len(f.outcomes))
		for o := range f.outcomes {
			outs = append(outs, o)
		}
		slices.Sort(outs)
		for _, o := range outs {
			p("etatcivil_registry_sends_total{registry=%q,outcome=%q} %d\n", r, o, f.outcomes[o])
		}
	}
	p("# HELP etatcivil_registry_send_seconds Time to send one message and read the answer.\n# TYPE etatcivil_registry_send_seconds histogram\n")
	for _, r := range regs {
		f := m.per[r]
		for i, b := range latencyBuckets {
			p("etatcivil_registry_send_seconds_bucket{registry=%q,le=\"%g\"} %d\n", r, b, f.buckets[i])
		}
		p("etatcivil_registry_send_seconds_bucket{registry=%q,le=\"+Inf\"} %d\n", r, f.count)
		p("etatcivil_registry_send_seconds_sum{registry=%q} %g\n", r, f.sum)
		p("etatcivil_registry_send_seconds_count{registry=%q} %d\n", r, f.count)
	}
	return n, nil
}
