// Package inseelot builds the lots of bulletins etatcivil sends to INSEE.
//
// INSEE receives data only, never images: births daily, deaths weekly,
// marriages and stillbirths monthly. A lot holds the bulletins of one
// commune, one nature and one period. Its XML is our own format
// (namespace urn:etatcivil:lot:1, schema schemas/etatcivil-lot-1.xsd),
// shaped like INSEE's public état-civil schema (act, bulletin, envoi by
// lot) whose exact text we do not have.
//
// The package is pure: it maps acts to natures, computes periods, checks
// that an act carries what its bulletin needs, writes the XML and
// validates it with xmllint. Storing lots (committed before the first
// send, never rebuilt) and sending them are the caller's.
package inseelot

import (
	"time"
)

// Namespace is the XML namespace of our lot format, version 1.
const Namespace = "urn:etatcivil:lot:1"

// SchemaFile is the schema's file name in the repository's schemas/
// directory.
const SchemaFile = "etatcivil-lot-1.xsd"

// The four bulletin natures. A stillbirth (enfant sans vie) is inscribed
// in the death register but is its own monthly bulletin.
const (
	NatureNaissance    = "naissance"
	NatureDeces        = "deces"
	NatureMariage      = "mariage"
	NatureDecesSansVie = "deces_sans_vie"
)

// Natures lists every nature in a stable order.
var Natures = []string{NatureNaissance, NatureDeces, NatureMariage, NatureDecesSansVie}

// Person is one person named in an act, as indexed by the hub. Role is
// one of titulaire, pere, mere, epoux, epouse, defunt, declarant, temoin,
// auteur; roles are not tied to sex. Dates are AAAA-MM-JJ; BirthPlace is
// written "Commune (Département)".
type Person struct {
	Role       string
	Surname    string
	GivenNames []string
	Sex        string // M or F, or empty when unknown
	BirthDate  string
	BirthPlace string
}

// Act is one archived act version as the lot needs it. Kind is the
// register (naissance, mariage, deces, reconnaissance); SansVie marks a
// stillbirth in the death register. ActDate is the date the act was
// drawn up, EventDate the date of the event (birth, death, marriage,
// delivery), both AAAA-MM-JJ.
type Act struct {
	ActID     string
	Number    int
	Version   int
	Kind      string
	SansVie   bool
	ActDate   string
	EventDate string
	Persons   []Person
}

// Lot is one message to INSEE: the bulletins of one commune, one nature
// and one period. ID is the lot id and idempotency key (64 lowercase hex
// digits): the same lot is re-sent under the same ID. Hub is the sending
// hub's id; Commune the COG code written on the register. [From, To) is
// the period as Period returns it (To excluded). Issued is when the lot
// was built.
type Lot struct {
	ID      string
	Hub     string
	Commune string
	Nature  string
	From    time.Time
	To      time.Time
	Issued  time.Time
	Acts    []Act
}

// NatureOf gives the bulletin nature of an act of the given kind. ok is
// false when the act is not sent to INSEE: a reconnaissance has no
// bulletin, and an unknown kind or a stillbirth outside the death
// register is no bulletin either.
func NatureOf(kind string, sansVie bool) (nature string, ok bool) {
	switch {
	case kind == "deces" && sansVie:
		return NatureDecesSansVie, true
	case sansVie:
		return "", false
	case kind == "naissance":
		return NatureNaissance, true
	case kind == "deces":
		return NatureDeces, true
	case kind == "mariage":
		return NatureMariage, true
	}
	return "", false
}

// Period returns the period of the given nature that contains t, as
// [from, to) in loc, the commune's time zone (Europe/Paris in
// metropolitan France, but Indian/Reunion for 974…; nil means UTC):
//
//   - naissance: the calendar day;
//   - deces: the ISO week, from Monday 00:00, cut at 1 January so that a
//     lot never spans two yearly registers (act numbers restart at 1 each
//     year): the week of 29 December 2025 gives [29 Dec, 1 Jan) and
//     [1 Jan, 5 Jan);
//   - mariage, deces_sans_vie: the calendar month.
//
// Bounds are local midnights, so a period over a DST change is one hour
// shorter or longer. An unknown nature gives two zero times.
func Period(nature string, t time.Time, loc *time.Location) (from, to time.Time) {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	y, m, d := t.Date()
	switch nature {
	case NatureNaissance:
		return time.Date(y, m, d, 0, 0, 0, 0, loc), time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case NatureDeces:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		from = time.Date(y, m, d-back, 0, 0, 0, 0, loc)
		to = time.Date(y, m, d-back+7, 0, 0, 0, 0, loc)
		if newYear := time.Date(y, time.January, 1, 0, 0, 0, 0, loc); from.Before(newYear) {
			from = newYear
		}
		if newYear := time.Date(y+1, time.January, 1, 0, 0, 0, 0, loc); to.After(newYear) {
			to = newYear
		}
		return from, to
	case NatureMariage, NatureDecesSansVie:
		return time.Date(y, m, 1, 0, 0, 0, 0, loc), time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	return time.Time{}, time.Time{}
}
