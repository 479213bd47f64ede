package cog

import (
	"bytes"
	"compress/gzip"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/etatcivil/etatcivil/internal/model"
)

func embeddedT(t *testing.T) *Snapshot {
	t.Helper()
	s, err := Embedded()
	if err != nil {
		t.Fatalf("Embedded: %v", err)
	}
	return s
}

func TestEmbeddedMetadata(t *testing.T) {
	s := embeddedT(t)
	if s.Date != "2026-01-01" {
		t.Errorf("Date = %q, want 2026-01-01", s.Date)
	}
	if !strings.Contains(s.Source, "@etalab/decoupage-administratif@6.0.0") {
		t.Errorf("Source = %q, want it to name the npm package and version", s.Source)
	}
	if !strings.Contains(s.Licence, "Licence Ouverte") {
		t.Errorf("Licence = %q", s.Licence)
	}
	c := s.Counts()
	// COG 2026: about 35,000 current communes, 45 arrondissements.
	if c[model.CommuneActuelle] < 34000 || c[model.CommuneActuelle] > 36000 {
		t.Errorf("COM rows = %d, want about 35,000", c[model.CommuneActuelle])
	}
	if c[model.CommuneArrondissement] != 45 {
		t.Errorf("ARM rows = %d, want 45 (Paris 20, Marseille 16, Lyon 9)", c[model.CommuneArrondissement])
	}
	for _, typ := range []model.CommuneType{model.CommuneDeleguee, model.CommuneAssociee, model.CommuneAncienne} {
		if c[typ] < 100 {
			t.Errorf("%s rows = %d, want hundreds", typ, c[typ])
		}
	}
	if a, b := embeddedT(t), s; a != b {
		t.Error("Embedded returned two different snapshots")
	}
}

func TestEmbeddedConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Embedded()
			if err != nil || s.Current("12076") != "12218" {
				t.Errorf("concurrent Embedded: %v", err)
			}
		}()
	}
	wg.Wait()
}

func TestLookupAndChain(t *testing.T) {
	s := embeddedT(t)
	tests := []struct {
		code    string
		typ     model.CommuneType
		name    string
		parent  string
		chain   []string
		current string
	}{
		{"12202", model.CommuneActuelle, "Rodez", "", []string{"12202"}, "12202"},
		{"12145", model.CommuneActuelle, "Millau", "", []string{"12145"}, "12145"},
		{"12300", model.CommuneActuelle, "Villefranche-de-Rouergue", "", []string{"12300"}, "12300"},
		{"2A004", model.CommuneActuelle, "Ajaccio", "", []string{"2A004"}, "2A004"},
		{"2B033", model.CommuneActuelle, "Bastia", "", []string{"2B033"}, "2B033"},
		{"97411", model.CommuneActuelle, "Saint-Denis", "", []string{"97411"}, "97411"},
		{"75101", model.CommuneArrondissement, "Paris 1er Arrondissement", "75056", []string{"75101", "75056"}, "75056"},
		{"13201", model.CommuneArrondissement, "Marseille 1er Arrondissement", "13055", []string{"13201", "13055"}, "13055"},
		{"69381", model.CommuneArrondissement, "Lyon 1er Arrondissement", "69123", []string{"69381", "69123"}, "69123"},
		// Conques-en-Rouergue, commune nouvelle of 2016 (Aveyron): Conques
		// is a commune déléguée with a code of its own.
		{"12076", model.CommuneDeleguee, "Conques", "12218", []string{"12076", "12218"}, "12218"},
		// Sévérac d'Aveyron (2016): Buzeins is one of its communes déléguées.
		{"12040", model.CommuneDeleguee, "Buzeins", "12270", []string{"12040", "12270"}, "12270"},
		// 12218 is both the commune nouvelle and the commune déléguée of
		// Saint-Cyprien-sur-Dourdou: Lookup prefers the current commune.
		{"12218", model.CommuneActuelle, "Conques-en-Rouergue", "", []string{"12218"}, "12218"},
		// Former codes merged away, linked to their successor.
		{"12020", model.CommuneAncienne, "Balsac", "12090", []string{"12020", "12090"}, "12090"},
		{"12005", model.CommuneAncienne, "Alpuech", "12223", []string{"12005", "12223"}, "12223"},
		{"20004", model.CommuneAncienne, "Ajaccio", "2A004", []string{"20004", "2A004"}, "2A004"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			c, ok := s.Lookup(tt.code)
			if !ok {
				t.Fatalf("Lookup(%s) not found", tt.code)
			}
			want := model.Commune{Code: tt.code, Type: tt.typ, Name: tt.name, Parent: tt.parent}
			if c != want {
				t.Errorf("Lookup(%s) = %+v, want %+v", tt.code, c, want)
			}
			if got := s.Chain(tt.code); !slices.Equal(got, tt.chain) {
				t.Errorf("Chain(%s) = %v, want %v", tt.code, got, tt.chain)
			}
			if got := s.Current(tt.code); got != tt.current {
				t.Errorf("Current(%s) = %q, want %q", tt.code, got, tt.current)
			}
		})
	}
}

func TestSharedCodeKeepsBothRows(t *testing.T) {
	s := embeddedT(t)
	all := s.All("12218")
	if len(all) != 2 || all[0].Type != model.CommuneActuelle || all[1].Type != model.CommuneDeleguee ||
		all[1].Name != "Saint-Cyprien-sur-Dourdou" || all[1].Parent != "12218" {
		t.Errorf("All(12218) = %+v, want COM Conques-en-Rouergue then COMD Saint-Cyprien-sur-Dourdou", all)
	}
}

func TestUnknown(t *testing.T) {
	s := embeddedT(t)
	for _, code := range []string{"12999", "99134", "", "1220", "75100", "2A000"} {
		if c, ok := s.Lookup(code); ok {
			t.Errorf("Lookup(%q) = %+v, want not found", code, c)
		}
		if ch := s.Chain(code); ch != nil {
			t.Errorf("Chain(%q) = %v, want nil", code, ch)
		}
		if cur := s.Current(code); cur != "" {
			t.Errorf("Current(%q) = %q, want empty", code, cur)
		}
	}
}

// Rodez, Millau and Villefranche-de-Rouergue are three distinct current
// communes: none was merged into another.
func TestAveyronTownsIndependent(t *testing.T) {
	s := embeddedT(t)
	towns := []string{"12202", "12145", "12300"}
	for _, a := range towns {
		if c, ok := s.Lookup(a); !ok || c.Type != model.CommuneActuelle || c.Parent != "" {
			t.Errorf("%s: Lookup = %+v, %v; want a current commune", a, c, ok)
		}
		if s.Current(a) != a {
			t.Errorf("Current(%s) = %s", a, s.Current(a))
		}
	}
	// No code of the snapshot has one of them anywhere but at the end of
	// its chain, and none leads to another.
	for _, c := range s.Communes() {
		ch := s.Chain(c.Code)
		for _, town := range towns {
			if i := slices.Index(ch, town); i >= 0 && i != len(ch)-1 {
				t.Errorf("Chain(%s) = %v: %s is a predecessor", c.Code, ch, town)
			}
		}
		if slices.Contains(towns, c.Code) {
			for _, other := range towns {
				if other != c.Code && slices.Contains(ch, other) {
					t.Errorf("Chain(%s) = %v contains %s", c.Code, ch, other)
				}
			}
		}
	}
}

// Every row of the embedded snapshot is consistent: codes pass Check, every
// chain ends on a current commune, ANC codes are not current.
func TestEmbeddedConsistent(t *testing.T) {
	s := embeddedT(t)
	for _, c := range s.Communes() {
		if err := Check(c.Code); err != nil {
			t.Errorf("Check(%s): %v", c.Code, err)
		}
		cur := s.Current(c.Code)
		if r, ok := s.Lookup(cur); !ok || r.Type != model.CommuneActuelle {
			t.Errorf("Current(%s) = %s, which is %+v, not a current commune", c.Code, cur, r)
		}
		if c.Type == model.CommuneAncienne && len(s.All(c.Code)) != 1 {
			t.Errorf("ANC %s also has another type: %+v", c.Code, s.All(c.Code))
		}
	}
}

func TestNewSnapshotChainCycleSafe(t *testing.T) {
	s := NewSnapshot("2020-01-01", []model.Commune{
		{Code: "01001", Type: model.CommuneAncienne, Name: "A", Parent: "01002"},
		{Code: "01002", Type: model.CommuneAncienne, Name: "B", Parent: "01003"},
		{Code: "01003", Type: model.CommuneAncienne, Name: "C", Parent: "01001"},
		{Code: "01004", Type: model.CommuneDeleguee, Name: "D", Parent: "01009"}, // parent missing
		{Code: "01001", Type: model.CommuneAncienne, Name: "dup dropped", Parent: "01004"},
	})
	if got, want := s.Chain("01001"), []string{"01001", "01002", "01003"}; !slices.Equal(got, want) {
		t.Errorf("Chain(01001) = %v, want %v", got, want)
	}
	if got, want := s.Chain("01004"), []string{"01004", "01009"}; !slices.Equal(got, want) {
		t.Errorf("Chain(01004) = %v, want %v", got, want)
	}
	if s.Len() != 4 {
		t.Errorf("Len = %d, want 4 (duplicate dropped)", s.Len())
	}
	if c, _ := s.Lookup("01001"); c.Name != "A" {
		t.Errorf("duplicate replaced the first row: %+v", c)
	}
}

func TestLookupPreference(t *testing.T) {
	rows := []model.Commune{
		{Code: "01005", Type: model.CommuneAncienne, Name: "anc", Parent: "01001"},
		{Code: "01005", Type: model.CommuneAssociee, Name: "coma", Parent: "01001"},
		{Code: "01005", Type: model.CommuneDeleguee, Name: "comd", Parent: "01001"},
		{Code: "01005", Type: model.CommuneActuelle, Name: "com"},
	}
	for len(rows) > 0 {
		s := NewSnapshot("2020-01-01", rows)
		want := rows[len(rows)-1].Name
		if c, _ := s.Lookup("01005"); c.Name != want {
			t.Errorf("with %d rows Lookup = %q, want %q", len(rows), c.Name, want)
		}
		rows = rows[:len(rows)-1]
	}
}

const goodCSV = "# etatcivil COG snapshot\n# date: 2026-01-01\n# source: test\ncode,type,name,parent\n" +
	"12202,COM,Rodez,\n12218,COM,Conques-en-Rouergue,\n12076,COMD,Conques,12218\n12218,COMD,\"Saint-Cyprien, sur Dourdou\",12218\n12999,ANC,,12202\n"

func TestReadRoundTrip(t *testing.T) {
	s, err := Read(strings.NewReader(goodCSV))
	if err != nil {
		t.Fatal(err)
	}
	if s.Date != "2026-01-01" || s.Source != "test" || s.Len() != 5 || s.Current("12999") != "12202" {
		t.Fatalf("Read = date %q source %q len %d", s.Date, s.Source, s.Len())
	}
	var plain bytes.Buffer
	if err := Write(&plain, s); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain.Bytes())
	zw.Close()
	for name, in := range map[string][]byte{"plain": plain.Bytes(), "gzip": gz.Bytes(), "bom+crlf": []byte("\xef\xbb\xbf" + strings.ReplaceAll(plain.String(), "\n", "\r\n"))} {
		back, err := Read(bytes.NewReader(in))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !slices.Equal(back.Communes(), s.Communes()) || back.Date != s.Date || back.Source != s.Source {
			t.Errorf("%s: round trip differs:\n%v\n%v", name, back.Communes(), s.Communes())
		}
	}
}

func TestReadErrors(t *testing.T) {
	const head = "# date: 2026-01-01\ncode,type,name,parent\n" // header on line 2
	tests := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"no date", "code,type,name,parent\n12202,COM,Rodez,\n", 1, "missing"},
		{"bad date", "# date: 2026-13-01\ncode,type,name,parent\n", 1, "YYYY-MM-DD"},
		{"empty", "# date: 2026-01-01\n", 2, "missing header"},
		{"bad header", "# date: 2026-01-01\ncode;type;name;parent\n", 2, "wrong number of fields"},
		{"wrong header", "# date: 2026-01-01\ncode,kind,name,parent\n", 2, "header"},
		{"no rows", head, 3, "no rows"},
		{"field count", head + "12202,COM,Rodez,\n12145,COM,Millau\n", 4, "wrong number of fields"},
		{"bare quote", head + "12202,COM,Rodez,\n12145,COM,Mil\"lau,\n", 4, "quote"},
		{"bad code", head + "12202,COM,Rodez,\n1214,COM,Millau,\n", 4, "4 caractères"},
		{"bad type", head + "12202,COM,Rodez,\n12145,CMO,Millau,\n", 4, "unknown type"},
		{"no name", head + "12202,COM,,\n", 3, "empty name"},
		{"COM with parent", head + "12202,COM,Rodez,12145\n", 3, "no parent"},
		{"COMD without parent", head + "12202,COM,Rodez,\n12076,COMD,Conques,\n", 4, "parent is required"},
		{"bad parent", head + "12202,COM,Rodez,\n12076,COMD,Conques,2C218\n", 4, "parent of 12076"},
		{"duplicate", head + "12202,COM,Rodez,\n12145,COM,Millau,\n12202,COM,Rodez bis,\n", 5, "repeats line 3"},
		{"dangling parent", head + "12202,COM,Rodez,\n12076,COMD,Conques,12218\n12145,COM,Millau,\n", 4, "not in the snapshot"},
		{"line after quoted newline", head + "12202,COM,\"Ro\ndez\",\n12145,COM,Millau,x\n", 5, "no parent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tt.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Read error = %v, want *ParseError", err)
			}
			if pe.Line != tt.line || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Read error = %q (line %d), want line %d containing %q", err, pe.Line, tt.line, tt.msg)
			}
		})
	}
	// Broken gzip is reported too.
	if _, err := Read(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0})); err == nil {
		t.Error("Read accepted a truncated gzip stream")
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		code string
		ok   bool
		msg  string
	}{
		{"12202", true, ""},
		{"01001", true, ""},
		{"2A004", true, ""},
		{"2B033", true, ""},
		{"20004", true, ""}, // Corsican code before 1976
		{"75101", true, ""},
		{"95690", true, ""},
		{"97411", true, ""},
		{"97101", true, ""},
		{"97502", true, ""},
		{"97801", true, ""},
		{"98411", true, ""},
		{"98735", true, ""},
		{"98901", true, ""},
		{"", false, "vide"},
		{"1220", false, "essayez « 01220 »"},
		{"122020", false, "6 caractères"},
		{"2a004", false, "majuscules"},
		{"2C004", false, "chiffres"},
		{"2A0B4", false, "trois chiffres"},
		{"2A000", false, "000"},
		{"12000", false, "000"},
		{"00123", false, "00"},
		{"96001", false, "96"},
		{"99134", false, "pays étranger"},
		{"97911", false, "979"},
		{"98211", false, "982"},
		{"97400", false, "00"},
		{"1220A", false, "chiffres"},
		{"12 02", false, "chiffres"},
		{"ÉÉ", false, "caractères"},
	}
	for _, tt := range tests {
		err := Check(tt.code)
		if (err == nil) != tt.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tt.code, err, tt.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidCode) {
				t.Errorf("Check(%q) error does not wrap ErrInvalidCode", tt.code)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Check(%q) = %q, want it to contain %q", tt.code, err, tt.msg)
			}
		}
	}
}
