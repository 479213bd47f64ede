package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auditlog"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestFixityAudits: rounds check their share of the archive, oldest
// checks first; an object version overwritten on the gateway's disk is
// found altered and one whose file is gone missing, each flagged on its
// act, listed by the fixity report, counted in the metrics and recorded
// as an audit event; the altered act's PDF is then refused.
func TestFixityAudits(t *testing.T) {
	t.Parallel()
	data := testenv.S3Env(t).DataDir
	if data == "" {
		t.Fatal("ETATCIVIL_TEST_S3_DATA_DIR absent : le test altère les objets sur le disque de la passerelle")
	}
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "h", "12202")
	hub := client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
	auditorToken := s.Token(t, auth.RoleAuditor, "")
	ctx := context.Background()
	p1, p2, p3 := goodPDF(401), goodPDF(402), goodPDF(403)
	m := manifestBytes(t, "h", act("a.pdf", p1, 1), act("b.pdf", p2, 2), act("c.pdf", p3, 3))
	b := waitBatch(t, hub, uploadBatch(t, hub, m, map[string][]byte{"a.pdf": p1, "b.pdf": p2, "c.pdf": p3}).ID)
	if b.Counts.Archived != 3 {
		t.Fatalf("lot : %+v", b.Counts)
	}
	ids := []string{*entryByFile(t, b, "a.pdf").ID, *entryByFile(t, b, "b.pdf").ID, *entryByFile(t, b, "c.pdf").ID}

	// A full pass per hour, a round every 20 minutes: three rounds, one
	// version each.
	f := &auditlog.Fixity{Store: s.Store, Blob: s.Blob, Period: time.Hour, Every: 20 * time.Minute, Bandwidth: 1 << 20}
	if n := f.RoundSize(3); n != 1 {
		t.Fatalf("taille d'un tour : %d", n)
	}
	checked := map[string]bool{}
	for i := range 3 {
		tally, err := f.Round(ctx)
		if err != nil || tally.Checked != 1 || tally.OK != 1 {
			t.Fatalf("tour %d : %+v %v", i, tally, err)
		}
		var last string
		if err := s.Store.Pool.QueryRow(ctx, `SELECT act_id::text FROM entries WHERE is_version ORDER BY fixity_at DESC NULLS LAST LIMIT 1`).Scan(&last); err != nil {
			t.Fatal(err)
		}
		checked[last] = true
	}
	if len(checked) != 3 {
		t.Fatalf("les trois tours n'ont pas vérifié les trois versions : %v", checked)
	}
	// Every version checked within the period: nothing is due.
	if tally, err := f.Round(ctx); err != nil || tally.Checked != 0 {
		t.Fatalf("tour sans version due : %+v %v", tally, err)
	}

	object := func(actID string) string {
		var key string
		if err := s.Store.Pool.QueryRow(ctx, `SELECT object_key FROM entries WHERE act_id = $1`, actID).Scan(&key); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(data, "data", s.BlobCfg.Archive, key)
	}
	altered, gone := object(ids[0]), object(ids[1])
	orig, err := os.ReadFile(altered)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(orig)
	flipped[len(flipped)/3] ^= 0x20
	if err := os.WriteFile(altered, flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(gone, gone+".ailleurs"); err != nil {
		t.Fatal(err)
	}
	tally, err := f.Pass(ctx)
	if err != nil || tally != (auditlog.Tally{Checked: 3, OK: 1, Missing: 1, Altered: 1}) {
		t.Fatalf("passe complète : %+v %v", tally, err)
	}

	// The fixity report lists both, by act.
	var rep store.FixityReport
	r := send(t, s.URL, auditorToken, apiReq{method: "GET", path: "/api/v1/fixity"})
	if r.status != 200 || json.Unmarshal(r.body, &rep) != nil {
		t.Fatalf("rapport d'intégrité : %d %s", r.status, r.body)
	}
	outcomes := map[string]string{}
	for _, p := range rep.Problems {
		outcomes[p.ActID] = p.Outcome
	}
	if rep.Versions != 3 || rep.OK != 1 || rep.Missing != 1 || rep.Altered != 1 || rep.NeverChecked != 0 ||
		outcomes[ids[0]] != "altered" || outcomes[ids[1]] != "missing" || len(outcomes) != 2 {
		t.Fatalf("rapport d'intégrité : %+v", rep)
	}
	// Flagged on the act.
	var view store.ActView
	r = send(t, s.URL, auditorToken, apiReq{method: "GET", path: "/api/v1/acts/" + ids[0]})
	if r.status != 200 || json.Unmarshal(r.body, &view) != nil || len(view.Versions) != 1 ||
		deref(view.Versions[0].FixityOutcome) != "altered" || view.Versions[0].FixityAt == nil {
		t.Fatalf("acte altéré : %d %s", r.status, r.body)
	}
	// Counted in the metrics.
	var metrics bytes.Buffer
	api.WriteLedgerMetrics(ctx, &metrics, s.Store)
	for _, line := range []string{`etatcivil_fixity_versions{outcome="altered"} 1`, `etatcivil_fixity_versions{outcome="missing"} 1`,
		`etatcivil_fixity_versions{outcome="ok"} 1`, `etatcivil_fixity_versions{outcome="unchecked"} 0`, "etatcivil_fixity_last_check_timestamp_seconds "} {
		if !strings.Contains(metrics.String(), line) {
			t.Errorf("métriques sans %q :\n%s", line, metrics.String())
		}
	}
	// An audit event on each act.
	var events int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'fixity.failed' AND act_id = ANY($1::uuid[])`,
		ids[:2]).Scan(&events); err != nil || events != 2 {
		t.Fatalf("événements fixity.failed : %d %v", events, err)
	}
	// The altered act's PDF is refused.
	wantProblem(t, "PDF altéré", send(t, s.URL, auditorToken, apiReq{method: "GET", path: "/api/v1/acts/" + ids[0] + "/pdf",
		header: http.Header{"Etatcivil-Purpose": {"controle"}}}), 500, "integrity_error")

	// Restored: the next pass finds them intact again.
	if err := os.WriteFile(altered, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(gone+".ailleurs", gone); err != nil {
		t.Fatal(err)
	}
	if tally, err := f.Pass(ctx); err != nil || tally != (auditlog.Tally{Checked: 3, OK: 3}) {
		t.Fatalf("passe après remise en état : %+v %v", tally, err)
	}
	if rep, err := s.Store.Fixity(ctx, time.Hour); err != nil || len(rep.Problems) != 0 || rep.OK != 3 {
		t.Fatalf("rapport après remise en état : %+v %v", rep, err)
	}
}
