package auditlog_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/etatcivil/etatcivil/internal/auditlog"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

func verify(t *testing.T, f fixture) auditlog.Report {
	t.Helper()
	r, err := f.anchor.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustPass(t *testing.T, f fixture, what string) auditlog.Report {
	t.Helper()
	r := verify(t, f)
	if !r.OK || len(r.Failures) != 0 {
		t.Fatalf("%s : %+v", what, r)
	}
	return r
}

// mustFailAt: the report fails, and names seq (and only seq).
func mustFailAt(t *testing.T, f fixture, what string, seq int64, words string) {
	t.Helper()
	r := verify(t, f)
	if r.OK || len(r.Failures) != 1 || r.Failures[0].Seq != seq || !strings.Contains(r.Failures[0].Problem, words) {
		t.Fatalf("%s : %+v (attendu un échec au n° %d : %q)", what, r, seq, words)
	}
}

// TestCheckpoints: checkpoints anchor the chained events (sealed and
// timestamped, linked to the previous one, in the archive bucket); after
// one, editing, deleting, or rewriting the whole chain from an event is
// named at its sequence number, and restoring it passes again; a
// checkpoint rewritten in the bucket (a second version) or missing from
// it fails; a checkpoint written but not indexed (a crash) is adopted, not
// duplicated.
func TestCheckpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.events(t, 8, "test.event")

	docs, err := f.anchor.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].Number != 1 || docs[0].FirstSeq != 1 || docs[0].LastSeq != 8 || docs[0].Previous != "" {
		t.Fatalf("premier point d'ancrage : %+v", docs)
	}
	r := mustPass(t, f, "après le premier point")
	if r.Checkpoints != 1 || r.AnchoredThrough != 8 || r.Unanchored != 0 {
		t.Fatalf("rapport : %+v", r)
	}
	// Nothing new: no checkpoint.
	if docs, err := f.anchor.Checkpoint(ctx); err != nil || len(docs) != 0 {
		t.Fatalf("rien de nouveau : %+v %v", docs, err)
	}
	f.events(t, 3, "test.later")
	if r := mustPass(t, f, "événements non ancrés"); r.Unanchored != 3 {
		t.Fatalf("non ancrés : %+v", r)
	}
	docs, err = f.anchor.Checkpoint(ctx)
	if err != nil || len(docs) != 1 || docs[0].Number != 2 || docs[0].FirstSeq != 9 || docs[0].LastSeq != 11 || docs[0].Previous == "" {
		t.Fatalf("second point d'ancrage : %+v %v", docs, err)
	}
	if r := mustPass(t, f, "après le second point"); r.Checkpoints != 2 || r.AnchoredThrough != 11 || r.Unanchored != 0 {
		t.Fatalf("rapport : %+v", r)
	}

	f.exec(t, `ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`)
	defer f.exec(t, `ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only`)

	// Edited.
	f.exec(t, `UPDATE audit_events SET data = '{"i": 99}' WHERE seq = 3`)
	mustFailAt(t, f, "événement modifié", 3, "point d'ancrage n° 1")
	f.exec(t, `UPDATE audit_events SET data = '{"i": 2}' WHERE seq = 3`)
	mustPass(t, f, "événement restauré")

	// Deleted.
	f.exec(t, `CREATE TEMP TABLE saved AS SELECT * FROM audit_events WHERE seq = 10`)
	f.exec(t, `DELETE FROM audit_events WHERE seq = 10`)
	mustFailAt(t, f, "événement supprimé", 10, "supprimé")
	f.exec(t, `INSERT INTO audit_events OVERRIDING SYSTEM VALUE SELECT * FROM saved`)
	mustPass(t, f, "événement réinséré")

	// The whole chain recomputed from an edited event: the chain alone
	// would pass; the checkpoint names the event.
	f.exec(t, `CREATE TEMP TABLE hashes AS SELECT seq, hash FROM audit_events`)
	f.exec(t, `UPDATE audit_events SET actor = 'faussaire' WHERE seq = 5`)
	f.exec(t, `DO $$ DECLARE prev bytea; r record; BEGIN
		SELECT hash INTO prev FROM audit_events WHERE seq = 4;
		FOR r IN SELECT seq FROM audit_events WHERE seq >= 5 ORDER BY seq LOOP
			UPDATE audit_events e SET hash = sha256(prev || audit_event_digest(e)) WHERE seq = r.seq RETURNING hash INTO prev;
		END LOOP; END $$`)
	if c, err := f.st.VerifyChain(ctx); err != nil || !c.OK {
		t.Fatalf("la chaîne recalculée devrait passer seule : %+v %v", c, err)
	}
	r = verify(t, f)
	if r.OK || len(r.Failures) == 0 || r.Failures[0].Seq != 5 {
		t.Fatalf("chaîne recalculée : %+v", r)
	}
	f.exec(t, `UPDATE audit_events SET actor = 'system' WHERE seq = 5`)
	f.exec(t, `UPDATE audit_events e SET hash = h.hash FROM hashes h WHERE h.seq = e.seq`)
	mustPass(t, f, "chaîne restaurée")

	// A second version of a checkpoint's document: a rewrite, refused.
	s3 := testenv.S3Env(t)
	mc, err := minio.New(s3.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte(`{"type":"etatcivil-audit-checkpoint","number":2}`)
	if _, err := mc.PutObject(ctx, f.cfg.Archive, auditlog.ObjectKey(2, "json"), bytes.NewReader(forged), int64(len(forged)),
		minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	r = verify(t, f)
	if r.OK || len(r.Failures) != 1 || r.Failures[0].Checkpoint != 2 || !strings.Contains(r.Failures[0].Problem, "2 versions") {
		t.Fatalf("point réécrit : %+v", r)
	}
}

// TestCheckpointAdoptsWhatACrashLeft: a checkpoint written to the bucket
// but not indexed (the process died in between) is adopted as written by
// the next run, never written twice.
func TestCheckpointAdoptsWhatACrashLeft(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.events(t, 4, "test.event")
	docs, err := f.anchor.Checkpoint(ctx)
	if err != nil || len(docs) != 1 {
		t.Fatalf("%+v %v", docs, err)
	}
	f.exec(t, `DELETE FROM audit_checkpoints`)
	again, err := f.anchor.Checkpoint(ctx)
	if err != nil || len(again) != 1 || again[0] != docs[0] {
		t.Fatalf("reprise : %+v %v (attendu %+v)", again, err, docs[0])
	}
	vs, err := f.bl.Versions(ctx, auditlog.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("objets : %v", vs)
	}
	for k, v := range vs {
		if len(v) != 1 {
			t.Fatalf("%s : %d versions", k, len(v))
		}
	}
	mustPass(t, f, "après reprise")
}

// TestCheckpointWithoutSeal: no default seal, no checkpoint, a clear error.
func TestCheckpointWithoutSeal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.anchor.Key = nil
	if _, err := f.anchor.Checkpoint(context.Background()); err == nil || !strings.Contains(err.Error(), "ETATCIVIL_SEAL_KEY") {
		t.Fatalf("sans cachet : %v", err)
	}
}
