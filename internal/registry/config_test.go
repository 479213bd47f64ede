package registry

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/model"
)

func TestLocalFileParses(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "testdata", "registries.local.yaml")
	if _, err := LoadEnv(path, func(string) (string, bool) { return "", false }); err == nil || !strings.Contains(err.Error(), "ETATCIVIL_REGISTRY_SIM non définie") {
		t.Fatalf("variable absente acceptée: %v", err)
	}
	c, err := LoadEnv(path, func(k string) (string, bool) { return "http://127.0.0.1:9", k == "ETATCIVIL_REGISTRY_SIM" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Registries[0].Endpoint != "http://127.0.0.1:9/insee/insee" {
		t.Fatalf("point d'accès %q", c.Registries[0].Endpoint)
	}
	if len(c.Registries) != 2 || c.Registries[0].ID != "insee" || c.Registries[1].Connector != ConnectorArchives {
		t.Fatalf("registres: %+v", c.Registries)
	}
	r := c.Registries[0]
	if r.AckDeadline.Duration != 30*time.Second || r.Retry.InitialBackoff.Duration != time.Second ||
		r.Retry.MaxBackoff.Duration != 15*time.Second || r.Retry.MaxAttempts != 50 {
		t.Fatalf("insee: %+v", r)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse("x.yaml", []byte("registries:\n  - id: r\n    connector: http\n    endpoint: http://127.0.0.1:1/x\n    route: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Registries[0]
	if r.Cadence != "immediate" || r.Route.Versions != "first" || r.Retry.MaxAttempts != 50 || r.AckDeadline.Duration != 24*time.Hour {
		t.Fatalf("défauts: %+v", r)
	}
}

// TestBadFilesNameTheLine: each bad file is refused with the line of its
// problem.
func TestBadFilesNameTheLine(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "absent.pem")
	for _, c := range []struct {
		name, yaml string
		line       int
		want       string
	}{
		{"yaml", "registries:\n\t- id: r\n", 2, "YAML"},
		{"connecteur", "registries:\n  - id: r\n    connector: ftp\n    endpoint: http://x/\n    route: {}\n", 3, "/registries/0/connector"},
		{"champ inconnu", "registries:\n  - id: r\n    connector: http\n    endpoint: http://x/\n    route: {}\n    colour: red\n", 2, "/registries/0"},
		{"durée", "registries:\n  - id: r\n    connector: http\n    endpoint: http://x/\n    route: {}\n    ack_deadline: demain\n", 6, "ack_deadline"},
		{"flux", "registries:\n  - id: r\n    connector: http\n    endpoint: http://x/\n    route:\n      flows: [courant, ancien]\n", 6, "/registries/0/route/flows/1"},
		{"doublon", "registries:\n  - id: r\n    connector: http\n    endpoint: http://x/\n    route: {}\n  - id: r\n    connector: http\n    endpoint: http://y/\n    route: {}\n", 6, "double"},
		{"âges", "registries:\n  - id: r\n    connector: http\n    endpoint: http://x/\n    route: {min_age_years: 10, max_age_years: 2}\n", 5, "min_age_years"},
		{"certificat", "registries:\n  - id: r\n    connector: http\n    endpoint: http://x/\n    route: {}\n    auth:\n      client_cert: " + missing + "\n      client_key: " + missing + "\n", 7, "illisible"},
		{"insee reprise", "registries:\n  - id: r\n    connector: insee\n    endpoint: http://x/\n    route: {flows: [reprise]}\n", 5, "courants"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("reg.yaml", []byte(c.yaml))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("accepté ou erreur inattendue: %v", err)
			}
			ok := false
			for _, p := range e.Problems {
				if p.Line == c.line && strings.Contains(p.String(), c.want) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("attendu ligne %d avec %q:\n%v", c.line, c.want, err)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	yes, two, ten := true, 2, 10
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	base := Version{Kind: model.KindNaissance, CommuneChain: []string{"12076", "12218"}, Flow: model.FlowCourant, Year: 2025, Version: 1, ArchivedAt: at}
	with := func(f func(*Version)) Version { v := base; f(&v); return v }
	for _, c := range []struct {
		name  string
		route Route
		v     Version
		want  bool
	}{
		{"tout", Route{}, base, true},
		{"v2 sans versions all", Route{Versions: "first"}, with(func(v *Version) { v.Version = 2 }), false},
		{"v2 avec versions all", Route{Versions: "all"}, with(func(v *Version) { v.Version = 2 }), true},
		{"rehorodatage jamais", Route{Versions: "all"}, with(func(v *Version) { v.Version = 3; v.RevisionReason = model.RevisionRetimestamp }), false},
		{"registre", Route{Kinds: []model.Kind{model.KindDeces}}, base, false},
		{"sans vie", Route{Kinds: []model.Kind{model.KindDeces}, SansVie: &yes}, with(func(v *Version) { v.Kind = model.KindDeces; v.SansVie = true }), true},
		{"flux reprise", Route{Flows: []model.Flow{model.FlowReprise}}, base, false},
		{"commune nouvelle", Route{Communes: []string{"12218"}}, base, true},
		{"autre commune", Route{Communes: []string{"12202"}}, base, false},
		{"âge minimal", Route{MinAgeYears: &two}, base, false},
		{"âge maximal", Route{MaxAgeYears: &ten}, with(func(v *Version) { v.Year = 1980 }), false},
		{"ancien", Route{MinAgeYears: &ten}, with(func(v *Version) { v.Year = 1980 }), true},
	} {
		if got := c.route.Matches(c.v); got != c.want {
			t.Errorf("%s: %v, attendu %v", c.name, got, c.want)
		}
	}
}
