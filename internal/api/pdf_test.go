package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// TestEveryVersionStaysRetrievable: a new version is archived beside the
// old one; both are served, each checked against its own ledger entry,
// with the received file as prefix; every read is audited with its
// purpose; without a purpose the answer is 400, out of scope 404.
func TestEveryVersionStaysRetrievable(t *testing.T) {
	t.Parallel()
	s := testenv.NewStack(t, testenv.StackOptions{})
	s.Hub(t, "h1", "12202")
	s.Hub(t, "h2", "12145")
	hub := client.New(s.URL, s.Token(t, auth.RoleHub, "h1"))
	townhall := s.Token(t, auth.RoleTownhall, "", "12202")
	other := s.Token(t, auth.RoleTownhall, "", "12145")
	v1, v2 := goodPDF(21), goodPDF(22)
	b1 := uploadBatch(t, hub, manifestBytes(t, "h1", act("v1.pdf", v1, 7)), map[string][]byte{"v1.pdf": v1})
	b2 := uploadBatch(t, hub, manifestBytes(t, "h1", with(act("v2.pdf", v2, 7), "replaces", sha(v1), "revision_reason", "rescan")),
		map[string][]byte{"v2.pdf": v2})
	if b1.Acts[0].State != "archived" || b2.Acts[0].State != "archived" || *b2.Acts[0].Version != 2 {
		t.Fatalf("versions: %s / %s", describe(b1.Acts[0]), describe(b2.Acts[0]))
	}
	id := *b1.Acts[0].ID
	purpose := http.Header{"Etatcivil-Purpose": {"delivrance_copie"}, "Etatcivil-Reason": {"demande n° 42"}}
	digests := map[string]bool{}
	for _, c := range []struct {
		query string
		orig  []byte
	}{{"?version=1", v1}, {"?version=2", v2}, {"", v2}} {
		r := send(t, s.URL, townhall, apiReq{method: "GET", path: "/api/v1/acts/" + id + "/pdf" + c.query, header: purpose})
		if r.status != 200 || r.header.Get("Content-Type") != "application/pdf" {
			t.Fatalf("%s: %d %s", c.query, r.status, r.body)
		}
		sum := sha256.Sum256(r.body)
		want := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
		if r.header.Get("Repr-Digest") != want {
			t.Errorf("%s: Repr-Digest %q, corps %q", c.query, r.header.Get("Repr-Digest"), want)
		}
		if !bytes.HasPrefix(r.body, c.orig) {
			t.Errorf("%s: le fichier reçu n'est pas le préfixe du PDF servi", c.query)
		}
		digests[want] = true
	}
	if len(digests) != 2 {
		t.Fatalf("%d empreintes distinctes pour 2 versions", len(digests))
	}
	r := send(t, s.URL, townhall, apiReq{method: "GET", path: "/api/v1/acts/" + id + "/pdf"})
	wantProblem(t, "sans finalité", r, 400, "purpose_required")
	r = send(t, s.URL, other, apiReq{method: "GET", path: "/api/v1/acts/" + id + "/pdf", header: purpose})
	wantProblem(t, "autre commune", r, 404, "not_found")
	r = send(t, s.URL, townhall, apiReq{method: "GET", path: "/api/v1/acts/" + id + "/pdf?version=3", header: purpose})
	wantProblem(t, "version inexistante", r, 404, "not_found")

	var n int
	var reasons string
	err := s.Store.Pool.QueryRow(t.Context(), `SELECT count(*), string_agg(DISTINCT purpose || ':' || reason, ',') FROM audit_events
		WHERE action = 'act.read_pdf' AND act_id = $1`, id).Scan(&n, &reasons)
	if err != nil || n != 3 || !strings.Contains(reasons, "delivrance_copie:demande n° 42") {
		t.Fatalf("lectures journalisées: %d %q %v", n, reasons, err)
	}
}
