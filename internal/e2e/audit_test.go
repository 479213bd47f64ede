package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestAuditVerifyCLI: the server chains the audit log by itself;
// `etatcivil audit verify` passes (exit 0), fails naming the sequence
// number of an event edited directly in PostgreSQL (exit 1), and passes
// again once it is restored.
func TestAuditVerifyCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	verify := func() (int, map[string]any) {
		t.Helper()
		cmd := s.client(ctx, s.admin, "audit", "verify", "--json")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var rep map[string]any
		if jerr := json.Unmarshal(out, &rep); jerr != nil {
			t.Fatalf("audit verify : %v %s\n%s", err, out, stderr.String())
		}
		return exitCode(err), rep
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, rep := verify()
		if code == 0 && rep["chained"].(float64) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rien n'a été chaîné : %d %v", code, rep)
		}
		time.Sleep(time.Second)
	}
	db, err := pgx.Connect(ctx, s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var seq int64
	var actor string
	if err := db.QueryRow(ctx, `SELECT seq, actor FROM audit_events WHERE seq IS NOT NULL ORDER BY seq LIMIT 1`).Scan(&seq, &actor); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`,
		`UPDATE audit_events SET actor = 'quelqu''un d''autre' WHERE seq = 1`} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	code, rep := verify()
	fails, _ := rep["failures"].([]any)
	if code != 1 || len(fails) != 1 || fails[0].(map[string]any)["seq"].(float64) != float64(seq) {
		t.Fatalf("après modification : code %d, %v", code, rep)
	}
	out, _ := s.client(ctx, s.admin, "audit", "verify").CombinedOutput()
	if !strings.Contains(string(out), "ÉCHEC n° 1") {
		t.Fatalf("sortie lisible :\n%s", out)
	}
	if _, err := db.Exec(ctx, `UPDATE audit_events SET actor = $1 WHERE seq = 1`, actor); err != nil {
		t.Fatal(err)
	}
	if code, rep := verify(); code != 0 || rep["ok"] != true {
		t.Fatalf("après restauration : code %d, %v", code, rep)
	}
}
