// Package registrysim is the registry simulator: a real HTTP server that
// stands in for the central registries (INSEE, departmental archives) in
// tests and in the local stack, with fault injection. This first version
// serves the control endpoints and counts what it receives; the
// registries' own message endpoints arrive with the transmissions.
package registrysim

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Faults are the injectable faults (INTERFACE.md, "Registry simulator").
type Faults struct {
	ErrorRate    float64 `json:"error_rate"`
	LatencyMsMax int     `json:"latency_ms_max"`
	DropRate     float64 `json:"drop_rate"`
	LostAckRate  float64 `json:"lost_ack_rate"`
	RefuseRate   float64 `json:"refuse_rate"`
}

// Stats are the counters of GET /_sim/stats.
type Stats struct {
	Received       int `json:"received"`
	Unique         int `json:"unique"`
	Resends        int `json:"resends"`
	DoubleAccepted int `json:"double_accepted"`
	Refused        int `json:"refused"`
	Acks           int `json:"acks"`
}

// Sim is the simulator's state.
type Sim struct {
	mu     sync.Mutex
	faults Faults
	stats  Stats
	per    map[string]*Stats
}

// New returns a simulator with no faults.
func New() *Sim { return &Sim{per: map[string]*Stats{}} }

// Handler serves the simulator.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&f); err != nil {
			http.Error(w, "JSON attendu: "+err.Error(), http.StatusBadRequest)
			return
		}
		if f.ErrorRate < 0 || f.ErrorRate > 1 || f.DropRate < 0 || f.DropRate > 1 || f.LostAckRate < 0 || f.LostAckRate > 1 ||
			f.RefuseRate < 0 || f.RefuseRate > 1 || f.LatencyMsMax < 0 {
			http.Error(w, "taux entre 0 et 1, latence positive", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.faults = f
		s.mu.Unlock()
		writeJSON(w, f)
	})
	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		writeJSON(w, s.faults)
	})
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := map[string]any{"received": s.stats.Received, "unique": s.stats.Unique, "resends": s.stats.Resends,
			"double_accepted": s.stats.DoubleAccepted, "refused": s.stats.Refused, "acks": s.stats.Acks, "registries": s.per}
		writeJSON(w, out)
	})
	mux.HandleFunc("POST /_sim/reset", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.faults, s.stats, s.per = Faults{}, Stats{}, map[string]*Stats{}
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/messages", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []any{})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return s.faulty(mux)
}

// faulty applies latency, drops and errors to the registries' endpoints
// (never to /_sim/ control or /healthz).
func (s *Sim) faulty(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Path) >= 6 && r.URL.Path[:6] == "/_sim/" || r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		s.mu.Lock()
		f := s.faults
		s.mu.Unlock()
		if f.LatencyMsMax > 0 {
			time.Sleep(time.Duration(rand.IntN(f.LatencyMsMax+1)) * time.Millisecond)
		}
		if rand.Float64() < f.DropRate {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
		}
		if rand.Float64() < f.ErrorRate {
			http.Error(w, "erreur simulée", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
