package api_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestIntegrityReportTampering: what an S3 or database administrator
// could do behind etatcivil's back, each undone before the next, and the
// checks each one fails: the object version deleted, a byte flipped in
// the scan, a byte flipped in the signature, the retention removed, an
// audit event edited (alone, and with the whole chain recomputed after
// it, which the checkpoint still catches).
func TestIntegrityReportTampering(t *testing.T) {
	t.Parallel()
	data := testenv.S3Env(t).DataDir
	if data == "" {
		t.Fatal("ETATCIVIL_TEST_S3_DATA_DIR absent : le test altère les objets sur le disque de la passerelle")
	}
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "h", "12202")
	hub := client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
	auditor := client.New(s.URL, s.Token(t, auth.RoleAuditor, ""))
	ctx := context.Background()
	scan := pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 83, DPI: 72})
	b := waitBatch(t, hub, uploadBatch(t, hub, manifestBytes(t, "h", act("t.pdf", scan, 1)), map[string][]byte{"t.pdf": scan}).ID)
	if b.Counts.Archived != 1 {
		t.Fatalf("lot : %+v", b.Counts)
	}
	actID := *b.Acts[0].ID
	// Anchor the act's events: the report then checks them against the
	// checkpoint's leaves too.
	if docs, err := s.API.Anchor.Checkpoint(ctx); err != nil || len(docs) != 1 {
		t.Fatalf("point d'ancrage : %+v %v", docs, err)
	}
	report := func() api.Report {
		t.Helper()
		return verification(t, auditor, actID)
	}
	failing := failingChecks
	if r := report(); !r.OK || failing(r) != "" || len(r.Checks) != 6 || !strings.Contains(r.Checks[5].Detail, "ancré") {
		t.Fatalf("rapport initial : %+v", r)
	}
	var key, sealed string
	if err := s.Store.Pool.QueryRow(ctx, `SELECT object_key, sealed_sha256 FROM entries WHERE act_id = $1`, actID).Scan(&key, &sealed); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(data, "data", s.BlobCfg.Archive, key)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("objet sur le disque de la passerelle : %v", err)
	}
	flip := func(at int) func() {
		return func() {
			b := bytes.Clone(orig)
			b[at] ^= 0x01
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	restore := func() {
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	contents := bytes.LastIndex(orig, []byte("/Contents <"))
	if contents < 0 {
		t.Fatal("pas de /Contents dans l'objet scellé")
	}
	const retentionAttr = "user.object-retention" // where the gateway keeps an object's lock
	retention := make([]byte, 4096)
	n, err := syscall.Getxattr(path, retentionAttr, retention)
	if err != nil {
		t.Fatalf("rétention de l'objet sur le disque : %v", err)
	}
	retention = retention[:n]
	sql := func(q string, args ...any) {
		t.Helper()
		if _, err := s.Store.Pool.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	sql(`CREATE TABLE saved_events AS SELECT seq, data, hash FROM audit_events`)
	firstSeq := func() int64 {
		var seq int64
		if err := s.Store.Pool.QueryRow(ctx, `SELECT min(seq) FROM audit_events WHERE act_id = $1`, actID).Scan(&seq); err != nil {
			t.Fatal(err)
		}
		return seq
	}()
	editEvent := func() {
		sql(`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`)
		sql(`UPDATE audit_events SET data = data || '{"falsifié": true}' WHERE seq = $1`, firstSeq)
	}
	// The chain recomputed from firstSeq with the stored rows: after the
	// rows are restored, it gives back the original hashes, and covers
	// the events the chainer may have added meanwhile (saved_events does
	// not hold them).
	rechain := func() {
		sql(`DO $$ DECLARE prev bytea; r record; BEGIN
			PERFORM pg_advisory_xact_lock(` + strconv.FormatInt(0x65746174636976, 10) + `);
			SELECT hash INTO prev FROM audit_events WHERE seq = ` + strconv.FormatInt(firstSeq-1, 10) + `;
			IF prev IS NULL THEN prev := decode(repeat('00', 32), 'hex'); END IF;
			FOR r IN SELECT seq FROM audit_events WHERE seq >= ` + strconv.FormatInt(firstSeq, 10) + ` ORDER BY seq LOOP
				UPDATE audit_events e SET hash = sha256(prev || audit_event_digest(e)) WHERE seq = r.seq RETURNING hash INTO prev;
			END LOOP; END $$`)
	}
	restoreEvents := func() {
		sql(`UPDATE audit_events e SET data = s.data FROM saved_events s WHERE s.seq = e.seq`)
		rechain()
		sql(`ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only`)
	}
	for _, c := range []struct {
		what, want string
		tamper     func()
		undo       func()
	}{
		{"version supprimée sur la passerelle", "object_present",
			func() {
				if err := os.Rename(path, path+".cache"); err != nil {
					t.Fatal(err)
				}
			},
			func() {
				if err := os.Rename(path+".cache", path); err != nil {
					t.Fatal(err)
				}
			}},
		{"octet du scan inversé", "sha256_matches_ledger,original_is_prefix,seal_valid", flip(len(orig) / 100), restore},
		{"octet de la signature inversé", "sha256_matches_ledger,seal_valid", flip(contents + len("/Contents <") + 200), restore},
		{"rétention retirée", "retention_locked",
			func() {
				if err := syscall.Removexattr(path, retentionAttr); err != nil {
					t.Fatal(err)
				}
			},
			func() {
				if err := syscall.Setxattr(path, retentionAttr, retention, 0); err != nil {
					t.Fatal(err)
				}
			}},
		{"événement d'audit modifié", "audit_chain", editEvent, restoreEvents},
		{"événement modifié, chaîne recalculée après lui", "audit_chain",
			func() {
				editEvent()
				rechain()
			}, restoreEvents},
	} {
		c.tamper()
		r := report()
		c.undo()
		if r.OK || failing(r) != c.want {
			t.Errorf("%s : en échec %q, attendu %q (%+v)", c.what, failing(r), c.want, r.Checks)
		}
	}
	if r := report(); !r.OK {
		t.Fatalf("rapport après remise en état : %+v", r.Checks)
	}
}
