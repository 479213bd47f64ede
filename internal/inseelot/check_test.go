package inseelot

import (
	"errors"
	"strings"
	"testing"
)

func TestNatureOf(t *testing.T) {
	cases := []struct {
		kind    string
		sansVie bool
		nature  string
		ok      bool
	}{
		{"naissance", false, NatureNaissance, true},
		{"deces", false, NatureDeces, true},
		{"deces", true, NatureDecesSansVie, true},
		{"mariage", false, NatureMariage, true},
		{"reconnaissance", false, "", false},
		{"naissance", true, "", false},
		{"divorce", false, "", false},
		{"", false, "", false},
	}
	for _, c := range cases {
		n, ok := NatureOf(c.kind, c.sansVie)
		if n != c.nature || ok != c.ok {
			t.Errorf("NatureOf(%q, %v) = %q, %v ; attendu %q, %v", c.kind, c.sansVie, n, ok, c.nature, c.ok)
		}
	}
}

func TestCheckGoodActs(t *testing.T) {
	for _, c := range []struct {
		a      Act
		nature string
	}{{birth(1), NatureNaissance}, {death(1), NatureDeces}, {marriage(1), NatureMariage}, {stillbirth(1), NatureDecesSansVie}} {
		if err := Check(c.a, c.nature); err != nil {
			t.Errorf("%s : %v", c.nature, err)
		}
	}
}

func TestCheckReconnaissanceNotSent(t *testing.T) {
	a := birth(42)
	a.Kind = "reconnaissance"
	a.Persons = append(a.Persons, Person{Role: "auteur", Surname: "DUPRÉ"})
	for _, nature := range Natures {
		err := Check(a, nature)
		if !errors.Is(err, ErrNotSent) {
			t.Fatalf("%s : ErrNotSent attendu, obtenu %v", nature, err)
		}
		if want := "acte non transmis à l'INSEE : un acte de reconnaissance n'a pas de bulletin (acte n° 42)."; err.Error() != want {
			t.Errorf("message\n %q\nattendu\n %q", err, want)
		}
	}
	a = birth(5)
	a.SansVie = true
	if err := Check(a, NatureDecesSansVie); !errors.Is(err, ErrNotSent) || err.Error() != "acte non transmis à l'INSEE : un enfant sans vie s'inscrit au registre des décès, non au registre « naissance » (acte n° 5)." {
		t.Errorf("enfant sans vie hors registre des décès : %v", err)
	}
}

// TestCheckMessages: each missing or wrong datum gives its own precise
// French message.
func TestCheckMessages(t *testing.T) {
	cases := []struct {
		name   string
		act    Act
		nature string
		edit   func(*Act)
		want   string
	}{
		// Every bulletin.
		{"nature contraire", death(42), NatureNaissance, nil,
			"Bulletin de naissance : l'acte relève d'un bulletin de décès, non de ce bulletin (acte n° 42)."},
		{"nature inconnue", death(42), "divorce", nil,
			"Nature de bulletin inconnue « divorce » (naissance, deces, mariage ou deces_sans_vie attendu) (acte n° 42)."},
		{"numéro", birth(0), NatureNaissance, nil,
			`Bulletin de naissance : numéro d'acte manquant ou invalide (0) (acte "naissance-0").`},
		{"version", birth(42), NatureNaissance, func(a *Act) { a.Version = 0 },
			"Bulletin de naissance : version de l'acte manquante ou invalide (0) (acte n° 42)."},
		{"date de l'acte", marriage(42), NatureMariage, func(a *Act) { a.ActDate = "" },
			"Bulletin de mariage : date de l'acte manquante (acte n° 42)."},
		{"date de l'acte invalide", marriage(42), NatureMariage, func(a *Act) { a.ActDate = "15/03/2025" },
			"Bulletin de mariage : date de l'acte invalide « 15/03/2025 » (date AAAA-MM-JJ attendue) (acte n° 42)."},
		{"date d'événement impossible", death(42), NatureDeces, func(a *Act) { a.EventDate = "2025-02-29" },
			"Bulletin de décès : date de l'événement invalide « 2025-02-29 » (date AAAA-MM-JJ attendue) (acte n° 42)."},

		// Naissance.
		{"sexe de l'enfant", birth(42), NatureNaissance, func(a *Act) { a.Persons[0].Sex = "" },
			"Bulletin de naissance : sexe de l'enfant manquant (acte n° 42)."},
		{"sexe de l'enfant invalide", birth(42), NatureNaissance, func(a *Act) { a.Persons[0].Sex = "I" },
			"Bulletin de naissance : sexe de l'enfant invalide « I » (M ou F attendu) (acte n° 42)."},
		{"enfant absent", birth(42), NatureNaissance, func(a *Act) { a.Persons = a.Persons[1:] },
			"Bulletin de naissance : enfant manquant (aucune personne de rôle titulaire) (acte n° 42)."},
		{"deux enfants", birth(42), NatureNaissance, func(a *Act) { a.Persons = append(a.Persons, a.Persons[0]) },
			"Bulletin de naissance : 2 enfants (rôle titulaire) au lieu d'un (acte n° 42)."},
		{"nom de l'enfant", birth(42), NatureNaissance, func(a *Act) { a.Persons[0].Surname = "  " },
			"Bulletin de naissance : nom de l'enfant manquant (acte n° 42)."},
		{"prénom vide", birth(42), NatureNaissance, func(a *Act) { a.Persons[0].GivenNames = []string{"Léa", ""} },
			"Bulletin de naissance : prénom n° 2 de l'enfant vide (acte n° 42)."},
		{"date de naissance de l'enfant", birth(42), NatureNaissance, func(a *Act) { a.Persons[0].BirthDate, a.EventDate = "", "" },
			"Bulletin de naissance : date de naissance de l'enfant manquante (acte n° 42)."},
		{"dates de naissance contraires", birth(42), NatureNaissance, func(a *Act) { a.Persons[0].BirthDate = "2025-03-28" },
			"Bulletin de naissance : date de naissance de l'enfant (2025-03-28) différente de la date de l'événement (2025-03-29) (acte n° 42)."},
		{"lieu de naissance de l'enfant", birth(42), NatureNaissance, func(a *Act) { a.Persons[0].BirthPlace = "" },
			"Bulletin de naissance : lieu de naissance de l'enfant manquant (acte n° 42)."},
		{"trois parents", birth(42), NatureNaissance, func(a *Act) { a.Persons = append(a.Persons, Person{Role: "mere", Surname: "X"}) },
			"Bulletin de naissance : 3 parents (rôles pere ou mere), deux au plus (acte n° 42)."},
		{"nom de la mère", birth(42), NatureNaissance, func(a *Act) { a.Persons[2].Surname = "" },
			"Bulletin de naissance : nom du parent n° 2 (mère) manquant (acte n° 42)."},
		{"nom trop long", birth(42), NatureNaissance, func(a *Act) { a.Persons[1].Surname = strings.Repeat("É", 201) },
			"Bulletin de naissance : nom du parent n° 1 (père) trop long (201 caractères, 200 au plus) (acte n° 42)."},

		{"caractère de contrôle", birth(42), NatureNaissance, func(a *Act) { a.Persons[0].BirthPlace = "Rodez\x00" },
			"Bulletin de naissance : lieu de naissance de l'enfant illisible (caractère de contrôle ou octet non UTF-8) : \"Rodez\\x00\" (acte n° 42)."},

		// Décès.
		{"défunt absent", death(42), NatureDeces, func(a *Act) { a.Persons = a.Persons[1:] },
			"Bulletin de décès : défunt manquant (aucune personne de rôle defunt) (acte n° 42)."},
		{"sexe du défunt", death(42), NatureDeces, func(a *Act) { a.Persons[0].Sex = "" },
			"Bulletin de décès : sexe du défunt manquant (acte n° 42)."},
		{"date de naissance du défunt", death(42), NatureDeces, func(a *Act) { a.Persons[0].BirthDate = "" },
			"Bulletin de décès : date de naissance du défunt manquante (acte n° 42)."},
		{"lieu de naissance du défunt", death(42), NatureDeces, func(a *Act) { a.Persons[0].BirthPlace = "" },
			"Bulletin de décès : lieu de naissance du défunt manquant (acte n° 42)."},
		{"date du décès", death(42), NatureDeces, func(a *Act) { a.EventDate = "" },
			"Bulletin de décès : date du décès manquante (acte n° 42)."},

		// Mariage.
		{"un seul conjoint", marriage(42), NatureMariage, func(a *Act) { a.Persons = a.Persons[1:] },
			"Bulletin de mariage : un seul conjoint (rôles epoux ou epouse) au lieu de deux (acte n° 42)."},
		{"aucun conjoint", marriage(42), NatureMariage, func(a *Act) { a.Persons = a.Persons[2:] },
			"Bulletin de mariage : aucun conjoint (rôles epoux ou epouse) au lieu de deux (acte n° 42)."},
		{"trois conjoints", marriage(42), NatureMariage, func(a *Act) { a.Persons[2].Role = "epoux" },
			"Bulletin de mariage : 3 conjoints (rôles epoux ou epouse) au lieu de deux (acte n° 42)."},
		{"sexe du second conjoint", marriage(42), NatureMariage, func(a *Act) { a.Persons[1].Sex = "" },
			"Bulletin de mariage : sexe du second conjoint (épouse) manquant (acte n° 42)."},
		{"lieu de naissance du premier conjoint", marriage(42), NatureMariage, func(a *Act) { a.Persons[0].BirthPlace = "" },
			"Bulletin de mariage : lieu de naissance du premier conjoint (épouse) manquant (acte n° 42)."},
		{"date de naissance du second conjoint", marriage(42), NatureMariage, func(a *Act) { a.Persons[1].BirthDate = "1995-13-01" },
			"Bulletin de mariage : date de naissance du second conjoint (épouse) invalide « 1995-13-01 » (date AAAA-MM-JJ attendue) (acte n° 42)."},

		// Enfant sans vie.
		{"enfant sans vie absent", stillbirth(42), NatureDecesSansVie, func(a *Act) { a.Persons = a.Persons[1:] },
			"Bulletin d'enfant sans vie : enfant manquant (aucune personne de rôle defunt) (acte n° 42)."},
		{"date de l'accouchement", stillbirth(42), NatureDecesSansVie, func(a *Act) { a.EventDate, a.Persons[0].BirthDate = "", "" },
			"Bulletin d'enfant sans vie : date de l'accouchement (date de l'événement) manquante (acte n° 42)."},
		{"sexe invalide de l'enfant sans vie", stillbirth(42), NatureDecesSansVie, func(a *Act) { a.Persons[0].Sex = "m" },
			"Bulletin d'enfant sans vie : sexe de l'enfant invalide « m » (M ou F attendu) (acte n° 42)."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.act
			a.Persons = append([]Person(nil), a.Persons...)
			if c.edit != nil {
				c.edit(&a)
			}
			err := Check(a, c.nature)
			if err == nil {
				t.Fatal("erreur attendue")
			}
			if errors.Is(err, ErrNotSent) {
				t.Errorf("ErrNotSent inattendu : %v", err)
			}
			if err.Error() != c.want {
				t.Errorf("message\n %q\nattendu\n %q", err, c.want)
			}
		})
	}
}

// TestCheckOptionalData: what a bulletin may lack.
func TestCheckOptionalData(t *testing.T) {
	a := stillbirth(1)
	a.Persons[0] = Person{Role: "defunt"} // no name, no sex
	if err := Check(a, NatureDecesSansVie); err != nil {
		t.Errorf("enfant sans vie anonyme : %v", err)
	}
	a = stillbirth(1)
	a.EventDate = "" // the child's birth date stands for the delivery
	if err := Check(a, NatureDecesSansVie); err != nil {
		t.Errorf("accouchement par la date de naissance : %v", err)
	}
	a = birth(1)
	a.Persons[0].BirthDate = "" // the event date stands for it
	a.Persons[2].GivenNames = nil
	if err := Check(a, NatureNaissance); err != nil {
		t.Errorf("naissance : %v", err)
	}
	a = marriage(1)
	a.EventDate = ""
	if err := Check(a, NatureMariage); err != nil {
		t.Errorf("mariage sans date d'événement : %v", err)
	}
}
