package manifest

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/etatcivil/etatcivil/internal/model"
)

// The example of INTERFACE.md, "Batch manifest", verbatim but for the hash.
const interfaceExample = `{
  "hub": "smica",
  "acts": [
    {
      "file": "N-2021-0042.pdf",
      "size": 734512,
      "sha256": "SHA",
      "commune": "12202",
      "kind": "naissance",
      "year": 2021,
      "number": 42,
      "act_date": "2021-03-15",
      "event_date": "2021-03-14",
      "flow": "reprise",
      "persons": [
        {"role": "titulaire", "surname": "MARTIN", "given_names": ["Jeanne", "Marie"],
         "sex": "F", "birth_date": "2021-03-14", "birth_place": "Rodez (Aveyron)"}
      ]
    }
  ]
}`

func TestParseInterfaceExample(t *testing.T) {
	t.Parallel()
	m, err := Parse("manifest.json", []byte(strings.Replace(interfaceExample, "SHA", sha(42), 1)))
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{
		File: "N-2021-0042.pdf", Size: 734512, SHA256: sha(42), Commune: "12202", Kind: model.KindNaissance,
		Year: 2021, Number: 42, ActDate: "2021-03-15", EventDate: "2021-03-14", Flow: model.FlowReprise,
		Persons: []Person{{Role: model.RoleTitulaire, Surname: "MARTIN", GivenNames: []string{"Jeanne", "Marie"},
			Sex: "F", BirthDate: "2021-03-14", BirthPlace: "Rodez (Aveyron)"}},
	}
	if m.Hub != "smica" || m.Format != FormatJSON || len(m.Acts) != 1 {
		t.Fatalf("got hub %q format %q %d acts", m.Hub, m.Format, len(m.Acts))
	}
	if !reflect.DeepEqual(m.Acts[0], want) {
		t.Fatalf("entry\n got %+v\nwant %+v", m.Acts[0], want)
	}
	checker().Check(m)
	wantFine(t, m.Acts[0])
}

func TestFlowDefaultsToReprise(t *testing.T) {
	t.Parallel()
	a := act(1)
	delete(a, "flow")
	b := act(2)
	b["flow"] = "courant"
	m, err := Parse("manifest.json", manifestJSON(t, a, b))
	if err != nil {
		t.Fatal(err)
	}
	if m.Acts[0].Flow != model.FlowReprise || m.Acts[1].Flow != model.FlowCourant {
		t.Fatalf("flows %q %q", m.Acts[0].Flow, m.Acts[1].Flow)
	}
}

// TestSchemaRules: each entry failing the schema is kept, alone, with
// manifest_invalid and the JSON pointer of the field at fault.
func TestSchemaRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(a map[string]any) any // returns the entry to put at index 1
		ptr    string
		text   string // optional extra substring
	}{
		{"act_date missing", without("act_date"), "/acts/1/act_date", "obligatoire"},
		{"file missing", without("file"), "/acts/1/file", "obligatoire"},
		{"sha256 missing", without("sha256"), "/acts/1/sha256", ""},
		{"act_date French format", set("act_date", "15/03/2021"), "/acts/1/act_date", "AAAA-MM-JJ"},
		{"event_date not a string", set("event_date", 20210314), "/acts/1/event_date", "chaîne"},
		{"sha256 upper case", set("sha256", strings.ToUpper(sha(0xabc))), "/acts/1/sha256", "minuscules"},
		{"sha256 short", set("sha256", sha(1)[1:]), "/acts/1/sha256", ""},
		{"commune 4 digits", set("commune", "1220"), "/acts/1/commune", ""},
		{"commune 2C", set("commune", "2C004"), "/acts/1/commune", ""},
		{"commune number", set("commune", 12202), "/acts/1/commune", "chaîne"},
		{"kind unknown", set("kind", "adoption"), "/acts/1/kind", "adoption"},
		{"sans_vie not boolean", set("sans_vie", "oui"), "/acts/1/sans_vie", "booléen"},
		{"year too old", set("year", 1791), "/acts/1/year", "1792"},
		{"year text", set("year", "2021"), "/acts/1/year", "entier"},
		{"number zero", set("number", 0), "/acts/1/number", "minimum"},
		{"number fraction", set("number", 4.5), "/acts/1/number", "entier"},
		{"size negative", set("size", -1), "/acts/1/size", ""},
		{"flow unknown", set("flow", "urgent"), "/acts/1/flow", "courant"},
		{"unknown field", set("mention", "x"), "/acts/1/mention", "inconnu"},
		{"null optional field", set("event_date", nil), "/acts/1/event_date", "null"},
		{"role unknown", setPerson("role", "parrain"), "/acts/1/persons/0/role", "parrain"},
		{"sex unknown", setPerson("sex", "X"), "/acts/1/persons/0/sex", ""},
		{"surname missing", withoutPerson("surname"), "/acts/1/persons/0/surname", "obligatoire"},
		{"given_names a string", setPerson("given_names", "Jeanne Marie"), "/acts/1/persons/0/given_names", "tableau"},
		{"given name empty", setPerson("given_names", []any{"Jeanne", ""}), "/acts/1/persons/0/given_names/1", "vide"},
		{"birth_date format", setPerson("birth_date", "14 mars 2021"), "/acts/1/persons/0/birth_date", ""},
		{"person unknown field", setPerson("age", 3), "/acts/1/persons/0/age", "inconnu"},
		{"replaces without revision_reason", set("replaces", sha(9)), "/acts/1/revision_reason", "replaces"},
		{"revision_reason without replaces", set("revision_reason", "rescan"), "/acts/1/replaces", "revision_reason"},
		{"retimestamp refused", func(a map[string]any) any {
			a["replaces"], a["revision_reason"] = sha(9), "retimestamp"
			return a
		}, "/acts/1/revision_reason", "retimestamp"},
		{"replaces not hex", func(a map[string]any) any {
			a["replaces"], a["revision_reason"] = "v1", "rescan"
			return a
		}, "/acts/1/replaces", ""},
		{"entry not an object", func(map[string]any) any { return 42 }, "/acts/1", "objet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := Parse("manifest.json", manifestJSON(t, act(1), tt.change(act(2)), act(3)))
			if err != nil {
				t.Fatalf("whole manifest refused: %v", err)
			}
			if len(m.Acts) != 3 {
				t.Fatalf("%d entries, want 3", len(m.Acts))
			}
			wantFine(t, m.Acts[0])
			wantFine(t, m.Acts[2])
			wantProblem(t, m.Acts[1], model.ReasonManifestInvalid, tt.ptr)
			if !strings.Contains(m.Acts[1].Problem.Message, tt.text) {
				t.Fatalf("message %q lacks %q", m.Acts[1].Problem.Message, tt.text)
			}
			// Check keeps the first problem found.
			checker().Check(m)
			wantProblem(t, m.Acts[1], model.ReasonManifestInvalid, tt.ptr)
			wantFine(t, m.Acts[0])
			wantFine(t, m.Acts[2])
		})
	}
}

// TestSchemaAccepts: values at the edges of the schema are accepted.
func TestSchemaAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(a map[string]any) any
	}{
		{"Corsica 2A", set("commune", "2A004")},
		{"arrondissement", set("commune", "75101")},
		{"overseas", set("commune", "97411")},
		{"empty given names", setPerson("given_names", []any{})},
		{"no given names", withoutPerson("given_names")},
		{"no sex", withoutPerson("sex")},
		{"no persons", without("persons")},
		{"empty file", set("size", 0)},
		{"revision", func(a map[string]any) any {
			a["replaces"], a["revision_reason"] = sha(9), "correction_index"
			return a
		}},
		{"stillbirth", func(a map[string]any) any {
			a["kind"], a["sans_vie"] = "deces", true
			a["persons"] = []any{map[string]any{"role": "defunt", "surname": "X", "given_names": []any{}}}
			return a
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := Parse("manifest.json", manifestJSON(t, tt.change(act(1))))
			if err != nil {
				t.Fatal(err)
			}
			wantFine(t, m.Acts[0])
			checker().Check(m)
			wantFine(t, m.Acts[0])
		})
	}
}

func TestParseUnparseable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", "vide"},
		{"blank", " \n ", "vide"},
		{"garbage", "{hello", "ligne 1, colonne 2"},
		{"syntax error on line 3", "{\n\"hub\": \"smica\",\n\"acts\": [1,]\n}", "ligne 3, colonne 12"},
		{"truncated", `{"hub": "smica", "acts": [`, "tronqué"},
		{"trailing data", `{"hub": "smica", "acts": [{}]} x`, "ligne 1, colonne 32"},
		{"not UTF-8", "{\"hub\": \"smica\",\n\"acts\": [{\"file\": \"\xe9.pdf\"}]}", "ligne 2, colonne 20"},
		{"UTF-16", "\xff\xfe{\x00}\x00", "UTF-8"},
		{"top level array", `[{"hub": "smica"}]`, "objet JSON"},
		{"top level string", `"smica"`, "objet JSON"},
		{"top level null", `null`, "objet JSON"},
		{"no hub", `{"acts": [{}]}`, "« hub »"},
		{"empty hub", `{"hub": "", "acts": [{}]}`, "« hub »"},
		{"hub not a string", `{"hub": 12, "acts": [{}]}`, "« hub »"},
		{"no acts", `{"hub": "smica"}`, "« acts »"},
		{"acts an object", `{"hub": "smica", "acts": {"file": "a.pdf"}}`, "« acts »"},
		{"acts null", `{"hub": "smica", "acts": null}`, "« acts »"},
		{"acts empty", `{"hub": "smica", "acts": []}`, "/acts "},
		{"unknown top-level field", `{"hub": "smica", "acts": [{}], "comment": "x"}`, "/comment : champ inconnu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := Parse("manifest.json", []byte(tt.data))
			if !errors.Is(err, ErrUnparseable) {
				t.Fatalf("got %v, %v; want ErrUnparseable", m, err)
			}
			if m != nil {
				t.Fatal("a manifest returned with the error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

func TestParseBOMJSON(t *testing.T) {
	t.Parallel()
	m, err := Parse("manifest.json", append([]byte("\xef\xbb\xbf"), manifestJSON(t, act(1))...))
	if err != nil {
		t.Fatal(err)
	}
	wantFine(t, m.Acts[0])
}

func TestParseDetectsFormat(t *testing.T) {
	t.Parallel()
	csvData := "file,size,sha256,commune,kind,year,number,act_date\na.pdf,1," + sha(1) + ",12202,naissance,2021,1,2021-01-02\n"
	jsonData := string(manifestJSON(t, act(1)))
	tests := []struct{ name, data, format string }{
		{"manifest.json", jsonData, FormatJSON},
		{"manifest.csv", csvData, FormatCSV},
		{"MANIFEST.CSV", csvData, FormatCSV},
		{"upload", jsonData, FormatJSON},
		{"upload", "\xef\xbb\xbf \n" + jsonData, FormatJSON},
		{"upload", csvData, FormatCSV},
	}
	for _, tt := range tests {
		m, err := Parse(tt.name, []byte(tt.data))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if m.Format != tt.format {
			t.Fatalf("%s: format %q, want %q", tt.name, m.Format, tt.format)
		}
	}
	// The name wins over the content.
	if _, err := Parse("manifest.json", []byte(csvData)); !errors.Is(err, ErrUnparseable) {
		t.Fatalf("CSV named manifest.json: %v", err)
	}
}

func TestIndexDigest(t *testing.T) {
	t.Parallel()
	base := entry(1)
	d := base.IndexDigest()
	if len(d) != 64 {
		t.Fatalf("digest %q", d)
	}
	same := []func(e *Entry){
		func(e *Entry) { e.File = "other.pdf" },
		func(e *Entry) { e.SHA256 = sha(99) },
		func(e *Entry) { e.Size = 1 },
		func(e *Entry) { e.Replaces, e.RevisionReason = sha(5), model.RevisionRescan },
		func(e *Entry) { e.Index = 7; e.Notes = []string{"x"} },
		func(e *Entry) { e.Flow = "" }, // absent flow is reprise
	}
	for i, f := range same {
		e := entry(1)
		f(&e)
		if e.IndexDigest() != d {
			t.Errorf("same[%d]: digest changed", i)
		}
	}
	e := entry(1)
	e.Persons[0].GivenNames = nil
	f := entry(1)
	f.Persons[0].GivenNames = []string{}
	if e.IndexDigest() != f.IndexDigest() {
		t.Error("nil and empty given names differ")
	}
	differ := []func(e *Entry){
		func(e *Entry) { e.Commune = "12145" },
		func(e *Entry) { e.Kind = model.KindDeces },
		func(e *Entry) { e.SansVie = true },
		func(e *Entry) { e.Year = 2020 },
		func(e *Entry) { e.Number = 2 },
		func(e *Entry) { e.ActDate = "2021-03-16" },
		func(e *Entry) { e.EventDate = "" },
		func(e *Entry) { e.Flow = model.FlowCourant },
		func(e *Entry) { e.Persons[0].Surname = "MARTÍN" },
		func(e *Entry) { e.Persons[0].GivenNames = []string{"Jeanne", "Marie"} },
		func(e *Entry) { e.Persons[0].GivenNames = []string{"Jeanne Marie"} },
		func(e *Entry) { e.Persons[0].Sex = "M" },
		func(e *Entry) { e.Persons[0].BirthDate = "" },
		func(e *Entry) { e.Persons[0].BirthPlace = "Millau (Aveyron)" },
		func(e *Entry) { e.Persons[0].Role = model.RolePere },
		func(e *Entry) { e.Persons = append(e.Persons, persons(model.RoleMere)...) },
	}
	for i, f := range differ {
		e := entry(1)
		f(&e)
		if e.IndexDigest() == d {
			t.Errorf("differ[%d]: digest unchanged", i)
		}
	}
	// Persons are in order.
	a, b := entry(1), entry(1)
	a.Persons = persons(model.RolePere, model.RoleMere)
	b.Persons = persons(model.RoleMere, model.RolePere)
	if a.IndexDigest() == b.IndexDigest() {
		t.Error("person order ignored")
	}
}

func TestKey(t *testing.T) {
	t.Parallel()
	e := entry(42)
	c, y, k, n := e.Key()
	if c != "12202" || y != 2021 || k != model.KindNaissance || n != 42 {
		t.Fatalf("key %s %d %s %d", c, y, k, n)
	}
}

func TestMessageAppendsNotes(t *testing.T) {
	t.Parallel()
	e := entry(1)
	e.Notes = []string{"Note."}
	if e.Message() != "Note." {
		t.Fatalf("message %q", e.Message())
	}
	e.Problem = model.Reject(model.ReasonDateInvalid, "détail.")
	if got := e.Message(); !strings.HasPrefix(got, e.Problem.Message) || !strings.HasSuffix(got, " Note.") {
		t.Fatalf("message %q", got)
	}
}

// BenchmarkParse10k parses and checks a 10,000-entry manifest.
func BenchmarkParse10k(b *testing.B) {
	acts := make([]any, 10000)
	for i := range acts {
		acts[i] = act(i + 1)
	}
	data := manifestJSON(b, acts...)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := Parse("manifest.json", data)
		if err != nil {
			b.Fatal(err)
		}
		checker().Check(m)
		if len(m.Acts) != 10000 || m.Acts[9999].Problem != nil {
			b.Fatal("bad parse")
		}
	}
}

// BenchmarkParseCSV10k is the same for manifest.csv.
func BenchmarkParseCSV10k(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("file;size;sha256;commune;kind;year;number;act_date;role;surname;given_names\n")
	for i := 1; i <= 10000; i++ {
		fmt.Fprintf(&sb, "N-%05d.pdf;1000;%s;12202;naissance;2021;%d;2021-03-15;titulaire;MARTIN;Jeanne|Marie\n", i, sha(i), i)
		fmt.Fprintf(&sb, "N-%05d.pdf;;;;;;;;mere;DURAND;Anne\n", i)
	}
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := Parse("manifest.csv", data)
		if err != nil {
			b.Fatal(err)
		}
		if len(m.Acts) != 10000 || m.Acts[9999].Problem != nil {
			b.Fatal("bad parse")
		}
	}
}

func set(k string, v any) func(map[string]any) any {
	return func(a map[string]any) any { a[k] = v; return a }
}

func without(k string) func(map[string]any) any {
	return func(a map[string]any) any { delete(a, k); return a }
}

func setPerson(k string, v any) func(map[string]any) any {
	return func(a map[string]any) any {
		p := maps.Clone(a["persons"].([]any)[0].(map[string]any))
		p[k] = v
		a["persons"] = []any{p}
		return a
	}
}

func withoutPerson(k string) func(map[string]any) any {
	return func(a map[string]any) any {
		p := maps.Clone(a["persons"].([]any)[0].(map[string]any))
		delete(p, k)
		a["persons"] = []any{p}
		return a
	}
}

// TestIntegralNumbers: JSON Schema's integers include 2021.0 and 4.2e1.
func TestIntegralNumbers(t *testing.T) {
	t.Parallel()
	data := strings.NewReplacer(`"year": 2021`, `"year": 2021.0`, `"number": 42`, `"number": 4.2e1`, `"size": 734512`, `"size": 734512.00`).
		Replace(strings.Replace(interfaceExample, "SHA", sha(42), 1))
	m, err := Parse("manifest.json", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	e := m.Acts[0]
	wantFine(t, e)
	if e.Year != 2021 || e.Number != 42 || e.Size != 734512 {
		t.Fatalf("year %d number %d size %d", e.Year, e.Number, e.Size)
	}
}
