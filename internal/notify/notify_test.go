package notify_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/notify"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.ChildMain()
	os.Exit(m.Run())
}

func testLogger() *slog.Logger {
	if os.Getenv("ETATCIVIL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// stack starts an in-process etatcivil whose River client also runs n.
func stack(t *testing.T, n *notify.Notifier) *testenv.Stack {
	t.Helper()
	s := testenv.NewStack(t, testenv.StackOptions{Tune: func(d *ingest.Deps) {
		n.Store = d.Store
		d.Extensions = append(d.Extensions, n)
	}})
	return s
}

func deathManifest(files map[string][]byte, order []string) []byte {
	var acts []any
	for i, name := range order {
		data := files[name]
		sum := sha256.Sum256(data)
		acts = append(acts, map[string]any{"file": name, "size": len(data), "sha256": hex.EncodeToString(sum[:]), "commune": "12202",
			"kind": "deces", "year": 2020, "number": i + 1, "act_date": "2020-01-02",
			"persons": []any{map[string]any{"role": "defunt", "surname": "DURAND", "given_names": []string{}}}})
	}
	m, _ := json.Marshal(map[string]any{"hub": "h", "acts": acts})
	return m
}

// upload sends files to hub "h" as death acts of Rodez numbered in order,
// and waits until every entry is archived or rejected.
func upload(t *testing.T, s *testenv.Stack, files map[string][]byte, order []string) store.BatchView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
	m := deathManifest(files, order)
	ms := sha256.Sum256(m)
	b, _, err := c.CreateBatch(ctx, m, false, hex.EncodeToString(ms[:]))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range order {
		if err := c.PutFile(ctx, b.ID, name, bytes.NewReader(files[name]), int64(len(files[name]))); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.Submit(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	v, _, err := c.WaitBatch(ctx, b.ID, nil)
	if err != nil {
		t.Fatalf("attente du lot: %v", err)
	}
	return v
}

// collectUntil runs the collector until at least want notification
// events exist (a transaction still open elsewhere on the server holds
// the collector back for a moment).
func collectUntil(t *testing.T, s *testenv.Stack, n *notify.Notifier, want int) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := n.Collect(ctx, s.Jobs.River); err != nil {
			t.Fatal(err)
		}
		var got int
		if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_events`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d événements collectés, %d attendus", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wireEvent is an event as a receiver reads the documented JSON.
type wireEvent struct {
	ID       int64     `json:"id"`
	Kind     string    `json:"kind"`
	ActID    *string   `json:"act_id"`
	Commune  string    `json:"commune"`
	Hub      string    `json:"hub"`
	Registry *string   `json:"registry"`
	Reason   string    `json:"reason"`
	Message  string    `json:"message"`
	At       time.Time `json:"at"`
}

// receiver is a webhook endpoint: it checks the signature with its own
// HMAC, fails the first failFirst requests with 500, and keeps each
// delivery once (by Etatcivil-Delivery).
type receiver struct {
	secret    string
	failFirst int

	mu         sync.Mutex
	requests   int
	failed     []string // delivery ids answered 500
	problems   []string
	deliveries map[string][]wireEvent
	dupes      int
}

func newReceiver(t *testing.T, secret string, failFirst int) (*receiver, string) {
	r := &receiver{secret: secret, failFirst: failFirst, deliveries: map[string][]wireEvent{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL + "/hook?token=abc"
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	ts, sig, id := req.Header.Get("Etatcivil-Timestamp"), req.Header.Get("Etatcivil-Signature"), req.Header.Get("Etatcivil-Delivery")
	mac := hmac.New(sha256.New, []byte(r.secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if req.Method != http.MethodPost || !hmac.Equal([]byte(sig), []byte(want)) || id == "" {
		r.problems = append(r.problems, "signature, méthode ou identifiant invalide: "+id)
		http.Error(w, "signature invalide", http.StatusUnauthorized)
		return
	}
	if sec, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		r.problems = append(r.problems, "horodatage "+ts)
	}
	if err := notify.Verify(r.secret, sig, ts, body, time.Now(), 5*time.Minute); err != nil {
		r.problems = append(r.problems, "Verify: "+err.Error())
	}
	if r.requests <= r.failFirst {
		r.failed = append(r.failed, id)
		http.Error(w, "indisponible", http.StatusInternalServerError)
		return
	}
	if _, seen := r.deliveries[id]; seen {
		r.dupes++
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var p struct {
		Events []wireEvent `json:"events"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		r.problems = append(r.problems, "JSON: "+err.Error())
	}
	r.deliveries[id] = p.Events
	w.WriteHeader(http.StatusNoContent)
}

// events returns the events received, by kind, and reports any event
// received in two deliveries.
func (r *receiver) events(t *testing.T) map[string][]wireEvent {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]wireEvent{}
	seen := map[int64]string{}
	for id, list := range r.deliveries {
		for _, e := range list {
			if other, ok := seen[e.ID]; ok {
				t.Errorf("événement %d reçu dans deux envois (%s, %s)", e.ID, other, id)
			}
			seen[e.ID] = id
			out[e.Kind] = append(out[e.Kind], e)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, list := range r.deliveries {
		n += len(list)
	}
	return n
}

// fixtures gives the archived act transmissions: refused locally (r1),
// abandoned (r2), and one whose acknowledgement is overdue (r3); and
// the archived entry an audit event saying it stalled.
func fixtures(t *testing.T, s *testenv.Stack, entryID string) (overdue store.Transmission) {
	t.Helper()
	ctx := context.Background()
	w, err := s.Store.Work(ctx, entryID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	err = s.Store.Transact(ctx, func(tx pgx.Tx) error {
		ids, err = store.CreateTransmissions(ctx, tx, w, []store.Target{
			{Registry: "r1", Connector: "http", Refusal: "Date de naissance du défunt absente"},
			{Registry: "r2", Connector: "http"},
			{Registry: "r3", Connector: "http"},
		})
		return err
	})
	if err != nil || len(ids) != 2 {
		t.Fatalf("transmissions %v %v", ids, err)
	}
	tr := map[string]store.Transmission{}
	for _, id := range ids {
		x, err := s.Store.Transmission(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		tr[x.Registry] = x
	}
	if _, err := s.Store.RecordAttempt(ctx, tr["r2"], []string{"pending"}, "dead",
		store.Attempt{Outcome: "failed", Error: "connexion refusée"}, "", "abandonné après 3 tentatives : connexion refusée", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.RecordAttempt(ctx, tr["r3"], []string{"pending"}, "sent", store.Attempt{Outcome: "sent", HTTPStatus: 202}, "", "", nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Store.MarkOverdue(ctx, tr["r3"].ID); err != nil || !ok {
		t.Fatalf("MarkOverdue %v %v", ok, err)
	}
	if _, err := s.Store.Pool.Exec(ctx, `INSERT INTO audit_events (actor, action, batch_id, act_id, entry_id, data)
		VALUES ('system', 'entry.state', $1, $2, $3, '{"state": "stalled", "waiting": "s3_unavailable"}')`, w.BatchID, w.ActID, w.EntryID); err != nil {
		t.Fatal(err)
	}
	return tr["r3"]
}

// TestWebhooks: events of a hub's acts reach its webhook and a webhook of
// their commune, signed, retried after failures under the same delivery
// id, each event once; webhooks of other scopes get nothing.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := &notify.Notifier{Logger: testLogger(), Backoff: func(int) time.Duration { return 100 * time.Millisecond }}
	s := stack(t, n)
	s.Hub(t, "h", "12202")
	s.Hub(t, "autre", "75056")

	const secret = "un-secret-partagé-de-test-0123456789"
	hubRecv, hubURL := newReceiver(t, secret, 2)
	communeRecv, communeURL := newReceiver(t, "autre-secret-0123456789", 0)
	otherRecv, otherURL := newReceiver(t, "troisième-secret-0123456789", 0)
	hooks := []store.Webhook{
		{HubID: "h", URL: hubURL, Secret: secret},
		{Commune: "12202", URL: communeURL, Secret: communeRecv.secret},
		{Commune: "75056", URL: otherURL, Secret: otherRecv.secret},
		{HubID: "h", Commune: "75056", URL: otherURL, Secret: otherRecv.secret},
		{HubID: "autre", URL: otherURL, Secret: otherRecv.secret},
	}
	for i, h := range hooks {
		w, err := s.Store.CreateWebhook(ctx, store.System, h)
		if err != nil {
			t.Fatal(err)
		}
		hooks[i] = w
	}

	files := map[string][]byte{"bon.pdf": pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 3, Pages: 1, DPI: 100}), "mauvais.pdf": []byte("pas un pdf")}
	b := upload(t, s, files, []string{"bon.pdf", "mauvais.pdf"})
	if b.Counts.Archived != 1 || b.Counts.Rejected != 1 {
		t.Fatalf("lot %+v", b.Counts)
	}
	good, bad := b.Acts[0], b.Acts[1]
	r3 := fixtures(t, s, good.EntryID)
	collectUntil(t, s, n, 5)

	deadline := time.Now().Add(60 * time.Second)
	for hubRecv.count() < 5 || communeRecv.count() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("webhooks: %d et %d événements reçus, 5 attendus", hubRecv.count(), communeRecv.count())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The overdue transmission is acknowledged at last: collected again,
	// it is not notified twice.
	if _, err := s.Store.RecordAttempt(ctx, r3, []string{"overdue"}, "acknowledged", store.Attempt{Outcome: "acknowledged", HTTPStatus: 200}, "ack-1", "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Collect(ctx, s.Jobs.River); err != nil {
		t.Fatal(err)
	}
	var overdue int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_events WHERE kind = 'overdue'`).Scan(&overdue); err != nil {
		t.Fatal(err)
	}
	if overdue != 1 {
		t.Errorf("%d événements « overdue » pour une transmission, 1 attendu", overdue)
	}

	for name, r := range map[string]*receiver{"opérateur": hubRecv, "commune": communeRecv} {
		got := r.events(t)
		want := map[string]struct{ registry, reason, message string }{
			"rejected": {"", "not_pdf", "n'est pas un PDF"},
			"stalled":  {"", "s3_unavailable", "stockage S3 indisponible"},
			"refused":  {"r1", "Date de naissance du défunt absente", "« r1 » a refusé la transmission : Date de naissance du défunt absente."},
			"dead":     {"r2", "abandonné après 3 tentatives : connexion refusée", "« r2 » a été abandonnée"},
			"overdue":  {"r3", "ack_overdue", "« r3 » n'a pas accusé réception"},
		}
		for kind, w := range want {
			list := got[kind]
			if len(list) != 1 {
				t.Errorf("%s: %d événements %s, 1 attendu", name, len(list), kind)
				continue
			}
			e := list[0]
			act := deref(good.ID)
			if kind == "rejected" {
				act = deref(bad.ID)
			}
			reg := ""
			if e.Registry != nil {
				reg = *e.Registry
			}
			if e.ActID == nil || *e.ActID != act || e.Commune != "12202" || e.Hub != "h" || reg != w.registry ||
				e.Reason != w.reason || !strings.Contains(e.Message, w.message) || e.At.IsZero() {
				t.Errorf("%s: événement %s inattendu: %+v (acte %v, registre %q)", name, kind, e, e.ActID, reg)
			}
		}
		r.mu.Lock()
		if len(r.problems) > 0 || r.dupes > 0 {
			t.Errorf("%s: %v, %d doublons", name, r.problems, r.dupes)
		}
		r.mu.Unlock()
	}

	// The two failures were retries of deliveries taken later, same id.
	hubRecv.mu.Lock()
	failed := append([]string(nil), hubRecv.failed...)
	hubRecv.mu.Unlock()
	if len(failed) != 2 {
		t.Fatalf("%d échecs simulés, 2 attendus", len(failed))
	}
	for _, id := range failed {
		hubRecv.mu.Lock()
		_, ok := hubRecv.deliveries[id]
		hubRecv.mu.Unlock()
		if !ok {
			t.Errorf("l'envoi %s refusé (500) n'a jamais été repris", id)
		}
	}
	var state string
	var attempts int
	var lastErr *string
	if err := s.Store.Pool.QueryRow(ctx, `SELECT state, attempts, last_error FROM notification_deliveries WHERE id = $1`, failed[0]).
		Scan(&state, &attempts, &lastErr); err != nil {
		t.Fatal(err)
	}
	wantAttempts := 3
	if failed[1] != failed[0] {
		wantAttempts = 2
	}
	if state != "delivered" || attempts != wantAttempts || lastErr != nil {
		t.Errorf("envoi %s: %s après %d essais (%v), delivered après %d attendu", failed[0], state, attempts, lastErr, wantAttempts)
	}

	// Other scopes: no delivery at all.
	var others int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_deliveries WHERE webhook_id = ANY($1)`,
		[]string{hooks[2].ID, hooks[3].ID, hooks[4].ID}).Scan(&others); err != nil {
		t.Fatal(err)
	}
	otherRecv.mu.Lock()
	defer otherRecv.mu.Unlock()
	if others != 0 || otherRecv.requests != 0 {
		t.Errorf("webhooks d'autres périmètres: %d envois, %d requêtes", others, otherRecv.requests)
	}
}

// TestWebhookFailsThenRetry: a receiver that keeps failing leaves the
// delivery failed after its budget, with its last error (no secret in
// it); a retry sends it again, same id, once the receiver is back.
func TestWebhookFailsThenRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := &notify.Notifier{Logger: testLogger(), MaxAttempts: 3, Backoff: func(int) time.Duration { return 50 * time.Millisecond }}
	s := stack(t, n)
	s.Hub(t, "h", "12202")
	const secret = "secret-qui-ne-doit-jamais-fuiter-42"
	r, url := newReceiver(t, secret, 1000)
	w, err := s.Store.CreateWebhook(ctx, store.System, store.Webhook{HubID: "h", URL: url, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	upload(t, s, map[string][]byte{"mauvais.pdf": []byte("pas un pdf")}, []string{"mauvais.pdf"})
	collectUntil(t, s, n, 1)

	var id, state string
	var attempts int
	var status *int
	var lastErr *string
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.Store.Pool.QueryRow(ctx, `SELECT id, state, attempts, last_status, last_error FROM notification_deliveries WHERE webhook_id = $1`, w.ID).
			Scan(&id, &state, &attempts, &status, &lastErr)
		if err != nil && err != pgx.ErrNoRows {
			t.Fatal(err)
		}
		if state == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("envoi toujours %q après %d essais", state, attempts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if attempts != 3 || status == nil || *status != 500 || lastErr == nil || !strings.Contains(*lastErr, "500") ||
		strings.Contains(*lastErr, secret) || strings.Contains(*lastErr, "token=abc") {
		t.Errorf("envoi abandonné: %d essais, statut %v, erreur %v", attempts, status, lastErr)
	}
	list, err := s.Store.Deliveries(ctx, "failed", 10)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("notifications list --failed: %+v %v", list, err)
	}

	r.mu.Lock()
	r.failFirst = 0 // the receiver is back
	r.mu.Unlock()
	done, err := notify.Retry(ctx, s.Store, store.System, []string{id})
	if err != nil || len(done) != 1 {
		t.Fatalf("relance: %v %v", done, err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for r.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("envoi relancé jamais reçu")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	_, ok := r.deliveries[id]
	r.mu.Unlock()
	if !ok {
		t.Errorf("la relance n'a pas gardé l'identifiant d'envoi %s", id)
	}
	// Retrying a delivery that is not failed does nothing.
	done, err = notify.Retry(ctx, s.Store, store.System, []string{id})
	if err != nil || len(done) != 0 {
		t.Errorf("relance d'un envoi non abandonné: %v %v", done, err)
	}
}
