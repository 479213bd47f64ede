package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/sample"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// TestAuditorsAcceptance runs issue 7's acceptance through the real
// binaries: every PDF read leaves one event with actor and purpose, a read
// without purpose is refused; after `audit checkpoint`, an event edited,
// deleted or inserted in PostgreSQL makes `audit verify` fail naming its
// sequence number, and restoring it makes it pass; an export verifies
// offline with `audit check`, names the file a changed byte is in, and
// carries no other commune; an archived object overwritten on the
// gateway's disk is found by `fixity run`, listed by `fixity report`,
// failed by `act verify` and refused by `act fetch`.
func TestAuditorsAcceptance(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	hub := hubToken(t, s)
	auditor := strings.TrimSpace(s.run(t, "token", "create", "--role", "auditor", "--name", "Parquet de Rodez"))
	auditorID := strings.Split(auditor, "_")[1]
	dir := t.TempDir()
	if err := sample.Generate(sample.Options{Dir: dir, Count: 3, Seed: 71, Communes: []string{"12202", "12145"}}); err != nil {
		t.Fatal(err)
	}
	out, err := s.client(ctx, hub, "upload", "--wait", "--timeout", "2m", "--json", dir).Output()
	if err != nil {
		t.Fatalf("upload : %v", err)
	}
	b := decodeBatch(t, out)
	if b.Counts.Archived != 3 {
		t.Fatalf("lot : %+v", b.Counts)
	}
	// The export's commune and year: the first act's; the others of the
	// batch in the same commune and year go with it, the rest must not.
	first := b.Acts[0]
	commune, year := *first.Commune, *first.Year
	in, outside := map[string]bool{}, map[string]bool{}
	for _, e := range b.Acts {
		if *e.Commune == commune && *e.Year == year {
			in[*e.ID] = true
		} else {
			outside[*e.ID] = true
		}
	}
	actID := *first.ID

	// Reads: one event each, with actor and purpose; none without purpose.
	readEvents := func() []store.AuditEvent {
		t.Helper()
		out, err := s.client(ctx, auditor, "audit", "log", "--act", actID, "--json").Output()
		if err != nil {
			t.Fatalf("audit log : %v", err)
		}
		var all, reads []store.AuditEvent
		if err := json.Unmarshal(out, &all); err != nil {
			t.Fatal(err)
		}
		for _, e := range all {
			if e.Action == "act.read_pdf" {
				reads = append(reads, e)
			}
		}
		return reads
	}
	pdf := filepath.Join(t.TempDir(), "acte.pdf")
	if o, err := s.client(ctx, auditor, "act", "fetch", actID, "-o", pdf).CombinedOutput(); err == nil || !strings.Contains(string(o), "purpose") {
		t.Fatalf("lecture sans finalité acceptée :\n%s", o)
	}
	if o, err := s.client(ctx, auditor, "act", "fetch", actID, "-o", pdf, "--purpose", "contentieux", "--reason", "réquisition 2026/114").CombinedOutput(); err != nil {
		t.Fatalf("act fetch : %v\n%s", err, o)
	}
	reads := readEvents()
	if len(reads) != 1 || reads[0].Actor != auditorID || *reads[0].Purpose != "contentieux" || *reads[0].Reason != "réquisition 2026/114" {
		t.Fatalf("lectures enregistrées : %+v", reads)
	}

	// The chain anchored, then tampered with directly in PostgreSQL.
	s.run(t, "audit", "checkpoint")
	verify := func() (int, map[string]any) {
		t.Helper()
		cmd := s.client(ctx, auditor, "audit", "verify", "--json")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var rep map[string]any
		if jerr := json.Unmarshal(out, &rep); jerr != nil {
			t.Fatalf("audit verify : %v %s\n%s", err, out, stderr.String())
		}
		return exitCode(err), rep
	}
	if code, rep := verify(); code != 0 || rep["checkpoints"].(float64) < 1 {
		t.Fatalf("après le point d'ancrage : %d %v", code, rep)
	}
	db, err := pgx.Connect(ctx, s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	sql := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s : %v", q, err)
		}
	}
	// The server's chainer keeps chaining new events (the verifications'
	// own): hold its lock while the chain is tampered with.
	sql(`SELECT pg_advisory_lock($1)`, int64(0x65746174636976))
	sql(`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`)
	var target int64
	if err := db.QueryRow(ctx, `SELECT seq FROM audit_events WHERE act_id = $1 AND action = 'act.read_pdf'`, actID).Scan(&target); err != nil {
		t.Fatal(err)
	}
	sql(`CREATE TEMP TABLE saved AS SELECT * FROM audit_events WHERE seq = $1`, target)
	mustFailAt := func(what string) {
		t.Helper()
		code, rep := verify()
		fails, _ := rep["failures"].([]any)
		if code != 1 || len(fails) == 0 || fails[0].(map[string]any)["seq"].(float64) != float64(target) {
			t.Fatalf("%s : code %d, %v", what, code, rep)
		}
	}
	mustPass := func(what string) {
		t.Helper()
		if code, rep := verify(); code != 0 || rep["ok"] != true {
			t.Fatalf("%s : code %d, %v", what, code, rep)
		}
	}
	sql(`UPDATE audit_events SET purpose = 'controle' WHERE seq = $1`, target)
	mustFailAt("finalité modifiée")
	sql(`UPDATE audit_events SET purpose = 'contentieux' WHERE seq = $1`, target)
	mustPass("finalité restaurée")

	sql(`DELETE FROM audit_events WHERE seq = $1`, target)
	mustFailAt("lecture supprimée")
	sql(`INSERT INTO audit_events OVERRIDING SYSTEM VALUE SELECT * FROM saved`)
	mustPass("lecture réinsérée")

	// Inserted: a forged read slipped in at target, the later events
	// renumbered after it.
	sql(`UPDATE audit_events SET seq = seq + 1000000000 WHERE seq >= $1`, target)
	sql(`UPDATE audit_events SET seq = seq - 999999999 WHERE seq >= 1000000000`)
	sql(`CREATE TEMP TABLE forged AS SELECT * FROM saved`)
	sql(`UPDATE forged SET id = (SELECT max(id) + 1000000 FROM audit_events), actor = 'intrus', reason = NULL`)
	sql(`INSERT INTO audit_events OVERRIDING SYSTEM VALUE SELECT * FROM forged`)
	mustFailAt("lecture insérée")
	sql(`DELETE FROM audit_events WHERE actor = 'intrus'`)
	sql(`UPDATE audit_events SET seq = seq + 999999999 WHERE seq > $1`, target)
	sql(`UPDATE audit_events SET seq = seq - 1000000000 WHERE seq >= 1000000000`)
	mustPass("insertion retirée")
	sql(`ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only`)
	sql(`SELECT pg_advisory_unlock($1)`, int64(0x65746174636976))

	// The export, checked offline against the roots alone.
	tarFile := filepath.Join(t.TempDir(), "export.tar")
	if o, err := s.client(ctx, auditor, "audit", "export", "--commune", commune, "--year", strconv.Itoa(year), "-o", tarFile,
		"--purpose", "archivage", "--reason", "versement").CombinedOutput(); err != nil {
		t.Fatalf("audit export : %v\n%s", err, o)
	}
	pki := testenv.DevPKI(t)
	roots := filepath.Join(pki, seal.DevRootFile) + ":" + filepath.Join(pki, tsa.DevTSARootFile)
	check := func(file string) (int, map[string]any) {
		t.Helper()
		cmd := s.client(ctx, "", "audit", "check", "--json", "--roots", roots, file)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no server, no database
		out, err := cmd.Output()
		var rep map[string]any
		if jerr := json.Unmarshal(out, &rep); jerr != nil {
			t.Fatalf("audit check : %v %s", err, out)
		}
		return exitCode(err), rep
	}
	if code, rep := check(tarFile); code != 0 || int(rep["acts"].(float64)) != len(in) || rep["events"].(float64) == 0 {
		t.Fatalf("audit check : %d %v", code, rep)
	}
	bundle, err := os.ReadFile(tarFile)
	if err != nil {
		t.Fatal(err)
	}
	for id := range outside {
		if bytes.Contains(bundle, []byte(id)) {
			t.Fatalf("l'export nomme l'acte %s d'une autre commune ou année", id)
		}
	}
	for id := range in {
		if !bytes.Contains(bundle, []byte(id)) {
			t.Fatalf("l'export ne nomme pas l'acte %s", id)
		}
	}
	// One byte changed inside the first PDF of the tar (its content: tar
	// headers do not cover it).
	at := bytes.Index(bundle, []byte("%PDF-"))
	if at < 0 {
		t.Fatal("pas de PDF dans l'export")
	}
	changed := bytes.Clone(bundle)
	changed[at+200] ^= 0x01
	bad := filepath.Join(t.TempDir(), "modifie.tar")
	if err := os.WriteFile(bad, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	code, rep := check(bad)
	probs, _ := rep["problems"].([]any)
	if code != 1 || len(probs) != 1 || !strings.HasPrefix(probs[0].(map[string]any)["file"].(string), "actes/"+commune+"/") {
		t.Fatalf("export modifié : %d %v", code, rep)
	}

	// Fixity: the object overwritten on the gateway's disk.
	data := testenv.S3Env(t).DataDir
	if data == "" {
		t.Fatal("ETATCIVIL_TEST_S3_DATA_DIR absent")
	}
	a := actJSON(t, s, actID)
	path := filepath.Join(data, "data", s.archiveBucket(), *a.Versions[0].ObjectKey)
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	disk[len(disk)/2] ^= 0xff
	if err := os.WriteFile(path, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := s.client(ctx, "", "fixity", "run")
	cmd.Env = s.env
	if o, err := cmd.CombinedOutput(); exitCode(err) != 1 || !strings.Contains(string(o), "1 altérée(s)") {
		t.Fatalf("fixity run : %v\n%s", err, o)
	}
	out, err = s.client(ctx, auditor, "fixity", "report", "--json").Output()
	var fr store.FixityReport
	if exitCode(err) != 1 || json.Unmarshal(out, &fr) != nil || len(fr.Problems) != 1 || fr.Problems[0].ActID != actID || fr.Problems[0].Outcome != "altered" {
		t.Fatalf("fixity report : %v %s", err, out)
	}
	if a := actJSON(t, s, actID); a.Versions[0].FixityOutcome == nil || *a.Versions[0].FixityOutcome != "altered" {
		t.Fatalf("acte non signalé : %+v", a.Versions[0])
	}
	if o, err := s.client(ctx, auditor, "act", "verify", actID).CombinedOutput(); exitCode(err) != 1 || !strings.Contains(string(o), "ÉCHEC") {
		t.Fatalf("act verify : %v\n%s", err, o)
	}
	if o, err := s.client(ctx, auditor, "act", "fetch", actID, "-o", filepath.Join(t.TempDir(), "x.pdf"), "--purpose", "controle").CombinedOutput(); err == nil || !strings.Contains(string(o), "intégrité") {
		t.Fatalf("act fetch d'un objet altéré : %v\n%s", err, o)
	}
}
