package manifest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/etatcivil/etatcivil/internal/model"
)

const csvHeader = "file;size;sha256;commune;kind;year;number;act_date;event_date;flow;role;surname;given_names;sex;birth_date;birth_place;replaces;revision_reason"

// csvRow builds one row of the full header from ; separated cells.
func csvRow(cells ...string) string { return strings.Join(cells, ";") }

func TestParseCSVSemicolonBOM(t *testing.T) {
	t.Parallel()
	data := "\xef\xbb\xbf" + csvHeader + "\r\n" +
		csvRow("N-2021-0042.pdf", "734512", sha(42), "12202", "naissance", "2021", "42", "2021-03-15", "2021-03-14", "reprise",
			"titulaire", "MARTIN", "Jeanne|Marie", "F", "2021-03-14", "Rodez (Aveyron)", "", "") + "\r\n" +
		csvRow("N-2021-0042.pdf", "", "", "", "", "", "", "", "", "", "mere", "MARTIN", "Anne-Sophie", "F", "1990-05-01", "Millau (Aveyron)", "", "") + "\r\n" +
		csvRow("M-2021-0007.pdf", "1000", sha(7), "12202", "mariage", "2021", "7", "2021-06-12", "", "courant",
			"epoux", "DURAND", "Jean Baptiste", "M", "", "", "", "") + "\r\n" +
		csvRow("M-2021-0007.pdf", "1000", sha(7), "12202", "mariage", "2021", "7", "2021-06-12", "", "courant",
			"epoux", "\"LEBLANC; dit \"\"Léo\"\"\"", "", "", "", "", "", "") + "\r\n"
	m, err := ParseCSV([]byte(data), "smica")
	if err != nil {
		t.Fatal(err)
	}
	if m.Hub != "smica" || m.Format != FormatCSV || len(m.Acts) != 2 {
		t.Fatalf("hub %q format %q, %d acts", m.Hub, m.Format, len(m.Acts))
	}
	want0 := Entry{Index: 0,
		File: "N-2021-0042.pdf", Size: 734512, SHA256: sha(42), Commune: "12202", Kind: model.KindNaissance,
		Year: 2021, Number: 42, ActDate: "2021-03-15", EventDate: "2021-03-14", Flow: model.FlowReprise,
		Persons: []Person{
			{Role: model.RoleTitulaire, Surname: "MARTIN", GivenNames: []string{"Jeanne", "Marie"}, Sex: "F", BirthDate: "2021-03-14", BirthPlace: "Rodez (Aveyron)"},
			{Role: model.RoleMere, Surname: "MARTIN", GivenNames: []string{"Anne-Sophie"}, Sex: "F", BirthDate: "1990-05-01", BirthPlace: "Millau (Aveyron)"},
		},
	}
	if !reflect.DeepEqual(m.Acts[0], want0) {
		t.Fatalf("entry 0\n got %+v\nwant %+v", m.Acts[0], want0)
	}
	e := m.Acts[1]
	wantFine(t, e)
	if e.Index != 1 || e.Flow != model.FlowCourant || len(e.Persons) != 2 ||
		!reflect.DeepEqual(e.Persons[0].GivenNames, []string{"Jean Baptiste"}) ||
		e.Persons[1].Surname != `LEBLANC; dit "Léo"` || len(e.Persons[1].GivenNames) != 0 {
		t.Fatalf("entry 1 %+v", e)
	}
	checker().Check(m)
	wantFine(t, m.Acts[0])
	wantFine(t, m.Acts[1])
}

func TestParseCSVCommaNoBOM(t *testing.T) {
	t.Parallel()
	data := "file,size,sha256,commune,kind,year,number,act_date,role,surname,given_names,sans_vie\n" +
		"D-1.pdf,10," + sha(1) + ",12202,deces,2021,1,2021-01-02,defunt,X,,oui\n"
	m, err := Parse("manifest.csv", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	e := m.Acts[0]
	wantFine(t, e)
	if m.Hub != "" || !e.SansVie || e.Kind != model.KindDeces || e.Flow != model.FlowReprise || len(e.Persons) != 1 {
		t.Fatalf("%+v", m)
	}
}

// TestCSVAndJSONAgree: the same manifest in both formats gives the same
// entries and digests.
func TestCSVAndJSONAgree(t *testing.T) {
	t.Parallel()
	j, err := Parse("manifest.json", manifestJSON(t, act(1), act(2)))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString(csvHeader + "\n")
	for i := 1; i <= 2; i++ {
		sb.WriteString(csvRow(fmt.Sprintf("N-2021-%04d.pdf", i), "734512", sha(i), "12202", "naissance", "2021", fmt.Sprint(i),
			"2021-03-15", "2021-03-14", "reprise", "titulaire", "MARTIN", "Jeanne|Marie", "F", "2021-03-14", "Rodez (Aveyron)", "", "") + "\n")
	}
	c, err := ParseCSV([]byte(sb.String()), "smica")
	if err != nil {
		t.Fatal(err)
	}
	for i := range j.Acts {
		if !reflect.DeepEqual(j.Acts[i], c.Acts[i]) {
			t.Fatalf("entry %d\njson %+v\n csv %+v", i, j.Acts[i], c.Acts[i])
		}
		if j.Acts[i].IndexDigest() != c.Acts[i].IndexDigest() {
			t.Fatalf("entry %d: digests differ", i)
		}
	}
}

func TestParseCSVPadsCommune(t *testing.T) {
	t.Parallel()
	data := "file,size,sha256,commune,kind,year,number,act_date\n" +
		"a.pdf,1," + sha(1) + ",1202,naissance,2021,1,2021-01-02\n" +
		"b.pdf,1," + sha(2) + ",12202,naissance,2021,2,2021-01-02\n" +
		"c.pdf,1," + sha(3) + ",1299,naissance,2021,3,2021-01-02\n"
	m, err := ParseCSV([]byte(data), "smica")
	if err != nil {
		t.Fatal(err)
	}
	a := m.Acts[0]
	wantFine(t, a)
	if a.Commune != "01202" || len(a.Notes) != 1 || !strings.Contains(a.Notes[0], "« 1202 »") || !strings.Contains(a.Notes[0], "« 01202 »") {
		t.Fatalf("commune %q notes %q", a.Commune, a.Notes)
	}
	if a.Message() != a.Notes[0] {
		t.Fatalf("message %q", a.Message())
	}
	if len(m.Acts[1].Notes) != 0 {
		t.Fatalf("unpadded code got notes %q", m.Acts[1].Notes)
	}
	checker().Check(m)
	wantFine(t, m.Acts[0])
	// 01299 is not in the COG: rejected, and the message still says the
	// code was padded.
	wantProblem(t, m.Acts[2], model.ReasonCommuneInvalid, "/acts/2/commune")
	if msg := m.Acts[2].Message(); !strings.Contains(msg, "01299") || !strings.HasSuffix(msg, m.Acts[2].Notes[0]) {
		t.Fatalf("message %q", msg)
	}
}

func TestParseCSVEntryProblems(t *testing.T) {
	t.Parallel()
	const h = "file,size,sha256,commune,kind,year,number,act_date,role,surname,given_names\n"
	ok := func(file string, n int) string {
		return fmt.Sprintf("%s,1,%s,12202,naissance,2021,%d,2021-01-02,titulaire,MARTIN,Jeanne\n", file, sha(n), n)
	}
	tests := []struct {
		name, row, ptr string
		reason         model.Reason
	}{
		{"size not a number", "b.pdf,12 ko," + sha(2) + ",12202,naissance,2021,2,2021-01-02,,,\n", "/acts/1/size", model.ReasonManifestInvalid},
		{"year missing", "b.pdf,1," + sha(2) + ",12202,naissance,,2,2021-01-02,,,\n", "/acts/1/year", model.ReasonManifestInvalid},
		{"act_date missing", "b.pdf,1," + sha(2) + ",12202,naissance,2021,2,,,,\n", "/acts/1/act_date", model.ReasonManifestInvalid},
		{"bad role", "b.pdf,1," + sha(2) + ",12202,naissance,2021,2,2021-01-02,parrain,X,\n", "/acts/1/persons/0/role", model.ReasonManifestInvalid},
		{"surname without role", "b.pdf,1," + sha(2) + ",12202,naissance,2021,2,2021-01-02,,X,\n", "/acts/1/persons/0/role", model.ReasonManifestInvalid},
		{"trailing pipe in given names", "b.pdf,1," + sha(2) + ",12202,naissance,2021,2,2021-01-02,titulaire,X,Jeanne|\n", "/acts/1/persons/0/given_names/1", model.ReasonManifestInvalid},
		{"short row", "b.pdf,1," + sha(2) + ",12202\n", "/acts/1", model.ReasonManifestInvalid},
		{"act columns disagree", "b.pdf,1," + sha(2) + ",12202,naissance,2021,2,2021-01-02,pere,X,\n" +
			"b.pdf,1," + sha(2) + ",12202,deces,2021,2,2021-01-02,mere,Y,\n", "/acts/1/kind", model.ReasonManifestInvalid},
		{"calendar date", "b.pdf,1," + sha(2) + ",12202,naissance,2021,2,2021-02-30,,,\n", "/acts/1/act_date", model.ReasonDateInvalid},
		{"file name with a path", ok("x/b.pdf", 2), "/acts/1/file", model.ReasonFileNameInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseCSV([]byte(h+ok("a.pdf", 1)+tt.row+ok("c.pdf", 3)), "smica")
			if err != nil {
				t.Fatalf("whole manifest refused: %v", err)
			}
			if len(m.Acts) != 3 {
				t.Fatalf("%d entries, want 3", len(m.Acts))
			}
			checker().Check(m)
			wantFine(t, m.Acts[0])
			wantFine(t, m.Acts[2])
			wantProblem(t, m.Acts[1], tt.reason, tt.ptr)
		})
	}
}

// TestParseCSVDuplicateFile: rows of one file are grouped only while
// consecutive; the same file further down is another entry, a duplicate.
func TestParseCSVDuplicateFile(t *testing.T) {
	t.Parallel()
	data := "file,size,sha256,commune,kind,year,number,act_date,role,surname\n" +
		"a.pdf,1," + sha(1) + ",12202,naissance,2021,1,2021-01-02,titulaire,X\n" +
		"a.pdf,,,,,,,,pere,Y\n" +
		"b.pdf,1," + sha(2) + ",12202,naissance,2021,2,2021-01-02,titulaire,Z\n" +
		"a.pdf,1," + sha(1) + ",12202,naissance,2021,1,2021-01-02,mere,W\n"
	m, err := ParseCSV([]byte(data), "smica")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Acts) != 3 || len(m.Acts[0].Persons) != 2 {
		t.Fatalf("%d entries, first with %d persons", len(m.Acts), len(m.Acts[0].Persons))
	}
	checker().Check(m)
	wantFine(t, m.Acts[0])
	wantFine(t, m.Acts[1])
	wantProblem(t, m.Acts[2], model.ReasonFileDuplicate, "/acts/2/file")
}

func TestParseCSVUnparseable(t *testing.T) {
	t.Parallel()
	row := "a.pdf,1," + sha(1) + ",12202,naissance,2021,1,2021-01-02\n"
	const h = "file,size,sha256,commune,kind,year,number,act_date\n"
	tests := []struct{ name, data, want string }{
		{"empty", "", "vide"},
		{"BOM only", "\xef\xbb\xbf", "vide"},
		{"no header", row, "en-tête"},
		{"header only", h, "aucun acte"},
		{"unknown column", "file,size,sha256,commune,kind,year,number,act_date,acte_date\n" + row, "« acte_date » inconnue"},
		{"missing column", "file,size,sha256,commune,kind,year,number\n" + row, "« act_date » absente"},
		{"column twice", "file,size,sha256,commune,kind,year,number,act_date,file\n" + row, "en double"},
		{"Latin-1", h + row + "\xe9.pdf,1," + sha(2) + ",12202,naissance,2021,2,2021-01-02\n", "ligne 3, colonne 1"},
		{"Latin-1 word", h + "a.pdf,1," + sha(1) + ",12202,naissance,2021,1,2021-01-02,\xc9LISE\n", "UTF-8"},
		{"bare quote", h + "a\"b.pdf,1," + sha(1) + ",12202,naissance,2021,1,2021-01-02\n", "ligne 2"},
		{"unclosed quote", h + "\"a.pdf,1\n", "ligne 2"},
		{"two hubs", "hub," + h + "smica," + row + "autre," + strings.Replace(row, "a.pdf", "b.pdf", 1), "ligne 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseCSV([]byte(tt.data), "smica")
			if !errors.Is(err, ErrUnparseable) {
				t.Fatalf("got %v, %v; want ErrUnparseable", m, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

func TestParseCSVHubColumn(t *testing.T) {
	t.Parallel()
	data := "hub;file;size;sha256;commune;kind;year;number;act_date\n" +
		"smica;a.pdf;1;" + sha(1) + ";12202;naissance;2021;1;2021-01-02\n" +
		";b.pdf;1;" + sha(2) + ";12202;naissance;2021;2;2021-01-02\n"
	for _, def := range []string{"", "other"} {
		m, err := ParseCSV([]byte(data), def)
		if err != nil {
			t.Fatal(err)
		}
		if m.Hub != "smica" {
			t.Fatalf("default %q: hub %q, want the column's", def, m.Hub)
		}
	}
	m, err := Parse("manifest.csv", []byte(strings.ReplaceAll(data, "smica;", ";")))
	if err != nil {
		t.Fatal(err)
	}
	if m.Hub != "" || len(m.Acts) != 2 {
		t.Fatalf("hub %q, %d acts", m.Hub, len(m.Acts))
	}
}
