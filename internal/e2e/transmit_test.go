package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/inseelot"
	"github.com/etatcivil/etatcivil/internal/sample"
	"github.com/etatcivil/etatcivil/internal/seda"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// regSim is a running bin/registry-sim.
type regSim struct {
	url    string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuffer
}

// startSim starts bin/registry-sim on addr, keeping its memory in state.
func startSim(t *testing.T, addr, state string, flags ...string) *regSim {
	t.Helper()
	r := &regSim{url: "http://" + addr, log: &syncBuffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command(testenv.Bin(t, "registry-sim"), append([]string{"--addr", addr, "--state", state}, flags...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(r.stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(r.url + "/healthz"); err == nil {
			resp.Body.Close()
			return r
		}
		select {
		case <-r.exited:
			t.Fatalf("le simulateur s'est arrêté :\n%s", r.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("simulateur injoignable :\n%s", r.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *regSim) stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

func (r *regSim) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(r.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

const acceptanceRegistries = `registries:
  - id: insee
    connector: insee
    endpoint: ${ETATCIVIL_REGISTRY_SIM}/insee/insee
    route: {kinds: [naissance, mariage, deces], flows: [courant], versions: first}
    cadence: by_kind
    ack_deadline: 10s
    retry: {initial_backoff: 1s, max_backoff: 15s, max_attempts: 50}
  - id: archives
    connector: archives
    endpoint: ${ETATCIVIL_REGISTRY_SIM}/archives/archives
    route: {versions: all}
    cadence: immediate
    ack_deadline: 10s
    retry: {initial_backoff: 1s, max_backoff: 15s, max_attempts: 50}
  - id: deces
    connector: http
    endpoint: ${ETATCIVIL_REGISTRY_SIM}/http/deces
    route: {kinds: [deces]}
    ack_deadline: 10s
    retry: {initial_backoff: 1s, max_backoff: 15s, max_attempts: 50}
`

// TestTransmissionsAcceptance is issue 4's acceptance, through the real
// binaries: 500 archived acts of mixed kinds and flows, a simulator at 30 %
// 5xx, latency up to 2 s, 10 % dropped connections and 10 % lost
// acknowledgements, stopped for a minute mid-run. Every transmission ends
// acknowledged at every registry it routes to, each message accepted once
// (double_accepted 0, unique as expected), every attempt kept; what INSEE
// received validates against our schema with complete, ordered act
// numbers, what the archives received against SEDA 2.3. Then a registry
// added by SIGHUP (a bad file is refused, the registries in force stay)
// gets the archived acts by backfill, and its refusals show in act show.
func TestTransmissionsAcceptance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	work := t.TempDir()
	simAddr, simState := freePort(t), filepath.Join(work, "sim.json")
	faults := []string{"--error-rate", "0.3", "--latency-ms-max", "2000", "--drop-rate", "0.1", "--lost-ack-rate", "0.1"}
	sim := startSim(t, simAddr, simState, faults...)
	regFile := filepath.Join(work, "registries.yaml")
	if err := os.WriteFile(regFile, []byte(acceptanceRegistries), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "ETATCIVIL_REGISTRIES_FILE="+regFile, "ETATCIVIL_REGISTRY_SIM="+sim.url)
	tok := hubToken(t, s)

	const n = 500
	dir := filepath.Join(work, "batch")
	if err := sample.Generate(sample.Options{Dir: dir, Count: n, Seed: 44, Today: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var m sample.Manifest
	readJSON(t, filepath.Join(dir, "manifest.json"), &m)
	want := map[string]int{}
	type register struct {
		commune, nature string
		year            int
	}
	inseeNumbers := map[register][]int{}
	for _, e := range m.Acts {
		want["archives"]++
		if e.Kind == "deces" {
			want["deces"]++
		}
		if nature, ok := inseelot.NatureOf(string(e.Kind), e.SansVie); ok && e.Flow == "courant" {
			want["insee"]++
			k := register{e.Commune, nature, e.Year}
			inseeNumbers[k] = append(inseeNumbers[k], e.Number)
		}
	}
	if want["insee"] == 0 || want["deces"] == 0 {
		t.Fatalf("échantillon sans acte pour un registre : %v", want)
	}

	db, err := pgx.Connect(ctx, s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	count := func(query string, args ...any) int {
		t.Helper()
		var c int
		if err := db.QueryRow(ctx, query, args...).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Upload in the background; once the first per-act transmissions are
	// acknowledged, the simulator goes away for a minute.
	up := s.client(ctx, tok, "upload", "--wait", "--timeout", "10m", "--json", dir)
	var upOut, upErr bytes.Buffer
	up.Stdout, up.Stderr = &upOut, &upErr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	upDone := make(chan error, 1)
	go func() { upDone <- up.Wait() }()
	deadline := time.Now().Add(5 * time.Minute)
	for count(`SELECT count(*) FROM transmissions WHERE registry = 'deces' AND state = 'acknowledged'`) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("aucune transmission acquittée avant l'arrêt du simulateur\n%s", s.jobs(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	sim.stop()
	stoppedAt := time.Now()
	t.Logf("simulateur arrêté ; %d transmissions acquittées", count(`SELECT count(*) FROM transmissions WHERE state = 'acknowledged'`))
	if err := <-upDone; err != nil {
		t.Fatalf("envoi : %v\n%s", err, upErr.String())
	}
	b := decodeBatch(t, upOut.Bytes())
	if b.Counts.Archived != n {
		t.Fatalf("lot : %+v", b.Counts)
	}
	// Lots now, whatever the cadence: sent while the registry is away.
	if out, err := s.client(ctx, s.admin, "transmissions", "flush").CombinedOutput(); err != nil {
		t.Fatalf("flush : %v\n%s", err, out)
	}
	time.Sleep(time.Until(stoppedAt.Add(time.Minute)))
	waiting := count(`SELECT count(*) FROM transmissions WHERE state <> 'acknowledged'`)
	if waiting == 0 {
		t.Fatal("tout était acquitté avant le retour du simulateur : l'arrêt n'a rien prouvé")
	}
	t.Logf("simulateur relancé après %s ; %d transmissions en attente", time.Since(stoppedAt).Round(time.Second), waiting)
	sim = startSim(t, simAddr, simState, faults...)
	restarted := time.Now()

	deadline = time.Now().Add(10 * time.Minute)
	for {
		open := count(`SELECT count(*) FROM transmissions WHERE state <> 'acknowledged'`)
		if open == 0 {
			break
		}
		if bad := count(`SELECT count(*) FROM transmissions WHERE state IN ('refused', 'dead')`); bad > 0 || time.Now().After(deadline) {
			out, _ := s.client(ctx, s.admin, "transmissions", "stats").CombinedOutput()
			t.Fatalf("%d transmissions non acquittées (%d refusées ou abandonnées)\n%s\n%s", open, bad, out, s.jobs(t))
		}
		time.Sleep(time.Second)
	}

	t.Logf("tout acquitté %s après le retour du simulateur : %d transmissions, %d tentatives, %d lots",
		time.Since(restarted).Round(time.Second), count(`SELECT count(*) FROM transmissions`),
		count(`SELECT count(*) FROM transmission_attempts`), count(`SELECT count(*) FROM lots`))

	// Every registry got what routes to it, acknowledged.
	for reg, w := range want {
		if got := count(`SELECT count(*) FROM transmissions WHERE registry = $1 AND state = 'acknowledged' AND ack_id IS NOT NULL`, reg); got != w {
			t.Errorf("%s : %d transmissions acquittées, attendu %d", reg, got, w)
		}
	}
	if got := count(`SELECT count(*) FROM transmissions`); got != want["archives"]+want["deces"]+want["insee"] {
		t.Errorf("%d transmissions, attendu %d", got, want["archives"]+want["deces"]+want["insee"])
	}
	// The metrics say the same.
	for reg, w := range want {
		if got := s.metric(t, fmt.Sprintf(`etatcivil_transmissions{registry=%q,state="acknowledged"}`, reg)); got != int64(w) {
			t.Errorf("métrique des transmissions acquittées de %s : %d, attendu %d", reg, got, w)
		}
	}
	if got := s.metric(t, `etatcivil_registry_sends_total{registry="deces",outcome="acknowledged"}`); got != int64(want["deces"]) {
		t.Errorf("envois acquittés (deces) : %d, attendu %d", got, want["deces"])
	}
	if s.metric(t, `etatcivil_registry_sends_total{registry="deces",outcome="failed"}`) == 0 {
		t.Error("aucun envoi en échec compté")
	}
	if s.metric(t, `etatcivil_registry_send_seconds_count{registry="archives"}`) == 0 {
		t.Error("aucune latence d'envoi mesurée")
	}

	// Each message accepted once; lots as many as the simulator took.
	var stats struct {
		DoubleAccepted int `json:"double_accepted"`
		Registries     map[string]struct {
			Unique         int `json:"unique"`
			DoubleAccepted int `json:"double_accepted"`
			Resends        int `json:"resends"`
		} `json:"registries"`
	}
	sim.get(t, "/_sim/stats", &stats)
	lots := map[string]int{
		"insee":    count(`SELECT count(*) FROM lots WHERE registry = 'insee'`),
		"archives": count(`SELECT count(*) FROM lots WHERE registry = 'archives'`),
		"deces":    want["deces"],
	}
	if stats.DoubleAccepted != 0 {
		t.Errorf("double_accepted = %d", stats.DoubleAccepted)
	}
	for reg, w := range lots {
		if got := stats.Registries[reg].Unique; got != w {
			t.Errorf("%s : unique = %d, attendu %d", reg, got, w)
		}
	}
	if registers := count(`SELECT count(DISTINCT (commune, year, kind)) FROM entries WHERE state = 'archived'`); lots["archives"] < registers {
		t.Errorf("%d versements pour %d registres", lots["archives"], registers)
	}
	// Every attempt kept, and the faults (and the stop) were met.
	if bad := count(`SELECT count(*) FROM transmissions t WHERE t.attempts < 1 OR t.attempts <> (SELECT count(*) FROM transmission_attempts a WHERE a.transmission_id = t.id)`); bad != 0 {
		t.Errorf("%d transmissions dont les tentatives ne sont pas toutes gardées", bad)
	}
	if failed := count(`SELECT count(*) FROM transmission_attempts WHERE outcome = 'failed' AND error LIKE '%connection refused%'`); failed == 0 {
		t.Error("aucune tentative n'a trouvé le simulateur arrêté")
	}
	if failed := count(`SELECT count(*) FROM transmission_attempts WHERE outcome = 'failed' AND http_status = 503`); failed == 0 {
		t.Error("aucune tentative n'a reçu de 503 : les pannes n'ont pas joué")
	}
	var lostAcks int
	for _, r := range stats.Registries {
		lostAcks += r.Resends
	}
	t.Logf("simulateur : %+v", stats)
	if lostAcks == 0 {
		t.Error("aucun renvoi sous une clé déjà acceptée : les accusés perdus n'ont pas joué")
	}

	// What INSEE received: valid lots whose numbers are each register's,
	// complete and in order.
	var inseeMsgs, archMsgs []struct {
		Key string `json:"idempotency_key"`
		XML string `json:"xml"`
	}
	sim.get(t, "/_sim/messages?registry=insee&limit=10000", &inseeMsgs)
	sim.get(t, "/_sim/messages?registry=archives&limit=10000", &archMsgs)
	if len(inseeMsgs) != lots["insee"] || len(archMsgs) != lots["archives"] {
		t.Fatalf("messages reçus : %d lots INSEE (attendu %d), %d versements (attendu %d)", len(inseeMsgs), lots["insee"], len(archMsgs), lots["archives"])
	}
	got := map[register][]int{}
	for _, msg := range inseeMsgs {
		if err := inseelot.ValidateEmbedded([]byte(msg.XML)); err != nil {
			t.Fatalf("lot %s : %v", msg.Key, err)
		}
		var lot struct {
			Commune   string `xml:"commune"`
			Nature    string `xml:"nature"`
			Bulletins []struct {
				Numero   int    `xml:"numeroActe"`
				DateActe string `xml:"dateActe"`
			} `xml:"bulletins>bulletin"`
		}
		if err := xml.Unmarshal([]byte(msg.XML), &lot); err != nil {
			t.Fatal(err)
		}
		var prev int
		for _, b := range lot.Bulletins {
			if b.Numero <= prev {
				t.Errorf("lot %s : n° %d après %d", msg.Key, b.Numero, prev)
			}
			prev = b.Numero
			var year int
			fmt.Sscanf(b.DateActe, "%d", &year)
			k := register{lot.Commune, lot.Nature, year}
			got[k] = append(got[k], b.Numero)
		}
	}
	for k, nums := range inseeNumbers {
		slices.Sort(nums)
		g := slices.Clone(got[k])
		slices.Sort(g)
		if !slices.Equal(g, nums) {
			t.Errorf("INSEE %v : reçu %v, attendu %v", k, g, nums)
		}
	}
	if len(got) != len(inseeNumbers) {
		t.Errorf("INSEE : %d registres reçus, attendu %d", len(got), len(inseeNumbers))
	}
	for _, msg := range archMsgs {
		if err := seda.Validate([]byte(msg.XML)); err != nil {
			t.Fatalf("versement %s : %v", msg.Key, err)
		}
	}

	// Each act's history explains each attempt.
	var one string
	if err := db.QueryRow(ctx, `SELECT act_id::text FROM transmissions WHERE registry = 'deces' ORDER BY attempts DESC LIMIT 1`).Scan(&one); err != nil {
		t.Fatal(err)
	}
	var shown struct {
		Transmissions []struct {
			Registry string            `json:"registry"`
			Attempts int               `json:"attempts"`
			History  []json.RawMessage `json:"history"`
		} `json:"transmissions"`
	}
	out, err := s.client(ctx, tok, "act", "show", one, "--json").Output()
	if err != nil || json.Unmarshal(out, &shown) != nil || len(shown.Transmissions) < 2 {
		t.Fatalf("act show : %v\n%s", err, out)
	}
	for _, tr := range shown.Transmissions {
		if len(tr.History) != tr.Attempts || tr.Attempts < 1 {
			t.Errorf("%s : %d tentatives, %d dans l'historique", tr.Registry, tr.Attempts, len(tr.History))
		}
	}

	// A registry added while running: a bad file is refused and the
	// registries in force stay; a good one is taken on SIGHUP. This one
	// refuses everything: the acts show its reason.
	resp, err := http.Post(sim.url+"/_sim/faults", "application/json", strings.NewReader(`{"refuse_rate": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	backfill := func() (string, error) {
		out, err := s.client(ctx, s.admin, "transmissions", "backfill", "--registry", "late").CombinedOutput()
		return string(out), err
	}
	if out, err := backfill(); err == nil {
		t.Fatalf("backfill vers un registre inconnu accepté : %s", out)
	}
	hup := func(content string) {
		t.Helper()
		if err := os.WriteFile(regFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	late := acceptanceRegistries + `  - id: late
    connector: http
    endpoint: ${ETATCIVIL_REGISTRY_SIM}/http/late
    route: {kinds: [mariage], communes: ["12300"]}
    retry: {initial_backoff: 1s, max_backoff: 2s, max_attempts: 50}
`
	hup(late)
	deadline = time.Now().Add(30 * time.Second)
	var bf string
	for {
		out, err := backfill()
		if err == nil {
			bf = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registre « late » jamais pris en compte : %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	hup(late + "  - id: [cassé\n")
	time.Sleep(time.Second)
	if out, err := backfill(); err != nil || !strings.Contains(out, "0 transmission(s) créée(s)") {
		t.Fatalf("après un fichier invalide, le registre « late » doit rester en vigueur : %v\n%s", err, out)
	}
	var lateWant int
	for _, e := range m.Acts {
		if e.Kind == "mariage" && e.Commune == "12300" {
			lateWant++
		}
	}
	if !strings.Contains(bf, fmt.Sprintf(" %d transmission(s) créée(s)", lateWant)) || lateWant == 0 {
		t.Fatalf("backfill : %s (attendu %d)", bf, lateWant)
	}
	deadline = time.Now().Add(2 * time.Minute)
	for count(`SELECT count(*) FROM transmissions WHERE registry = 'late' AND state = 'refused'`) < lateWant {
		if time.Now().After(deadline) {
			t.Fatalf("transmissions « late » : %d refusées sur %d", count(`SELECT count(*) FROM transmissions WHERE registry = 'late' AND state = 'refused'`), lateWant)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var refused string
	if err := db.QueryRow(ctx, `SELECT act_id::text FROM transmissions WHERE registry = 'late' AND state = 'refused' LIMIT 1`).Scan(&refused); err != nil {
		t.Fatalf("aucune transmission refusée : %v", err)
	}
	out, err = s.client(ctx, tok, "act", "show", refused).Output()
	if err != nil || !strings.Contains(string(out), "late v1 : refusée — motif : refus simulé") {
		t.Fatalf("act show ne montre pas le refus :\n%s", out)
	}
}
