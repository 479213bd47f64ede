// Package registrysim is the registry simulator: a real HTTP server that
// stands in for the central registries (INSEE, departmental archives) in
// tests and in the local stack, with fault injection. This first version
// serves the control endpoints and the generic JSON registry
// (POST /http/{registry}), and the insee and archives endpoints for
// their connectors.
package registrysim

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
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
	// keys: registry + idempotency key → acknowledgement id
	keys map[string]string
	// content: registry + what a message carries → the key it came under
	content map[string]string
	// replies: registry + idempotency key → the SEDA reply sent
	replies map[string][]byte
	seq     int
	// messages: the accepted messages, oldest first, at most maxMessages
	messages []Message
}

// maxMessages bounds the accepted messages kept for GET /_sim/messages.
const maxMessages = 20000

// Message is one accepted message, as GET /_sim/messages lists it. XML
// is the message itself: the lot for insee, the ArchiveTransfer
// (manifest.xml) for archives, the JSON body for http.
type Message struct {
	Registry       string    `json:"registry"`
	IdempotencyKey string    `json:"idempotency_key"`
	ReceivedAt     time.Time `json:"received_at"`
	XML            string    `json:"xml"`
}

// record keeps an accepted message; the caller holds s.mu.
func (s *Sim) record(registry, key string, msg []byte) {
	if len(s.messages) >= maxMessages {
		s.messages = append(s.messages[:0], s.messages[len(s.messages)-maxMessages+1:]...)
	}
	s.messages = append(s.messages, Message{Registry: registry, IdempotencyKey: key, ReceivedAt: time.Now().UTC(), XML: string(msg)})
}

// New returns a simulator with no faults.
func New() *Sim {
	return &Sim{per: map[string]*Stats{}, keys: map[string]string{}, content: map[string]string{}, replies: map[string][]byte{}}
}

func (s *Sim) reg(id string) *Stats {
	st := s.per[id]
	if st == nil {
		st = &Stats{}
		s.per[id] = st
	}
	return st
}

// count applies f to the totals and to registry id's figures.
func (s *Sim) count(id string, f func(*Stats)) {
	f(&s.stats)
	f(s.reg(id))
}

// handleHTTP is the generic JSON registry: one act version per message,
// under an Idempotency-Key. A resend under a known key gets the original
// acknowledgement; the same act version under a new key is counted in
// double_accepted.
func (s *Sim) handleHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("registry")
	key := r.Header.Get("Idempotency-Key")
	var msg struct {
		ActID        string `json:"act_id"`
		Version      int    `json:"version"`
		SealedSHA256 string `json:"sealed_sha256"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &msg)
	}
	if err != nil || key == "" || msg.ActID == "" ||
		len(msg.SealedSHA256) != 64 {
		s.mu.Lock()
		s.count(id, func(st *Stats) { st.Received++; st.Refused++ })
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(map[string]string{"reason": "message invalide : act_id, version, sealed_sha256 et Idempotency-Key requis"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(id, func(st *Stats) { st.Received++ })
	k := id + "\x00" + key
	if ack, ok := s.keys[k]; ok {
		s.count(id, func(st *Stats) { st.Resends++; st.Acks++ })
		writeJSON(w, map[string]string{"ack_id": ack})
		return
	}
	if s.randFloat() < s.faults.RefuseRate {
		s.count(id, func(st *Stats) { st.Refused++ })
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(map[string]string{"reason": "refus simulé : acte non conforme"})
		return
	}
	c := fmt.Sprintf("%s\x00%s\x00%d\x00%s", id, msg.ActID, msg.Version, msg.SealedSHA256)
	if prev, ok := s.content[c]; ok && prev != key {
		s.count(id, func(st *Stats) { st.DoubleAccepted++ })
	} else {
		s.count(id, func(st *Stats) { st.Unique++ })
	}
	s.content[c] = key
	s.record(id, key, body)
	s.seq++
	ack := fmt.Sprintf("%s-ack-%06d", id, s.seq)
	s.keys[k] = ack
	if s.randFloat() < s.faults.LostAckRate {
		// Accepted, acknowledgement lost for this attempt: a resend gets it.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	s.count(id, func(st *Stats) { st.Acks++ })
	writeJSON(w, map[string]string{"ack_id": ack})
}

// Handler serves the simulator.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&f); err != nil {
			http.Error(w, "JSON attendu: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.SetFaults(f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
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
	mux.HandleFunc("POST /http/{registry}", s.handleHTTP)
	mux.HandleFunc("POST /archives/{registry}", s.handleArchives)
	mux.HandleFunc("POST /insee/{registry}", s.handleINSEE)
	mux.HandleFunc("POST /_sim/reset", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.faults, s.stats, s.per = Faults{}, Stats{}, map[string]*Stats{}
		s.keys, s.content, s.replies = map[string]string{}, map[string]string{}, map[string][]byte{}
		s.messages = nil
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/messages", s.handleMessages)
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

// handleMessages lists the last N accepted messages (limit, default 100,
// at most maxMessages), newest first, of one registry or all.
func (s *Sim) handleMessages(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			http.Error(w, "limit : entier positif attendu", http.StatusBadRequest)
			return
		}
		limit = min(n, maxMessages)
	}
	reg := r.URL.Query().Get("registry")
	s.mu.Lock()
	out := []Message{}
	for i := len(s.messages) - 1; i >= 0 && len(out) < limit; i-- {
		if reg == "" || s.messages[i].Registry == reg {
			out = append(out, s.messages[i])
		}
	}
	s.mu.Unlock()
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Sim) randFloat() float64 { return rand.Float64() }
