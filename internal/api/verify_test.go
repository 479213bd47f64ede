package api_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestIntegrityReport: an archived act's report is ok at level B-T; each
// check is made to fail, and only it.
func TestIntegrityReport(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "h", "12202")
	hub := client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
	auditor := client.New(s.URL, s.Token(t, auth.RoleAuditor, ""))
	ctx := context.Background()
	data := pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 81, DPI: 72})
	b := waitBatch(t, hub, uploadBatch(t, hub, manifestBytes(t, "h", act("v.pdf", data, 1)), map[string][]byte{"v.pdf": data}).ID)
	if b.Counts.Archived != 1 {
		t.Fatalf("lot : %+v", b.Counts)
	}
	actID := *b.Acts[0].ID
	report := func() api.Report {
		t.Helper()
		return verification(t, auditor, actID)
	}
	failing := failingChecks
	r := report()
	// Hubs seal at B-LT by default: the validation material of both
	// chains (the development PKI names a live OCSP responder and CRLs).
	if !r.OK || r.Level != "B-LT" || len(r.Checks) != 6 || failing(r) != "" || r.Validation == nil || r.Validation.OCSPs+r.Validation.CRLs == 0 ||
		len(r.Timestamps) != 1 || r.Timestamps[0].Kind != "signature" {
		t.Fatalf("rapport : %+v", r)
	}
	for _, c := range r.Checks {
		if c.Name == "seal_valid" && (!strings.Contains(c.Detail, "PAdES B-LT") || !strings.Contains(c.Detail, "horodaté le") ||
			!strings.Contains(c.Detail, "données de validation")) {
			t.Errorf("détail du cachet : %q", c.Detail)
		}
	}
	// A hub cannot ask for the report (auditors and admins only).
	if _, err := hub.Get(ctx, "/api/v1/acts/"+actID+"/verification", nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("rapport demandé par un opérateur : %v", err)
	}

	exec := func(q string) {
		t.Helper()
		if _, err := s.Store.Pool.Exec(ctx, q, actID); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		check         string
		break_, mend  string
		before, after func()
	}{
		{check: "sha256_matches_ledger",
			break_: `UPDATE entries SET sealed_sha256 = repeat('0', 64), sha256 = sha256 WHERE act_id = $1`},
		{check: "original_is_prefix",
			break_: `UPDATE entries SET sha256 = repeat('0', 64) WHERE act_id = $1`},
		{check: "object_present",
			break_: `UPDATE entries SET version_id = 'absente' WHERE act_id = $1`},
		{check: "seal_valid", before: func() { s.API.Roots = x509.NewCertPool() }, after: func() { s.API.Roots = nil }},
		{check: "retention_locked", before: func() { s.API.Now = func() time.Time { return time.Now().AddDate(0, 0, 3) } },
			after: func() { s.API.Now = nil }},
	} {
		var saved struct{ sealed, orig, vid string }
		if err := s.Store.Pool.QueryRow(ctx, `SELECT sealed_sha256, sha256, version_id FROM entries WHERE act_id = $1`, actID).
			Scan(&saved.sealed, &saved.orig, &saved.vid); err != nil {
			t.Fatal(err)
		}
		roots := s.API.Roots
		if c.break_ != "" {
			exec(c.break_)
		}
		if c.before != nil {
			c.before()
		}
		r := report()
		if c.after != nil {
			c.after()
		}
		s.API.Roots = roots
		if _, err := s.Store.Pool.Exec(ctx, `UPDATE entries SET sealed_sha256 = $2, sha256 = $3, version_id = $4 WHERE act_id = $1`,
			actID, saved.sealed, saved.orig, saved.vid); err != nil {
			t.Fatal(err)
		}
		if r.OK || failing(r) != c.check {
			t.Errorf("%s cassé : ok %v, en échec %q, attendu %q seulement (%+v)", c.check, r.OK, failing(r), c.check, r.Checks)
		}
	}
	if r := report(); !r.OK {
		t.Fatalf("rapport après remise en état : %s", fmt.Sprint(r.Checks))
	}
}
