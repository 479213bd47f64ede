package inseelot

import (
	"encoding/xml"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// lotXML builds the good lot of a nature and checks it is valid.
func lotXML(t *testing.T, nature string) string {
	t.Helper()
	doc, err := goodLot(t, nature).XML()
	if err != nil {
		t.Fatalf("XML(%s) : %v", nature, err)
	}
	return string(doc)
}

func TestGoodLotsValidate(t *testing.T) {
	needXmllint(t)
	want := map[string]struct {
		numbers                  []int
		premier, dernier, nombre int
		debut, fin               string
	}{
		NatureNaissance:    {[]int{7, 9, 12}, 7, 12, 3, "2025-03-30", "2025-03-30"},
		NatureDeces:        {[]int{38, 40}, 38, 40, 2, "2025-03-31", "2025-04-06"},
		NatureMariage:      {[]int{3, 4, 5}, 3, 5, 3, "2025-03-01", "2025-03-31"},
		NatureDecesSansVie: {[]int{39}, 39, 39, 1, "2025-03-01", "2025-03-31"},
	}
	for _, nature := range Natures {
		t.Run(nature, func(t *testing.T) {
			doc := lotXML(t, nature)
			if err := Validate([]byte(doc), xsdPath); err != nil {
				t.Fatalf("lot valide refusé : %v\n%s", err, doc)
			}
			var got xLot
			if err := xml.Unmarshal([]byte(doc), &got); err != nil {
				t.Fatal(err)
			}
			w := want[nature]
			if got.Premier != w.premier || got.Dernier != w.dernier || got.Nombre != w.nombre {
				t.Errorf("sequence = %d..%d (%d), attendu %d..%d (%d)", got.Premier, got.Dernier, got.Nombre, w.premier, w.dernier, w.nombre)
			}
			var numbers []int
			for _, b := range got.Bulletins {
				numbers = append(numbers, b.NumeroActe)
			}
			if !slices.Equal(numbers, w.numbers) {
				t.Errorf("ordre des bulletins %v, attendu %v", numbers, w.numbers)
			}
			if got.Debut != w.debut || got.Fin != w.fin {
				t.Errorf("période %s..%s, attendu %s..%s", got.Debut, got.Fin, w.debut, w.fin)
			}
			if got.Nature != nature || got.Commune != "12202" || got.Identifiant != lotID {
				t.Errorf("en-tête %+v", got)
			}
			if !strings.Contains(doc, `<lot xmlns="urn:etatcivil:lot:1">`) {
				t.Errorf("espace de noms absent de la racine :\n%s", doc[:200])
			}
		})
	}
}

// TestGoodLotVariants validates the less common shapes: Corsican commune,
// no parent, two mothers, a stillborn child with no name nor sex, a
// marriage without event date, an emission time in UTC.
func TestGoodLotVariants(t *testing.T) {
	needXmllint(t)
	cases := map[string]func(*Lot){
		"commune corse": func(l *Lot) { l.Commune = "2A004" },
		"naissance sans parent": func(l *Lot) {
			l.Acts = []Act{birth(1)}
			l.Acts[0].Persons = l.Acts[0].Persons[:1]
		},
		"deux mères": func(l *Lot) {
			l.Acts = []Act{birth(1)}
			l.Acts[0].Persons[1].Role = "mere"
		},
		"naissance sans date d'événement": func(l *Lot) {
			l.Acts = []Act{birth(1)}
			l.Acts[0].EventDate = ""
		},
		"émission en UTC": func(l *Lot) { l.Issued = time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			l := goodLot(t, NatureNaissance)
			mutate(&l)
			doc, err := l.XML()
			if err != nil {
				t.Fatal(err)
			}
			if err := Validate(doc, xsdPath); err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
		})
	}
	t.Run("enfant sans vie anonyme", func(t *testing.T) {
		l := goodLot(t, NatureDecesSansVie)
		l.Acts[0].Persons[0] = Person{Role: "defunt"}
		doc, err := l.XML()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), "<enfant></enfant>") {
			t.Errorf("enfant vide attendu :\n%s", doc)
		}
		if err := Validate(doc, xsdPath); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
	})
	t.Run("mariage sans date d'événement", func(t *testing.T) {
		l := goodLot(t, NatureMariage)
		for i := range l.Acts {
			l.Acts[i].EventDate = ""
		}
		doc, err := l.XML()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(doc), "dateEvenement") {
			t.Errorf("dateEvenement inattendue :\n%s", doc)
		}
		if err := Validate(doc, xsdPath); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
	})
}

// TestBrokenLotsFail alters a valid lot in one place each and expects
// xmllint to refuse it for that reason only: every problem line must
// name the expected cause.
func TestBrokenLotsFail(t *testing.T) {
	needXmllint(t)
	cases := []struct {
		name, nature string
		old, new     string
		reason       string // in every problem line
	}{
		{"espace de noms INSEE au lieu du nôtre", NatureNaissance,
			`xmlns="urn:etatcivil:lot:1"`, `xmlns="http://xml.insee.fr/schema/etat-civil"`,
			"No matching global declaration available for the validation root"},
		{"sans espace de noms", NatureNaissance,
			` xmlns="urn:etatcivil:lot:1"`, ``,
			"No matching global declaration available for the validation root"},
		{"élément en trop (joker)", NatureNaissance,
			`<dateActe>2025-03-30</dateActe>`, `<dateActe>2025-03-30</dateActe><commentaire>x</commentaire>`,
			"commentaire': This element is not expected"},
		{"élément d'un autre espace de noms", NatureDeces,
			`<dateDeces>`, `<x:profession xmlns:x="urn:autre">retraité</x:profession><dateDeces>`,
			"{urn:autre}profession': This element is not expected"},
		{"attribut en trop", NatureNaissance,
			`<bulletin>`, `<bulletin origine="scan">`,
			"The attribute 'origine' is not allowed"},
		{"naissance sans sexe", NatureNaissance,
			`<sexe>F</sexe>`, ``,
			"dateNaissance': This element is not expected. Expected is ( {urn:etatcivil:lot:1}sexe )"},
		{"sexe inconnu", NatureNaissance,
			`<sexe>F</sexe>`, `<sexe>X</sexe>`,
			"sexe'"},
		{"mariage à un seul conjoint", NatureMariage,
			"", "", // the second conjoint element is cut out below
			"Missing child element(s). Expected is ( {urn:etatcivil:lot:1}conjoint )"},
		{"code commune invalide", NatureNaissance,
			`<commune>12202</commune>`, `<commune>0A123</commune>`,
			"commune'"},
		{"code commune trop court", NatureDeces,
			`<commune>12202</commune>`, `<commune>1220</commune>`,
			"commune'"},
		{"date impossible", NatureNaissance,
			`<dateActe>2025-03-30</dateActe>`, `<dateActe>2025-02-30</dateActe>`,
			"dateActe'"},
		{"pas une date", NatureDeces,
			`<dateDeces>2025-03-30</dateDeces>`, `<dateDeces>hier</dateDeces>`,
			"dateDeces'"},
		{"date avec fuseau", NatureMariage,
			`<dateActe>2025-03-15</dateActe>`, `<dateActe>2025-03-15Z</dateActe>`,
			"dateActe'"},
		{"nature du lot contraire aux bulletins", NatureNaissance,
			`<nature>naissance</nature>`, `<nature>deces</nature>`,
			"natureDesBulletins"},
		{"enfant sans vie sans date d'accouchement", NatureDecesSansVie,
			`<dateEvenement>2025-03-10</dateEvenement>`, ``,
			"Missing child element(s). Expected is ( {urn:etatcivil:lot:1}dateEvenement )"},
		{"numéro d'acte en double", NatureMariage,
			`<numeroActe>4</numeroActe>`, `<numeroActe>3</numeroActe>`,
			"numeroActeUnique"},
		{"premier numéro absent du lot", NatureMariage,
			`<premier>3</premier>`, `<premier>1</premier>`,
			"premierPresent"},
		{"identifiant trop court", NatureDeces,
			lotID, lotID[:63],
			"identifiant'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := lotXML(t, c.nature)
			if c.old == "" {
				// Drop the second conjoint of marriage n° 3 (the others
				// keep both spouses).
				re := regexp.MustCompile(`(?s)\s*<conjoint qualite="epouse">\s*<nom>COSTA</nom>.*?</conjoint>`)
				cut := re.FindString(doc)
				if cut == "" {
					t.Fatalf("second conjoint introuvable :\n%s", doc)
				}
				doc = strings.Replace(doc, cut, "", 1)
			} else {
				if n := strings.Count(doc, c.old); n < 1 {
					t.Fatalf("%q absent du lot :\n%s", c.old, doc)
				}
				doc = strings.Replace(doc, c.old, c.new, 1)
			}
			err := Validate([]byte(doc), xsdPath)
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("erreur de validation attendue, obtenu %v\n%s", err, doc)
			}
			for _, p := range verr.Problems {
				if !strings.Contains(p, c.reason) {
					t.Errorf("problème sans rapport avec la cause %q : %s", c.reason, p)
				}
			}
			t.Logf("%s", verr)
		})
	}
}

func TestValidateOtherErrors(t *testing.T) {
	needXmllint(t)
	t.Run("document mal formé", func(t *testing.T) {
		var verr *ValidationError
		if err := Validate([]byte("<lot"), xsdPath); !errors.As(err, &verr) {
			t.Fatalf("ValidationError attendue, obtenu %v", err)
		}
	})
	t.Run("schéma absent", func(t *testing.T) {
		err := Validate([]byte(lotXML(t, NatureDeces)), "absent.xsd")
		var verr *ValidationError
		if err == nil || errors.As(err, &verr) || errors.Is(err, ErrNoValidator) {
			t.Fatalf("erreur de schéma attendue, obtenu %v", err)
		}
	})
	t.Run("schéma invalide", func(t *testing.T) {
		bad := t.TempDir() + "/bad.xsd"
		if err := os.WriteFile(bad, []byte("<pas-un-schema/>"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := Validate([]byte(lotXML(t, NatureDeces)), bad)
		var verr *ValidationError
		if err == nil || errors.As(err, &verr) || !strings.Contains(err.Error(), "invalide") {
			t.Fatalf("erreur de schéma attendue, obtenu %v", err)
		}
	})
}

// TestValidateWithoutXmllint: no xmllint is ErrNoValidator, never a
// success.
func TestValidateWithoutXmllint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if err := Validate([]byte("<lot/>"), xsdPath); !errors.Is(err, ErrNoValidator) {
		t.Fatalf("ErrNoValidator attendu, obtenu %v", err)
	}
}

// TestSchemaHasNoWildcard: the schema admits nothing it does not name.
func TestSchemaHasNoWildcard(t *testing.T) {
	b, err := os.ReadFile(xsdPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, bad := range []string{"xs:any", "anyAttribute", "processContents"} {
		if strings.Contains(s, bad) {
			t.Errorf("le schéma contient %q", bad)
		}
	}
	if m := regexp.MustCompile(`<(\w+:)?any[\s/>]`).FindString(s); m != "" {
		t.Errorf("le schéma contient un joker : %s", m)
	}
	for _, want := range []string{`targetNamespace="urn:etatcivil:lot:1"`, `elementFormDefault="qualified"`} {
		if !strings.Contains(s, want) {
			t.Errorf("le schéma ne déclare pas %s", want)
		}
	}
}

func TestXMLRefusesBadLots(t *testing.T) {
	cases := []struct {
		name   string
		nature string
		mutate func(*Lot)
		want   string
	}{
		{"identifiant en majuscules", NatureNaissance, func(l *Lot) { l.ID = strings.ToUpper(lotID) }, "identifiant invalide"},
		{"sans émetteur", NatureNaissance, func(l *Lot) { l.Hub = " " }, "émetteur (opérateur) manquant"},
		{"commune", NatureNaissance, func(l *Lot) { l.Commune = "2C004" }, "code commune invalide « 2C004 »"},
		{"nature", NatureNaissance, func(l *Lot) { l.Nature = "reconnaissance" }, "nature inconnue « reconnaissance »"},
		{"période relue en UTC", NatureNaissance, func(l *Lot) { l.From, l.To = l.From.UTC(), l.To.UTC() }, "n'est pas une période de bulletins « naissance » dans le fuseau UTC"},
		{"période d'une autre cadence", NatureDeces, func(l *Lot) { l.To = l.From.AddDate(0, 0, 1) }, "n'est pas une période de bulletins « deces »"},
		{"sans date d'émission", NatureNaissance, func(l *Lot) { l.Issued = time.Time{} }, "date d'émission manquante"},
		{"sans acte", NatureNaissance, func(l *Lot) { l.Acts = nil }, "aucun bulletin"},
		{"acte en double", NatureNaissance, func(l *Lot) { l.Acts = append(l.Acts, birth(9)) }, "l'acte n° 9 figure deux fois"},
		{"acte d'une autre nature", NatureNaissance, func(l *Lot) { l.Acts = append(l.Acts, death(13)) }, "Bulletin de naissance : l'acte relève d'un bulletin de décès, non de ce bulletin (acte n° 13)."},
		{"reconnaissance", NatureNaissance, func(l *Lot) { l.Acts[0].Kind = "reconnaissance" }, "acte non transmis à l'INSEE"},
		{"donnée manquante", NatureNaissance, func(l *Lot) { l.Acts[1].Persons[0].Sex = "" }, "Bulletin de naissance : sexe de l'enfant manquant (acte n° 7)."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := goodLot(t, c.nature)
			c.mutate(&l)
			_, err := l.XML()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("erreur contenant %q attendue, obtenu %v", c.want, err)
			}
		})
	}
}

// TestXMLLeavesActsAlone: sorting works on a copy.
func TestXMLLeavesActsAlone(t *testing.T) {
	l := goodLot(t, NatureNaissance)
	if _, err := l.XML(); err != nil {
		t.Fatal(err)
	}
	if l.Acts[0].Number != 12 {
		t.Errorf("XML a réordonné les actes de l'appelant")
	}
}
