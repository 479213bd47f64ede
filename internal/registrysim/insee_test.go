package registrysim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Paris without the host's zoneinfo

	"github.com/etatcivil/etatcivil/internal/inseelot"
)

const (
	lotKey  = "3f1c7a9e0b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e"
	lotKey2 = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1"
)

// needXmllint fails the test (never skips it) when xmllint is missing:
// without it the schema is not checked.
func needXmllint(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		t.Fatal("xmllint introuvable : installez libxml2-utils ; ces tests ne se sautent pas.")
	}
}

// birthAct is a complete birth act numbered n, version v.
func birthAct(n, v int) inseelot.Act {
	return inseelot.Act{
		ActID: fmt.Sprintf("naissance-%d", n), Number: n, Version: v, Kind: "naissance",
		ActDate: "2025-03-30", EventDate: "2025-03-29",
		Persons: []inseelot.Person{
			{Role: "titulaire", Surname: "DUPRÉ", GivenNames: []string{"Léa", "Marie"}, Sex: "F", BirthDate: "2025-03-29", BirthPlace: "Rodez (Aveyron)"},
			{Role: "pere", Surname: "DUPRÉ", GivenNames: []string{"Jean"}, Sex: "M", BirthDate: "1990-05-02", BirthPlace: "Albi (Tarn)"},
			{Role: "mere", Surname: "MARTIN", GivenNames: []string{"Anne"}, Sex: "F"},
		},
	}
}

// lotOf is the XML of a valid birth lot of Rodez for 30 March 2025 under
// id, with the given acts.
func lotOf(t *testing.T, id string, acts ...inseelot.Act) []byte {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	from, to := inseelot.Period(inseelot.NatureNaissance, time.Date(2025, 3, 30, 10, 0, 0, 0, loc), loc)
	doc, err := inseelot.Lot{
		ID: id, Hub: "smica-aveyron", Commune: "12202", Nature: inseelot.NatureNaissance,
		From: from, To: to, Issued: time.Date(2025, 4, 1, 2, 0, 0, 0, loc), Acts: acts,
	}.XML()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// goodLot is a valid lot of births n° 7, 9 and 12.
func goodLot(t *testing.T, id string) []byte {
	return lotOf(t, id, birthAct(7, 1), birthAct(9, 1), birthAct(12, 1))
}

func newSim(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(New().Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

type inseeReply struct {
	status int
	body   []byte
	AckID  string `json:"ack_id"`
	Reason string `json:"reason"`
	// Refused is kept as raw maps so that a missing field is visible.
	Refused []map[string]any `json:"refused"`
}

// postLot sends a lot to /insee/insee under key ("" sends no key).
func postLot(t *testing.T, url, key string, doc []byte) inseeReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/insee/insee", bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/xml")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := inseeReply{status: resp.StatusCode, body: body}
	if len(body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("réponse JSON illisible %q : %v", body, err)
		}
	}
	return out
}

func setFaults(t *testing.T, url, faults string) {
	t.Helper()
	resp, err := http.Post(url+"/_sim/faults", "application/json", strings.NewReader(faults))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /_sim/faults %s : %s", faults, resp.Status)
	}
}

type simStats struct {
	Stats
	Registries map[string]Stats `json:"registries"`
}

func getStats(t *testing.T, url string) simStats {
	t.Helper()
	resp, err := http.Get(url + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st simStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// wantStats checks the totals and the insee registry's figures.
func wantStats(t *testing.T, url string, want Stats) {
	t.Helper()
	st := getStats(t, url)
	if st.Stats != want {
		t.Errorf("stats = %+v, attendu %+v", st.Stats, want)
	}
	if got := st.Registries["insee"]; got != want {
		t.Errorf("stats de insee = %+v, attendu %+v", got, want)
	}
}

func getMessages(t *testing.T, url string) []Message {
	t.Helper()
	resp, err := http.Get(url + "/_sim/messages?registry=insee")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var msgs []Message
	if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestINSEEAccept(t *testing.T) {
	needXmllint(t)
	url := newSim(t)
	doc := goodLot(t, lotKey)
	r := postLot(t, url, lotKey, doc)
	if r.status != http.StatusOK || r.AckID != "insee-ack-000001" {
		t.Fatalf("réponse %d %s, attendu 200 et ack_id insee-ack-000001", r.status, r.body)
	}
	wantStats(t, url, Stats{Received: 1, Unique: 1, Acks: 1})
	msgs := getMessages(t, url)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, attendu 1", len(msgs))
	}
	if m := msgs[0]; m.Registry != "insee" || m.IdempotencyKey != lotKey || m.XML != string(doc) {
		t.Errorf("message gardé = %s / %s / %d octets, attendu insee / %s / le lot envoyé", m.Registry, m.IdempotencyKey, len(m.XML), lotKey)
	}
}

func TestINSEEResend(t *testing.T) {
	needXmllint(t)
	url := newSim(t)
	doc := goodLot(t, lotKey)
	first := postLot(t, url, lotKey, doc)
	if first.status != http.StatusOK || first.AckID == "" {
		t.Fatalf("premier envoi : %d %s", first.status, first.body)
	}
	again := postLot(t, url, lotKey, doc)
	if again.status != http.StatusOK || again.AckID != first.AckID {
		t.Fatalf("renvoi : %d %s, attendu 200 et ack_id %s", again.status, again.body, first.AckID)
	}
	wantStats(t, url, Stats{Received: 2, Unique: 1, Resends: 1, Acks: 2})
	if n := len(getMessages(t, url)); n != 1 {
		t.Errorf("%d messages gardés, attendu 1 (un renvoi n'est pas un nouveau message)", n)
	}
}

func TestINSEEDoubleAccepted(t *testing.T) {
	needXmllint(t)
	url := newSim(t)
	if r := postLot(t, url, lotKey, goodLot(t, lotKey)); r.status != http.StatusOK {
		t.Fatalf("premier lot : %d %s", r.status, r.body)
	}
	// Another act version under a new key is not a double acceptance.
	if r := postLot(t, url, lotKey2, lotOf(t, lotKey2, birthAct(9, 2))); r.status != http.StatusOK {
		t.Fatalf("version 2 : %d %s", r.status, r.body)
	}
	wantStats(t, url, Stats{Received: 2, Unique: 2, Acks: 2})
	// The same acts under a third key are, even mixed with a new act.
	const key3 = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	r := postLot(t, url, key3, lotOf(t, key3, birthAct(12, 1), birthAct(13, 1)))
	if r.status != http.StatusOK || r.AckID != "insee-ack-000003" {
		t.Fatalf("même acte sous une nouvelle clé : %d %s, attendu 200 (accepté et compté)", r.status, r.body)
	}
	wantStats(t, url, Stats{Received: 3, Unique: 2, DoubleAccepted: 1, Acks: 3})
}

func TestINSEESchemaInvalid(t *testing.T) {
	needXmllint(t)
	url := newSim(t)
	doc := regexp.MustCompile(`\s*<emetteur>[^<]*</emetteur>`).ReplaceAll(goodLot(t, lotKey), nil)
	if bytes.Contains(doc, []byte("emetteur")) {
		t.Fatal("emetteur toujours présent")
	}
	r := postLot(t, url, lotKey, doc)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("réponse %d %s, attendu 422", r.status, r.body)
	}
	if !strings.HasPrefix(r.Reason, "lot non conforme au schéma urn:etatcivil:lot:1 : ") || !strings.Contains(r.Reason, "emetteur") {
		t.Errorf("raison %q : le schéma et l'élément en cause attendus", r.Reason)
	}
	if r := postLot(t, url, lotKey, []byte("pas du XML")); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.Reason, "schéma") {
		t.Errorf("corps non XML : %d %s, attendu 422 (schéma)", r.status, r.body)
	}
	wantStats(t, url, Stats{Received: 2, Refused: 2})
	if n := len(getMessages(t, url)); n != 0 {
		t.Errorf("%d messages gardés, attendu 0", n)
	}
}

func TestINSEESequence(t *testing.T) {
	needXmllint(t)
	four := lotOf(t, lotKey, birthAct(1, 1), birthAct(2, 1), birthAct(3, 1), birthAct(4, 1))
	bulletin := regexp.MustCompile(`(?s)<bulletin>.*?</bulletin>`)
	cases := []struct {
		name string
		doc  []byte
		want string
	}{
		{"nombre", bytes.Replace(goodLot(t, lotKey), []byte("<nombre>3</nombre>"), []byte("<nombre>4</nombre>"), 1),
			"séquence incohérente : nombre annoncé 4, 3 bulletins reçus"},
		{"premier", bytes.Replace(goodLot(t, lotKey), []byte("<premier>7</premier>"), []byte("<premier>9</premier>"), 1),
			"séquence incohérente : premier annoncé n° 9, premier bulletin n° 7"},
		{"dernier", bytes.Replace(goodLot(t, lotKey), []byte("<dernier>12</dernier>"), []byte("<dernier>9</dernier>"), 1),
			"séquence incohérente : dernier annoncé n° 9, dernier bulletin n° 12"},
		{"ordre", func() []byte {
			// Swap bulletins 2 and 3: 1, 3, 2, 4.
			bs := bulletin.FindAll(four, -1)
			if len(bs) != 4 {
				t.Fatalf("%d bulletins", len(bs))
			}
			i := 0
			return bulletin.ReplaceAllFunc(four, func([]byte) []byte {
				i++
				return bs[[]int{0, 2, 1, 3}[i-1]]
			})
		}(), "séquence incohérente : bulletin n° 2 après le n° 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := inseelot.ValidateEmbedded(c.doc); err != nil {
				t.Fatalf("le lot modifié doit rester conforme au schéma : %v", err)
			}
			url := newSim(t)
			r := postLot(t, url, lotKey, c.doc)
			if r.status != http.StatusUnprocessableEntity || !strings.HasPrefix(r.Reason, c.want) {
				t.Fatalf("réponse %d %s, attendu 422 « %s »", r.status, r.body, c.want)
			}
			wantStats(t, url, Stats{Received: 1, Refused: 1})
		})
	}
}

func TestINSEEKeyMismatchAndMissing(t *testing.T) {
	needXmllint(t)
	url := newSim(t)
	doc := goodLot(t, lotKey)
	r := postLot(t, url, lotKey2, doc)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.Reason, "identifiant du lot") ||
		!strings.Contains(r.Reason, lotKey) || !strings.Contains(r.Reason, lotKey2) {
		t.Fatalf("clé ≠ identifiant : %d %s, attendu 422 nommant l'identifiant et la clé", r.status, r.body)
	}
	r = postLot(t, url, "", doc)
	if r.status != http.StatusUnprocessableEntity || r.Reason != "Idempotency-Key manquante" {
		t.Fatalf("sans clé : %d %s, attendu 422 Idempotency-Key manquante", r.status, r.body)
	}
	wantStats(t, url, Stats{Received: 2, Refused: 2})
}

func TestINSEETooBig(t *testing.T) {
	url := newSim(t)
	doc := append(goodLot(t, lotKey), bytes.Repeat([]byte(" "), maxLotBytes)...)
	r := postLot(t, url, lotKey, doc)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("lot de %d octets : %d %s, attendu 413", len(doc), r.status, r.body)
	}
	wantStats(t, url, Stats{Received: 1, Refused: 1})
}

func TestINSEERefuseRate(t *testing.T) {
	needXmllint(t)
	url := newSim(t)
	setFaults(t, url, `{"refuse_rate":1}`)
	doc := goodLot(t, lotKey)
	r := postLot(t, url, lotKey, doc)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("réponse %d %s, attendu 422", r.status, r.body)
	}
	if r.Reason != "refus simulé : bulletin n° 7 non conforme" {
		t.Errorf("raison %q", r.Reason)
	}
	if len(r.Refused) != 1 || r.Refused[0]["numero"] != float64(7) || r.Refused[0]["reason"] != "refus simulé : bulletin non conforme" {
		t.Errorf("refused = %v, attendu [{numero 7, reason …}]", r.Refused)
	}
	wantStats(t, url, Stats{Received: 1, Refused: 1})
	if n := len(getMessages(t, url)); n != 0 {
		t.Errorf("%d messages gardés, attendu 0", n)
	}
	// A refused lot is not remembered: sent again without the fault, it is
	// accepted as new.
	setFaults(t, url, `{}`)
	if r := postLot(t, url, lotKey, doc); r.status != http.StatusOK || r.AckID == "" {
		t.Fatalf("après refus : %d %s, attendu 200", r.status, r.body)
	}
	wantStats(t, url, Stats{Received: 2, Refused: 1, Unique: 1, Acks: 1})
}

func TestINSEELostAck(t *testing.T) {
	needXmllint(t)
	url := newSim(t)
	setFaults(t, url, `{"lost_ack_rate":1}`)
	doc := goodLot(t, lotKey)
	r := postLot(t, url, lotKey, doc)
	if r.status != http.StatusAccepted || len(r.body) != 0 {
		t.Fatalf("réponse %d %q, attendu 202 sans corps", r.status, r.body)
	}
	wantStats(t, url, Stats{Received: 1, Unique: 1})
	if n := len(getMessages(t, url)); n != 1 {
		t.Fatalf("%d messages gardés, attendu 1 (le lot est accepté)", n)
	}
	setFaults(t, url, `{"lost_ack_rate":0}`)
	again := postLot(t, url, lotKey, doc)
	if again.status != http.StatusOK || again.AckID != "insee-ack-000001" {
		t.Fatalf("renvoi : %d %s, attendu 200 et ack_id insee-ack-000001", again.status, again.body)
	}
	wantStats(t, url, Stats{Received: 2, Unique: 1, Resends: 1, Acks: 1})
}

// TestINSEEConcurrentSameKey: the same lot sent at once under one key is
// accepted once; every other copy is a resend with the same ack id.
func TestINSEEConcurrentSameKey(t *testing.T) {
	needXmllint(t)
	url := newSim(t)
	doc := goodLot(t, lotKey)
	const n = 8
	acks := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, url+"/insee/insee", bytes.NewReader(doc))
			req.Header.Set("Idempotency-Key", lotKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var out struct {
				AckID string `json:"ack_id"`
			}
			if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
				t.Errorf("envoi %d : %s", i, resp.Status)
			}
			acks[i] = out.AckID
		})
	}
	wg.Wait()
	for i, a := range acks {
		if a != acks[0] || a == "" {
			t.Errorf("ack_id %d = %q, attendu %q partout", i, a, acks[0])
		}
	}
	wantStats(t, url, Stats{Received: n, Unique: 1, Resends: n - 1, Acks: n})
}
