package manifest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/model"
)

// cog is a tiny COG snapshot for the tests (the real one lives elsewhere).
var cog = map[string]model.Commune{
	"12202": {Code: "12202", Type: model.CommuneActuelle, Name: "Rodez"},
	"12145": {Code: "12145", Type: model.CommuneActuelle, Name: "Millau"},
	"12999": {Code: "12999", Type: model.CommuneAncienne, Name: "Ancienne commune", Parent: "12202"},
	"75056": {Code: "75056", Type: model.CommuneActuelle, Name: "Paris"},
	"75101": {Code: "75101", Type: model.CommuneArrondissement, Name: "Paris 1er Arrondissement", Parent: "75056"},
	"97411": {Code: "97411", Type: model.CommuneActuelle, Name: "Saint-Denis"},
	"97105": {Code: "97105", Type: model.CommuneActuelle, Name: "Basse-Terre"},
	"2A004": {Code: "2A004", Type: model.CommuneActuelle, Name: "Ajaccio"},
	"01202": {Code: "01202", Type: model.CommuneActuelle, Name: "Commune de l'Ain"},
}

// hubCommunes are the test hub's members; 12145 (Millau) is not one.
var hubCommunes = map[string]bool{"12202": true, "75056": true, "97411": true, "97105": true, "2A004": true, "01202": true}

func lookup(code string) (model.Commune, bool) { c, ok := cog[code]; return c, ok }

// member walks the COG ancestors, as the real hub check does.
func member(code string) bool {
	for range 10 {
		if hubCommunes[code] {
			return true
		}
		c, ok := cog[code]
		if !ok || c.Parent == "" {
			return false
		}
		code = c.Parent
	}
	return false
}

// testNow is the tests' clock: 1 June 2025, noon UTC.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func checker() Checker {
	return Checker{Lookup: lookup, Member: member, Now: func() time.Time { return testNow }}
}

func sha(n int) string { return fmt.Sprintf("%064x", n) }

// act is the JSON object of a valid naissance entry; n varies file, hash
// and number.
func act(n int) map[string]any {
	return map[string]any{
		"file":       fmt.Sprintf("N-2021-%04d.pdf", n),
		"size":       734512,
		"sha256":     sha(n),
		"commune":    "12202",
		"kind":       "naissance",
		"year":       2021,
		"number":     n,
		"act_date":   "2021-03-15",
		"event_date": "2021-03-14",
		"flow":       "reprise",
		"persons": []any{
			map[string]any{"role": "titulaire", "surname": "MARTIN", "given_names": []any{"Jeanne", "Marie"},
				"sex": "F", "birth_date": "2021-03-14", "birth_place": "Rodez (Aveyron)"},
		},
	}
}

// manifestJSON encodes a manifest of the given entries for hub smica.
func manifestJSON(t testing.TB, acts ...any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"hub": "smica", "acts": acts})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// entry is a valid entry built directly, for Check tests.
func entry(n int) Entry {
	return Entry{
		File: fmt.Sprintf("N-2021-%04d.pdf", n), Size: 734512, SHA256: sha(n), Commune: "12202",
		Kind: model.KindNaissance, Year: 2021, Number: n, ActDate: "2021-03-15", EventDate: "2021-03-14",
		Flow: model.FlowReprise,
		Persons: []Person{{Role: model.RoleTitulaire, Surname: "MARTIN", GivenNames: []string{"Jeanne"},
			Sex: "F", BirthDate: "2021-03-14", BirthPlace: "Rodez (Aveyron)"}},
	}
}

// persons builds persons with the given roles.
func persons(roles ...model.Role) []Person {
	out := make([]Person, len(roles))
	for i, r := range roles {
		out[i] = Person{Role: r, Surname: "DURAND", GivenNames: []string{}}
	}
	return out
}

// wantProblem fails unless e has reason r and a message naming ptr.
func wantProblem(t *testing.T, e Entry, r model.Reason, ptr string) {
	t.Helper()
	if e.Problem == nil {
		t.Fatalf("entry %d: no problem, want %s at %s", e.Index, r, ptr)
	}
	if e.Problem.Reason != r {
		t.Fatalf("entry %d: reason %s (%s), want %s", e.Index, e.Problem.Reason, e.Problem.Message, r)
	}
	if !strings.Contains(e.Problem.Message, ptr+" ") {
		t.Fatalf("entry %d: message %q does not name %q", e.Index, e.Problem.Message, ptr)
	}
}

func wantFine(t *testing.T, e Entry) {
	t.Helper()
	if e.Problem != nil {
		t.Fatalf("entry %d: unexpected problem %s: %s", e.Index, e.Problem.Reason, e.Problem.Message)
	}
}
