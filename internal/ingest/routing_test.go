package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/registry"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

const routesYAML = `registries:
  - id: insee
    connector: insee
    endpoint: http://127.0.0.1:9/insee
    route: {flows: [courant], versions: first}
  - id: archives
    connector: archives
    endpoint: http://127.0.0.1:9/archives
    route: {versions: all}
`

// routedStack starts a stack whose workers route to the registries of
// yaml (tune may change more), with hub "h" of Rodez and a client of it.
func routedStack(t *testing.T, yaml string, tune func(*ingest.Deps)) (*testenv.Stack, *client.Client) {
	t.Helper()
	cfg, err := registry.Parse("routes.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	routes := &registry.Routes{}
	routes.Set(cfg)
	s := testenv.NewStack(t, testenv.StackOptions{Tune: func(d *ingest.Deps) {
		d.Routes = routes
		if tune != nil {
			tune(d)
		}
	}})
	s.Hub(t, "h", "12202")
	return s, client.New(s.URL, s.Token(t, auth.RoleHub, "h"))
}

// TestRoutingAtArchive: archiving a version records, in the same
// transaction, one pending transmission per registry whose rule matches;
// the act shows them; a new version goes only where "versions: all".
func TestRoutingAtArchive(t *testing.T) {
	t.Parallel()
	s, c := routedStack(t, routesYAML, func(d *ingest.Deps) {
		d.LotPolicies = map[registry.Connector]ingest.LotPolicy{} // this test builds its lot by hand
	})
	ctx := context.Background()

	courant, reprise, v2 := pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 51, DPI: 100}), pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 52, DPI: 100}),
		pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 53, DPI: 100})
	entry := func(file string, data []byte, number int, flow string, extra ...string) map[string]any {
		sum := sha256.Sum256(data)
		e := map[string]any{"file": file, "size": len(data), "sha256": hex.EncodeToString(sum[:]), "commune": "12202", "kind": "naissance",
			"year": 2025, "number": number, "act_date": "2025-03-02", "flow": flow,
			"persons": []any{map[string]any{"role": "titulaire", "surname": "ROUX", "given_names": []string{"Léa"}, "sex": "F",
				"birth_date": "2025-03-01", "birth_place": "Rodez (Aveyron)"}}}
		for i := 0; i+1 < len(extra); i += 2 {
			e[extra[i]] = extra[i+1]
		}
		return e
	}
	send := func(files map[string][]byte, acts ...map[string]any) store.BatchView {
		m, _ := json.Marshal(map[string]any{"hub": "h", "acts": acts})
		ms := sha256.Sum256(m)
		b, _, err := c.CreateBatch(ctx, m, false, hex.EncodeToString(ms[:]))
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			if err := c.PutFile(ctx, b.ID, name, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := c.Submit(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		got, _, err := c.WaitBatch(wctx, b.ID, nil)
		if err != nil || got.Counts.Archived != len(acts) {
			t.Fatalf("lot: %+v %v", got.Counts, err)
		}
		return got
	}
	b := send(map[string][]byte{"c.pdf": courant, "r.pdf": reprise}, entry("c.pdf", courant, 1, "courant"), entry("r.pdf", reprise, 2, "reprise"))
	sum1 := sha256.Sum256(courant)
	send(map[string][]byte{"v2.pdf": v2}, entry("v2.pdf", v2, 1, "courant", "replaces", hex.EncodeToString(sum1[:]), "revision_reason", "mention_marginale"))

	got := func(actID string) []string {
		a := act(t, c, actID)
		var out []string
		for _, tr := range a.Transmissions {
			if tr.State != "pending" || tr.Attempts != 0 {
				t.Errorf("transmission %+v", tr)
			}
			out = append(out, fmt.Sprintf("v%d:%s", tr.Version, tr.Registry))
		}
		slices.Sort(out)
		return out
	}
	if g := strings.Join(got(*b.Acts[0].ID), ","); g != "v1:archives,v1:insee,v2:archives" {
		t.Errorf("acte courant: %s", g)
	}
	if g := strings.Join(got(*b.Acts[1].ID), ","); g != "v1:archives" {
		t.Errorf("acte de reprise: %s", g)
	}
	// Lots: the act set is committed once; a second builder finds nothing free.
	un, err := s.Store.Unlotted(ctx, "archives", nil, 100)
	if err != nil || len(un) != 3 {
		t.Fatalf("non lotties: %d %v", len(un), err)
	}
	var ids []string
	for _, u := range un {
		ids = append(ids, u.ID)
	}
	lot, err := s.Store.CreateLot(ctx, "archives", "archives", "12202/2025/naissance", "12202", ids, nil)
	if err != nil || lot == "" {
		t.Fatalf("lot: %q %v", lot, err)
	}
	again, err := s.Store.CreateLot(ctx, "archives", "archives", "12202/2025/naissance", "12202", ids, nil)
	if err != nil || again != "" {
		t.Fatalf("second lot sur les mêmes actes: %q %v", again, err)
	}
	var acts, lots int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT (SELECT acts FROM lots WHERE id = $1), (SELECT count(*) FROM lots)`, lot).Scan(&acts, &lots); err != nil || acts != 3 || lots != 1 {
		t.Fatalf("lots: %d actes, %d lots (%v)", acts, lots, err)
	}
	if un, _ := s.Store.Unlotted(ctx, "archives", nil, 100); len(un) != 0 {
		t.Fatalf("%d transmissions encore sans lot", len(un))
	}

	// Each key is derived from (registry, act, version), unique.
	var n, keys int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT idempotency_key) FROM transmissions`).Scan(&n, &keys); err != nil || n != 4 || keys != 4 {
		t.Fatalf("%d transmissions, %d clés (%v)", n, keys, err)
	}
}

// TestLotsPerRegister: the lot builder makes one archives lot per
// register (commune, year, kind) and leaves per-act registries alone.
func TestLotsPerRegister(t *testing.T) {
	t.Parallel()
	s, c := routedStack(t, routesYAML, nil)
	ctx := context.Background()
	// Three deaths of 2020 (one register) via the maintenance helper.
	files := map[string][]byte{}
	var order []string
	for i := range 3 {
		name := fmt.Sprintf("d%d.pdf", i)
		files[name] = pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: int64(300 + i), DPI: 72})
		order = append(order, name)
	}
	id := upload(t, c, files, order)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if b, _, err := c.WaitBatch(wctx, id, nil); err != nil || b.Counts.Archived != 3 {
		t.Fatalf("lot: %+v %v", b.Counts, err)
	}
	// Not a minute after the last act yet: a plain build waits, a flush builds.
	if _, err := s.Jobs.River.Insert(ctx, ingest.LotBuildArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	var early int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM lots`).Scan(&early); err != nil || early != 0 {
		t.Fatalf("%d lots constitués avant la fin du dépôt (%v)", early, err)
	}
	if _, err := s.Jobs.River.Insert(ctx, ingest.LotBuildArgs{Flush: true}, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var lots, acts int
		var key string
		err := s.Store.Pool.QueryRow(ctx, `SELECT count(*), coalesce(max(acts), 0), coalesce(max(group_key), '') FROM lots WHERE registry = 'archives'`).Scan(&lots, &acts, &key)
		if err != nil {
			t.Fatal(err)
		}
		if lots == 1 && acts == 3 && key == "12202/2020/deces" {
			break
		}
		if time.Now().After(deadline) || lots > 1 {
			t.Fatalf("%d lots, %d actes, clé %q", lots, acts, key)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
