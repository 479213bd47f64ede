package inseelot

import (
	"os/exec"
	"strconv"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Paris and Indian/Reunion without the host's zoneinfo
)

// xsdPath is the schema, read from the repository as the tests run in
// the package directory.
const xsdPath = "../../schemas/etatcivil-lot-1.xsd"

const lotID = "3f1c7a9e0b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e"

// needXmllint fails the test (never skips it) when xmllint is missing:
// a lot that was not validated is not a passing test.
func needXmllint(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		t.Fatal("xmllint introuvable : installez libxml2-utils (make tools) ; ces tests ne se sautent pas.")
	}
}

func paris(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// birth, death, marriage and stillbirth are complete acts of each
// nature, numbered n.
func birth(n int) Act {
	return Act{
		ActID: "naissance-" + itoa(n), Number: n, Version: 1, Kind: "naissance",
		ActDate: "2025-03-30", EventDate: "2025-03-29",
		Persons: []Person{
			{Role: "titulaire", Surname: "DUPRÉ", GivenNames: []string{"Léa", "Marie"}, Sex: "F", BirthDate: "2025-03-29", BirthPlace: "Rodez (Aveyron)"},
			{Role: "pere", Surname: "DUPRÉ", GivenNames: []string{"Jean"}, Sex: "M", BirthDate: "1990-05-02", BirthPlace: "Albi (Tarn)"},
			{Role: "mere", Surname: "N'GUYEN", GivenNames: []string{"Anh"}, Sex: "F"},
			{Role: "declarant", Surname: "MARTIN"},
		},
	}
}

func death(n int) Act {
	return Act{
		ActID: "deces-" + itoa(n), Number: n, Version: 1, Kind: "deces",
		ActDate: "2025-03-31", EventDate: "2025-03-30",
		Persons: []Person{
			{Role: "defunt", Surname: "ÉTIENNE", GivenNames: []string{"Paul"}, Sex: "M", BirthDate: "1931-11-11", BirthPlace: "Ajaccio (Corse-du-Sud)"},
			{Role: "declarant", Surname: "ÉTIENNE", GivenNames: []string{"Marc"}},
		},
	}
}

func marriage(n int) Act {
	return Act{
		ActID: "mariage-" + itoa(n), Number: n, Version: 1, Kind: "mariage",
		ActDate: "2025-03-15", EventDate: "2025-03-15",
		Persons: []Person{
			{Role: "epouse", Surname: "LEROY", GivenNames: []string{"Claire"}, Sex: "F", BirthDate: "1994-01-20", BirthPlace: "Lyon 3e Arrondissement (Rhône)"},
			{Role: "epouse", Surname: "COSTA", GivenNames: []string{"Inès"}, Sex: "F", BirthDate: "1995-07-04", BirthPlace: "Lisbonne (Portugal)"},
			{Role: "temoin", Surname: "BLANC"},
		},
	}
}

func stillbirth(n int) Act {
	return Act{
		ActID: "sansvie-" + itoa(n), Number: n, Version: 1, Kind: "deces", SansVie: true,
		ActDate: "2025-03-12", EventDate: "2025-03-10",
		Persons: []Person{
			{Role: "defunt", Surname: "ROUX", GivenNames: []string{}, Sex: "M", BirthDate: "2025-03-10", BirthPlace: "Rodez (Aveyron)"},
			{Role: "declarant", Surname: "ROUX", Sex: "M"},
		},
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// goodLot is a valid lot of the given nature for Rodez, its acts given
// out of number order and with a gap.
func goodLot(t *testing.T, nature string) Lot {
	t.Helper()
	loc := paris(t)
	var acts []Act
	var at time.Time
	switch nature {
	case NatureNaissance:
		acts = []Act{birth(12), birth(7), birth(9)}
		at = time.Date(2025, 3, 30, 10, 0, 0, 0, loc)
	case NatureDeces:
		acts = []Act{death(40), death(38)}
		at = time.Date(2025, 3, 31, 10, 0, 0, 0, loc)
	case NatureMariage:
		acts = []Act{marriage(5), marriage(3), marriage(4)}
		at = time.Date(2025, 3, 15, 10, 0, 0, 0, loc)
	case NatureDecesSansVie:
		acts = []Act{stillbirth(39)}
		at = time.Date(2025, 3, 12, 10, 0, 0, 0, loc)
	default:
		t.Fatalf("nature %q", nature)
	}
	from, to := Period(nature, at, loc)
	return Lot{
		ID: lotID, Hub: "smica-aveyron", Commune: "12202", Nature: nature,
		From: from, To: to, Issued: time.Date(2025, 4, 1, 2, 0, 0, 0, loc),
		Acts: acts,
	}
}
