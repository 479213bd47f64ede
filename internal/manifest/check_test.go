package manifest

import (
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/model"
)

// checkOne runs Check on [valid, e, valid] and returns the middle entry,
// failing if a neighbour was touched.
func checkOne(t *testing.T, c Checker, e Entry) Entry {
	t.Helper()
	e.Index = 1
	m := &Manifest{Hub: "smica", Format: FormatJSON, Acts: []Entry{entry(1000), e, entry(1002)}}
	m.Acts[0].Index, m.Acts[2].Index = 0, 2
	c.Check(m)
	wantFine(t, m.Acts[0])
	wantFine(t, m.Acts[2])
	return m.Acts[1]
}

func TestCheckRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(e *Entry)
		reason model.Reason
		ptr    string
	}{
		// File names.
		{"slash", func(e *Entry) { e.File = "2021/N-1.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"backslash", func(e *Entry) { e.File = `2021\N-1.pdf` }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"dot dot", func(e *Entry) { e.File = "..pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"dot dot inside", func(e *Entry) { e.File = "N..1.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"colon", func(e *Entry) { e.File = "C:N-1.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"star", func(e *Entry) { e.File = "N-*.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"question mark", func(e *Entry) { e.File = "N-?.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"double quote", func(e *Entry) { e.File = `N-"1".pdf` }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"less than", func(e *Entry) { e.File = "N-<1.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"greater than", func(e *Entry) { e.File = "N->1.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"pipe", func(e *Entry) { e.File = "N-|1.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"NUL", func(e *Entry) { e.File = "N-1\x00.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"newline", func(e *Entry) { e.File = "N-1\n.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"DEL", func(e *Entry) { e.File = "N-1\x7f.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"C1 control", func(e *Entry) { e.File = "N-1\u0085.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"bidi override", func(e *Entry) { e.File = "N-1\u202efdp.exe" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"leading dot", func(e *Entry) { e.File = ".N-1.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"leading space", func(e *Entry) { e.File = " N-1.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"trailing dot", func(e *Entry) { e.File = "N-1.pdf." }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"trailing space", func(e *Entry) { e.File = "N-1.pdf " }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"256 bytes", func(e *Entry) { e.File = strings.Repeat("a", 252) + ".pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"256 bytes in accents", func(e *Entry) { e.File = strings.Repeat("é", 126) + ".pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"not UTF-8", func(e *Entry) { e.File = "N-\xe9.pdf" }, model.ReasonFileNameInvalid, "/acts/1/file"},
		{"empty", func(e *Entry) { e.File = "" }, model.ReasonFileNameInvalid, "/acts/1/file"},

		// Communes.
		{"commune not in COG", func(e *Entry) { e.Commune = "12998" }, model.ReasonCommuneInvalid, "/acts/1/commune"},
		{"commune not member", func(e *Entry) { e.Commune = "12145" }, model.ReasonCommuneNotMember, "/acts/1/commune"},

		// Dates.
		{"act_date missing", func(e *Entry) { e.ActDate = "" }, model.ReasonDateInvalid, "/acts/1/act_date"},
		{"act_date 30 February", func(e *Entry) { e.ActDate = "2021-02-30" }, model.ReasonDateInvalid, "/acts/1/act_date"},
		{"act_date 29 February of a common year", func(e *Entry) { e.ActDate = "2021-02-29" }, model.ReasonDateInvalid, "/acts/1/act_date"},
		{"act_date month 13", func(e *Entry) { e.ActDate = "2021-13-01" }, model.ReasonDateInvalid, "/acts/1/act_date"},
		{"act_date another year", func(e *Entry) { e.ActDate = "2022-01-03" }, model.ReasonDateInvalid, "/acts/1/act_date"},
		{"act_date in the future", func(e *Entry) { e.Year, e.ActDate = 2025, "2025-06-02" }, model.ReasonDateInvalid, "/acts/1/act_date"},
		{"event_date after act_date", func(e *Entry) { e.EventDate = "2021-03-16" }, model.ReasonDateInvalid, "/acts/1/event_date"},
		{"event_date impossible", func(e *Entry) { e.EventDate = "2021-04-31" }, model.ReasonDateInvalid, "/acts/1/event_date"},
		{"birth_date after act_date", func(e *Entry) { e.Persons[0].BirthDate = "2021-03-16" }, model.ReasonDateInvalid, "/acts/1/persons/0/birth_date"},
		{"second person's birth_date impossible", func(e *Entry) {
			e.Persons = append(e.Persons, Person{Role: model.RoleMere, Surname: "MARTIN", BirthDate: "1990-02-30"})
		}, model.ReasonDateInvalid, "/acts/1/persons/1/birth_date"},

		// Persons.
		{"marriage with one spouse", func(e *Entry) { e.Kind, e.Persons = model.KindMariage, persons(model.RoleEpoux, model.RoleTemoin) }, model.ReasonPersonsInvalid, "/acts/1/persons"},
		{"marriage with three spouses", func(e *Entry) {
			e.Kind, e.Persons = model.KindMariage, persons(model.RoleEpoux, model.RoleEpouse, model.RoleEpouse)
		}, model.ReasonPersonsInvalid, "/acts/1/persons"},
		{"marriage without persons", func(e *Entry) { e.Kind, e.Persons = model.KindMariage, nil }, model.ReasonPersonsInvalid, "/acts/1/persons"},
		{"birth with three parents", func(e *Entry) {
			e.Persons = persons(model.RoleTitulaire, model.RolePere, model.RoleMere, model.RoleMere)
		}, model.ReasonPersonsInvalid, "/acts/1/persons"},
		{"birth with two titulaires", func(e *Entry) { e.Persons = persons(model.RoleTitulaire, model.RoleTitulaire) }, model.ReasonPersonsInvalid, "/acts/1/persons"},
		{"death without defunt", func(e *Entry) { e.Kind, e.Persons = model.KindDeces, persons(model.RoleDeclarant) }, model.ReasonPersonsInvalid, "/acts/1/persons"},
		{"death with two defunts", func(e *Entry) { e.Kind, e.Persons = model.KindDeces, persons(model.RoleDefunt, model.RoleDefunt) }, model.ReasonPersonsInvalid, "/acts/1/persons"},
		{"recognition without auteur", func(e *Entry) { e.Kind, e.Persons = model.KindReconnaissance, persons(model.RoleTitulaire) }, model.ReasonPersonsInvalid, "/acts/1/persons"},
		{"recognition without titulaire", func(e *Entry) { e.Kind, e.Persons = model.KindReconnaissance, persons(model.RoleAuteur) }, model.ReasonPersonsInvalid, "/acts/1/persons"},
		{"sans_vie on a birth", func(e *Entry) { e.SansVie = true }, model.ReasonPersonsInvalid, "/acts/1/sans_vie"},

		// Revisions (entries not built by Parse).
		{"replaces without revision_reason", func(e *Entry) { e.Replaces = sha(7) }, model.ReasonManifestInvalid, "/acts/1/revision_reason"},
		{"revision_reason without replaces", func(e *Entry) { e.RevisionReason = model.RevisionRescan }, model.ReasonManifestInvalid, "/acts/1/replaces"},
		{"retimestamp", func(e *Entry) { e.Replaces, e.RevisionReason = sha(7), model.RevisionRetimestamp }, model.ReasonManifestInvalid, "/acts/1/revision_reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := entry(1)
			tt.change(&e)
			wantProblem(t, checkOne(t, checker(), e), tt.reason, tt.ptr)
		})
	}
}

// TestCheckAccepts: what the rules must let through.
func TestCheckAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(e *Entry)
	}{
		{"accents and spaces in the name", func(e *Entry) { e.File = "Acte de naissance n°1 — Élodie.pdf" }},
		{"255 bytes", func(e *Entry) { e.File = strings.Repeat("a", 251) + ".pdf" }},
		{"single dot inside", func(e *Entry) { e.File = "N.2021.1.pdf" }},
		{"arrondissement of a member", func(e *Entry) { e.Commune = "75101" }},
		{"former code merged into a member", func(e *Entry) { e.Commune = "12999" }},
		{"Corsica", func(e *Entry) { e.Commune = "2A004" }},
		{"act_date today", func(e *Entry) {
			e.Year, e.ActDate, e.EventDate, e.Persons[0].BirthDate = 2025, "2025-06-01", "2025-06-01", "2025-06-01"
		}},
		{"29 February of a leap year", func(e *Entry) {
			e.Year, e.ActDate, e.EventDate, e.Persons[0].BirthDate = 2020, "2020-02-29", "2020-02-28", "2020-02-28"
		}},
		{"1792", func(e *Entry) { e.Year, e.ActDate, e.EventDate, e.Persons[0].BirthDate = 1792, "1792-12-31", "", "" }},
		{"no event_date", func(e *Entry) { e.EventDate = "" }},
		{"birth without persons", func(e *Entry) { e.Persons = nil }},
		{"birth with two fathers", func(e *Entry) {
			e.Persons = persons(model.RoleTitulaire, model.RolePere, model.RolePere, model.RoleDeclarant)
		}},
		{"marriage epoux epoux", func(e *Entry) {
			e.Kind, e.Persons = model.KindMariage, persons(model.RoleEpoux, model.RoleEpoux, model.RoleTemoin, model.RoleTemoin)
		}},
		{"marriage epouse epouse", func(e *Entry) { e.Kind, e.Persons = model.KindMariage, persons(model.RoleEpouse, model.RoleEpouse) }},
		{"marriage epoux epouse", func(e *Entry) {
			e.Kind, e.Persons = model.KindMariage, persons(model.RoleEpouse, model.RoleEpoux, model.RolePere)
		}},
		{"death", func(e *Entry) { e.Kind, e.Persons = model.KindDeces, persons(model.RoleDefunt, model.RoleDeclarant) }},
		{"stillbirth", func(e *Entry) {
			e.Kind, e.SansVie, e.Persons = model.KindDeces, true, persons(model.RoleDefunt, model.RoleMere)
		}},
		{"recognition by two", func(e *Entry) {
			e.Kind, e.Persons = model.KindReconnaissance, persons(model.RoleTitulaire, model.RoleAuteur, model.RoleAuteur)
		}},
		{"revision", func(e *Entry) { e.Replaces, e.RevisionReason = sha(7), model.RevisionMentionMarginale }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := entry(1)
			tt.change(&e)
			wantFine(t, checkOne(t, checker(), e))
		})
	}
}

func TestCheckDuplicates(t *testing.T) {
	t.Parallel()
	m := &Manifest{Hub: "smica", Acts: []Entry{entry(1), entry(2), entry(3), entry(4)}}
	for i := range m.Acts {
		m.Acts[i].Index = i
	}
	m.Acts[2].File = m.Acts[0].File
	m.Acts[3].File = m.Acts[0].File
	checker().Check(m)
	wantFine(t, m.Acts[0])
	wantFine(t, m.Acts[1])
	wantProblem(t, m.Acts[2], model.ReasonFileDuplicate, "/acts/2/file")
	wantProblem(t, m.Acts[3], model.ReasonFileDuplicate, "/acts/3/file")
	if !strings.Contains(m.Acts[3].Problem.Message, "/acts/0") {
		t.Fatalf("message %q does not name the first entry", m.Acts[3].Problem.Message)
	}

	// The first keeps its own outcome, even a rejection, and the later
	// one is still a duplicate.
	m = &Manifest{Hub: "smica", Acts: []Entry{entry(1), entry(2)}}
	m.Acts[1].Index = 1
	m.Acts[1].File = m.Acts[0].File
	m.Acts[0].Commune = "12145"
	checker().Check(m)
	wantProblem(t, m.Acts[0], model.ReasonCommuneNotMember, "/acts/0/commune")
	wantProblem(t, m.Acts[1], model.ReasonFileDuplicate, "/acts/1/file")

	// Through Parse: a schema-invalid first entry still holds its name.
	a := act(1)
	delete(a, "sha256")
	got, err := Parse("manifest.json", manifestJSON(t, a, act(1)))
	if err != nil {
		t.Fatal(err)
	}
	checker().Check(got)
	wantProblem(t, got.Acts[0], model.ReasonManifestInvalid, "/acts/0/sha256")
	wantProblem(t, got.Acts[1], model.ReasonFileDuplicate, "/acts/1/file")
}

func TestCheckWithoutCOGOrMembership(t *testing.T) {
	t.Parallel()
	e := entry(1)
	e.Commune = "12145" // in the COG, not a member
	wantFine(t, checkOne(t, Checker{Lookup: lookup, Now: checker().Now}, e))
	e.Commune = "12998" // not in the COG
	wantFine(t, checkOne(t, Checker{Now: checker().Now}, e))
	wantProblem(t, checkOne(t, Checker{Lookup: lookup, Now: checker().Now}, e), model.ReasonCommuneInvalid, "/acts/1/commune")
}

// TestCheckFirstProblemWins: an entry failing several rules reports the
// first in rule order, and Check never replaces an existing problem.
func TestCheckFirstProblemWins(t *testing.T) {
	t.Parallel()
	e := entry(1)
	e.File = "a/b.pdf"
	e.Commune = "12998"
	e.ActDate = "2021-02-30"
	wantProblem(t, checkOne(t, checker(), e), model.ReasonFileNameInvalid, "/acts/1/file")

	e = entry(1)
	e.Commune = "12145"
	e.ActDate = "2021-02-30"
	wantProblem(t, checkOne(t, checker(), e), model.ReasonCommuneNotMember, "/acts/1/commune")

	e = entry(1)
	e.ActDate = "2021-02-30"
	e.Persons = nil
	e.Kind = model.KindDeces
	wantProblem(t, checkOne(t, checker(), e), model.ReasonDateInvalid, "/acts/1/act_date")

	e = entry(1)
	e.File = "a/b.pdf"
	e.Problem = model.Reject(model.ReasonManifestInvalid, "/acts/1/size : déjà.")
	wantProblem(t, checkOne(t, checker(), e), model.ReasonManifestInvalid, "/acts/1/size")
}

// TestCheckTimeZones: "today" is the commune's.
func TestCheckTimeZones(t *testing.T) {
	t.Parallel()
	tests := []struct {
		now     time.Time
		commune string
		actDate string
		ok      bool
	}{
		// 22:30 UTC on 1 June: 00:30 on 2 June in Paris and 02:30 in
		// La Réunion, still 18:30 on 1 June in Guadeloupe.
		{time.Date(2025, 6, 1, 22, 30, 0, 0, time.UTC), "12202", "2025-06-02", true},
		{time.Date(2025, 6, 1, 22, 30, 0, 0, time.UTC), "97411", "2025-06-02", true},
		{time.Date(2025, 6, 1, 22, 30, 0, 0, time.UTC), "97105", "2025-06-02", false},
		// 21:30 UTC: 23:30 in Paris, 01:30 the next day in La Réunion.
		{time.Date(2025, 6, 1, 21, 30, 0, 0, time.UTC), "12202", "2025-06-02", false},
		{time.Date(2025, 6, 1, 21, 30, 0, 0, time.UTC), "2A004", "2025-06-02", false},
		{time.Date(2025, 6, 1, 21, 30, 0, 0, time.UTC), "97411", "2025-06-02", true},
		// Winter time in Paris: 23:30 UTC on 31 December is already 1 January.
		{time.Date(2025, 12, 31, 23, 30, 0, 0, time.UTC), "12202", "2026-01-01", true},
		{time.Date(2025, 12, 31, 22, 30, 0, 0, time.UTC), "12202", "2026-01-01", false},
	}
	for _, tt := range tests {
		e := entry(1)
		e.Commune, e.ActDate, e.EventDate, e.Persons = tt.commune, tt.actDate, "", nil
		e.Year = int(tt.actDate[0]-'0')*1000 + int(tt.actDate[1]-'0')*100 + int(tt.actDate[2]-'0')*10 + int(tt.actDate[3]-'0')
		c := checker()
		c.Now = func() time.Time { return tt.now }
		got := checkOne(t, c, e)
		if tt.ok {
			wantFine(t, got)
		} else {
			wantProblem(t, got, model.ReasonDateInvalid, "/acts/1/act_date")
		}
	}
}

func TestLocation(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"12202": "Europe/Paris", "2A004": "Europe/Paris", "2B033": "Europe/Paris", "75101": "Europe/Paris",
		"97105": "America/Guadeloupe", "97209": "America/Martinique", "97302": "America/Cayenne",
		"97411": "Indian/Reunion", "97502": "America/Miquelon", "97608": "Indian/Mayotte",
		"97701": "America/St_Barthelemy", "97801": "America/Marigot",
		"98611": "Pacific/Wallis", "98735": "Pacific/Tahiti", "98818": "Pacific/Noumea",
		"": "Europe/Paris", "9": "Europe/Paris",
	}
	for code, name := range want {
		if got := Location(code).String(); got != name {
			t.Errorf("Location(%q) = %s, want %s", code, got, name)
		}
	}
}

// TestParseThenCheck runs both stages on one manifest: a calendar error
// passes the schema (format is not asserted) and is date_invalid.
func TestParseThenCheck(t *testing.T) {
	t.Parallel()
	bad := act(2)
	bad["act_date"] = "2021-02-30"
	deces := act(3)
	deces["kind"] = "deces"
	m, err := Parse("manifest.json", manifestJSON(t, act(1), bad, deces))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range m.Acts {
		wantFine(t, e)
	}
	checker().Check(m)
	wantFine(t, m.Acts[0])
	wantProblem(t, m.Acts[1], model.ReasonDateInvalid, "/acts/1/act_date")
	wantProblem(t, m.Acts[2], model.ReasonPersonsInvalid, "/acts/2/persons")
}
