package registrysim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// TestStateSurvivesRestart: a simulator restarted from its saved state
// answers a resend with the original acknowledgement, and counts the same
// act under a new key as a double acceptance.
func TestStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sim.json")
	post := func(url, key string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", url+"/http/r", bytes.NewBufferString(`{"act_id":"a1","version":1,"sealed_sha256":"`+
			"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"+`"}`))
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	first := New()
	srv := httptest.NewServer(first.Handler())
	code, ack := post(srv.URL, "k1")
	srv.Close()
	if code != 200 || ack["ack_id"] == nil {
		t.Fatalf("premier envoi : %d %v", code, ack)
	}
	if err := first.Save(path); err != nil {
		t.Fatal(err)
	}
	again, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv = httptest.NewServer(again.Handler())
	defer srv.Close()
	if code, got := post(srv.URL, "k1"); code != 200 || got["ack_id"] != ack["ack_id"] {
		t.Fatalf("renvoi après redémarrage : %d %v, attendu %v", code, got, ack["ack_id"])
	}
	post(srv.URL, "k2")
	again.mu.Lock()
	st := again.stats
	n := len(again.messages)
	again.mu.Unlock()
	if st.Unique != 1 || st.Resends != 1 || st.DoubleAccepted != 1 || st.Received != 3 || n != 2 {
		t.Fatalf("compteurs après redémarrage : %+v, %d messages", st, n)
	}
	if s, err := Load(filepath.Join(t.TempDir(), "absent.json")); err != nil || s == nil {
		t.Fatalf("état absent : %v", err)
	}
}
