package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/sample"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestNoLeaks (issue 10): a batch goes through the real server with
// accented surnames in its index data, reads with a purpose and a
// confidential reason, a bad token and the usual refusals; then the
// server's whole output (every log line, any panic), the client's, every
// error body, /metrics and the River tables are searched for the tokens,
// the token pepper, the S3 and TSA secrets, the surnames and the reason.
// First, the output must name the batch and its acts: a search of output
// that says nothing would prove nothing.
func TestNoLeaks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const tsaPassword = "mot-de-passe-TSA-9f3e"
	s := startServer(t, "ETATCIVIL_TSA_USERNAME=etatcivil", "ETATCIVIL_TSA_PASSWORD="+tsaPassword)
	tok := hubToken(t, s)
	secretOf := func(tok string) string { return tok[strings.LastIndexByte(tok, '_')+1:] }

	// Acts whose persons carry distinctive accented surnames.
	dir := filepath.Join(t.TempDir(), "lot")
	if err := sample.Generate(sample.Options{Dir: dir, Count: 6, Seed: 77, Today: time.Now()}); err != nil {
		t.Fatal(err)
	}
	surnames := []string{"Lefèvre-Ébrard", "Ærøskøbing", "Nguyễn-Čapek", "Dupré-Œuvray", "Élisabéthine", "Müller-Ñúñez"}
	mpath := filepath.Join(dir, "manifest.json")
	raw, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for i, a := range m["acts"].([]any) {
		for _, p := range a.(map[string]any)["persons"].([]any) {
			p.(map[string]any)["surname"] = surnames[i%len(surnames)]
		}
	}
	if raw, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mpath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	clientOut := bytes.NewBuffer(uploadWait(t, s, tok, dir))
	var batch struct {
		ID   string `json:"id"`
		Acts []struct {
			ID      *string `json:"id"`
			State   string  `json:"state"`
			Commune string  `json:"commune"`
		} `json:"acts"`
	}
	if err := json.Unmarshal(clientOut.Bytes()[bytes.IndexByte(clientOut.Bytes(), '{'):], &batch); err != nil {
		t.Fatalf("sortie de upload : %v\n%s", err, clientOut.String())
	}
	if len(batch.Acts) != 6 || batch.Acts[0].ID == nil {
		t.Fatalf("lot : %s", clientOut.String())
	}
	actID := *batch.Acts[0].ID

	// Reads with a confidential reason, refusals, a forged token.
	const reason = "Motif confidentiel : requête de Mᵐᵉ Éloïse 8421"
	town := strings.TrimSpace(s.run(t, "token", "create", "--role", "townhall", "--commune", batch.Acts[0].Commune, "--name", "mairie fuite"))
	forged := "ec_abcdefghijklm_" + strings.Repeat("Zq9", 11)
	var bodies bytes.Buffer
	do := func(method, path, token string, header map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest(method, s.url+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 400 {
			bodies.Write(b)
			bodies.WriteByte('\n')
		}
		return resp.StatusCode
	}
	purpose := map[string]string{"Etatcivil-Purpose": "delivrance_copie", "Etatcivil-Reason": reason}
	for _, c := range []struct {
		method, path, token string
		header              map[string]string
		want                int
	}{
		{"GET", "/api/v1/acts/" + actID + "?persons=1", town, purpose, 200},
		{"GET", "/api/v1/acts/" + actID + "/pdf", town, purpose, 200},
		{"GET", "/api/v1/acts/" + actID + "?persons=1", town, map[string]string{"Etatcivil-Reason": reason}, 400},
		{"GET", "/api/v1/acts?surname=" + url.QueryEscape(surnames[0]), forged, nil, 401},
		{"GET", "/api/v1/acts?surname=" + url.QueryEscape(surnames[0]) + "&token=" + tok, town, nil, 200},
		{"GET", "/api/v1/batches/" + batch.ID + "?token=" + tok, town, nil, 403},
		{"GET", "/api/v1/acts/" + actID + "/verification", town, purpose, 403},
		{"POST", "/api/v1/batches", tok, map[string]string{"Content-Type": "application/json"}, 400},
		{"GET", "/api/v1/nulle-part?reason=" + url.QueryEscape(reason), tok, purpose, 404},
	} {
		if got := do(c.method, c.path, c.token, c.header); got != c.want {
			t.Errorf("%s %s : %d, attendu %d", c.method, c.path, got, c.want)
		}
	}
	metrics := func() string {
		resp, err := http.Get(s.ops + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}()
	db, err := pgx.Connect(ctx, s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var river string
	if err := db.QueryRow(ctx, `SELECT coalesce(string_agg(row_to_json(j)::text, E'\n'), '') FROM river_job j`).Scan(&river); err != nil {
		t.Fatal(err)
	}
	s.stop() // its output is complete once it has exited
	logs := s.log.String()

	// The output says what happened: the batch and its acts are named.
	for _, id := range []string{batch.ID, actID} {
		if !strings.Contains(logs, id) {
			t.Errorf("les journaux ne nomment pas %s : la recherche qui suit ne prouverait rien", id)
		}
	}
	if river == "" || !strings.Contains(metrics, "etatcivil_") {
		t.Fatalf("tables River (%d octets) ou /metrics (%d octets) vides", len(river), len(metrics))
	}
	secrets := map[string]string{
		"jeton d'opérateur": tok, "secret du jeton d'opérateur": secretOf(tok),
		"jeton de mairie": town, "secret du jeton de mairie": secretOf(town),
		"jeton d'administration": s.admin, "jeton forgé": forged, "secret du jeton forgé": secretOf(forged),
		"poivre des jetons": testenv.Pepper, "secret S3": envOf(s.env, "ETATCIVIL_S3_SECRET_KEY"),
		"mot de passe TSA": tsaPassword, "motif": reason, "motif (fin)": "Éloïse 8421", "motif encodé": url.QueryEscape("Éloïse 8421"),
	}
	for _, n := range surnames {
		secrets["nom "+n] = n
		secrets["nom replié "+n] = strings.ToUpper(n)
		secrets["nom encodé "+n] = url.QueryEscape(n)
	}
	places := map[string]string{"journaux du serveur": logs, "sortie du client": clientOut.String(), "corps d'erreur": bodies.String(),
		"/metrics": metrics, "tables River": river}
	for what, secret := range secrets {
		if secret == "" {
			t.Fatalf("%s : vide", what)
		}
		for where, text := range places {
			if strings.Contains(text, secret) {
				t.Errorf("%s trouvé dans %s", what, where)
			}
		}
	}
	if strings.Contains(logs, "panic:") || strings.Contains(logs, "goroutine ") {
		t.Errorf("panique dans les journaux :\n%s", logs)
	}
}
