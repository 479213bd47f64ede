package inseelot

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrNotSent marks an act that has no INSEE bulletin (a reconnaissance,
// for one). Check wraps it; test with errors.Is.
var ErrNotSent = errors.New("acte non transmis à l'INSEE")

// maxText is the longest name, first name or place the schema accepts,
// in characters.
const maxText = 200

// Check reports whether act a carries every datum its bulletin of the
// given nature needs, and that the act belongs in such a bulletin. The
// first problem found is returned as a French message naming the
// bulletin and the act number, such as
// « Bulletin de naissance : sexe de l'enfant manquant (acte n° 42). ».
// An act that is not sent to INSEE (a reconnaissance) gives an error
// wrapping ErrNotSent.
//
// What each bulletin needs:
//   - every bulletin: act number, version, date of the act;
//   - naissance: one child (role titulaire) with surname, sex, date of
//     birth (its own, or else the event date) and place of birth; at most
//     two parents (pere, mere), each with a surname;
//   - deces: one deceased (defunt) with surname, sex, date and place of
//     birth, and the date of death (the event date);
//   - mariage: exactly two spouses (epoux or epouse, in any combination),
//     each with surname, sex, date and place of birth;
//   - deces_sans_vie: one child (role defunt; surname, first names and
//     sex optional) and the date of delivery (the event date, or else the
//     child's date of birth).
//
// Dates given must be real calendar dates, AAAA-MM-JJ.
func Check(a Act, nature string) error {
	_, err := bulletinOf(a, nature)
	return err
}

// bulletinOf checks a and builds its bulletin: Check and XML share one
// rule set, so a checked act always makes a valid bulletin.
func bulletinOf(a Act, nature string) (*xBulletin, error) {
	ref := "acte n° " + fmt.Sprint(a.Number)
	if a.Number <= 0 {
		ref = fmt.Sprintf("acte %q", a.ActID)
	}
	got, ok := NatureOf(a.Kind, a.SansVie)
	if !ok {
		switch {
		case a.Kind == "reconnaissance":
			return nil, fmt.Errorf("%w : un acte de reconnaissance n'a pas de bulletin (%s).", ErrNotSent, ref)
		case a.SansVie && validKind(a.Kind):
			return nil, fmt.Errorf("%w : un enfant sans vie s'inscrit au registre des décès, non au registre « %s » (%s).", ErrNotSent, a.Kind, ref)
		default:
			return nil, fmt.Errorf("%w : registre inconnu « %s » (%s).", ErrNotSent, a.Kind, ref)
		}
	}
	title, known := titles[nature]
	if !known {
		return nil, fmt.Errorf("Nature de bulletin inconnue « %s » (naissance, deces, mariage ou deces_sans_vie attendu) (%s).", nature, ref)
	}
	c := &checker{title: title, ref: ref}
	if got != nature {
		return nil, c.fail("l'acte relève d'un %s, non de ce bulletin", strings.ToLower(titles[got][:1])+titles[got][1:])
	}
	if a.Number <= 0 {
		return nil, c.fail("numéro d'acte manquant ou invalide (%d)", a.Number)
	}
	if a.Version <= 0 {
		return nil, c.fail("version de l'acte manquante ou invalide (%d)", a.Version)
	}
	b := &xBulletin{NumeroActe: a.Number, VersionActe: a.Version}
	var err error
	if b.DateActe, err = c.date(a.ActDate, "date de l'acte", true); err != nil {
		return nil, err
	}
	if b.DateEvenement, err = c.date(a.EventDate, "date de l'événement", false); err != nil {
		return nil, err
	}
	switch nature {
	case NatureNaissance:
		err = c.naissance(a, b)
	case NatureDeces:
		err = c.deces(a, b)
	case NatureMariage:
		err = c.mariage(a, b)
	case NatureDecesSansVie:
		err = c.sansVie(a, b)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// titles names each bulletin in messages.
var titles = map[string]string{
	NatureNaissance:    "Bulletin de naissance",
	NatureDeces:        "Bulletin de décès",
	NatureMariage:      "Bulletin de mariage",
	NatureDecesSansVie: "Bulletin d'enfant sans vie",
}

func validKind(k string) bool {
	switch k {
	case "naissance", "mariage", "deces", "reconnaissance":
		return true
	}
	return false
}

// checker words the problems of one act's bulletin.
type checker struct {
	title, ref string
}

func (c *checker) fail(format string, args ...any) error {
	return fmt.Errorf("%s : %s (%s).", c.title, fmt.Sprintf(format, args...), c.ref)
}

// date checks one date; what is a feminine noun phrase ("date de
// l'acte"). An empty optional date gives "".
func (c *checker) date(s, what string, required bool) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		if required {
			return "", c.fail("%s manquante", what)
		}
		return "", nil
	}
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return "", c.fail("%s invalide « %s » (date AAAA-MM-JJ attendue)", what, s)
	}
	return s, nil
}

// text checks a name or place; what is a masculine noun phrase ("nom de
// l'enfant").
func (c *checker) text(s, what string, required bool) (string, error) {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		if required {
			return "", c.fail("%s manquant", what)
		}
		return "", nil
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }) {
		return "", c.fail("%s illisible (caractère de contrôle ou octet non UTF-8) : %q", what, s)
	}
	if n := utf8.RuneCountInString(s); n > maxText {
		return "", c.fail("%s trop long (%d caractères, %d au plus)", what, n, maxText)
	}
	return s, nil
}

func (c *checker) sex(s, of string, required bool) (string, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "M", "F":
		return s, nil
	case "":
		if required {
			return "", c.fail("sexe %s manquant", of)
		}
		return "", nil
	}
	return "", c.fail("sexe %s invalide « %s » (M ou F attendu)", of, s)
}

func (c *checker) givenNames(names []string, of string) (xPrenoms, error) {
	var p xPrenoms
	for i, n := range names {
		v, err := c.text(n, fmt.Sprintf("prénom n° %d %s", i+1, of), false)
		if err != nil {
			return p, err
		}
		if v == "" {
			return p, c.fail("prénom n° %d %s vide", i+1, of)
		}
		p.Prenom = append(p.Prenom, v)
	}
	return p, nil
}

// identity checks what every fully described person needs (enfant né,
// défunt, conjoint): surname, first names, sex, date and place of birth.
// birthDate is the date to use, already resolved by the caller.
func (c *checker) identity(p Person, of, birthDate string) (xIdentite, error) {
	var id xIdentite
	var err error
	if id.Nom, err = c.text(p.Surname, "nom "+of, true); err != nil {
		return id, err
	}
	if id.Prenoms, err = c.givenNames(p.GivenNames, of); err != nil {
		return id, err
	}
	if id.Sexe, err = c.sex(p.Sex, of, true); err != nil {
		return id, err
	}
	if id.DateNaissance, err = c.date(birthDate, "date de naissance "+of, true); err != nil {
		return id, err
	}
	if id.LieuNaissance, err = c.text(p.BirthPlace, "lieu de naissance "+of, true); err != nil {
		return id, err
	}
	return id, nil
}

// withRoles returns the persons of a whose role is one of roles, in
// their order in the act.
func withRoles(a Act, roles ...string) []Person {
	var out []Person
	for _, p := range a.Persons {
		for _, r := range roles {
			if p.Role == r {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// one returns the single person of a with the given role; who names it
// in messages ("enfant", "défunt").
func (c *checker) one(a Act, role, who, whos string) (Person, error) {
	ps := withRoles(a, role)
	switch len(ps) {
	case 1:
		return ps[0], nil
	case 0:
		return Person{}, c.fail("%s manquant (aucune personne de rôle %s)", who, role)
	}
	return Person{}, c.fail("%d %s (rôle %s) au lieu d'un", len(ps), whos, role)
}

func (c *checker) naissance(a Act, b *xBulletin) error {
	child, err := c.one(a, "titulaire", "enfant", "enfants")
	if err != nil {
		return err
	}
	const of = "de l'enfant"
	born := strings.TrimSpace(child.BirthDate)
	if born == "" {
		born = b.DateEvenement
	} else if b.DateEvenement != "" && born != b.DateEvenement {
		if _, err := c.date(born, "date de naissance "+of, true); err != nil {
			return err
		}
		return c.fail("date de naissance %s (%s) différente de la date de l'événement (%s)", of, born, b.DateEvenement)
	}
	id, err := c.identity(child, of, born)
	if err != nil {
		return err
	}
	n := &xNaissance{Enfant: id}
	parents := withRoles(a, "pere", "mere")
	if len(parents) > 2 {
		return c.fail("%d parents (rôles pere ou mere), deux au plus", len(parents))
	}
	for i, p := range parents {
		word := map[string]string{"pere": "père", "mere": "mère"}[p.Role]
		of := fmt.Sprintf("du parent n° %d (%s)", i+1, word)
		x := xParent{Qualite: p.Role}
		if x.Nom, err = c.text(p.Surname, "nom "+of, true); err != nil {
			return err
		}
		if x.Prenoms, err = c.givenNames(p.GivenNames, of); err != nil {
			return err
		}
		if n.Parents == nil {
			n.Parents = &xParents{}
		}
		n.Parents.Parent = append(n.Parents.Parent, x)
	}
	b.Naissance = n
	return nil
}

func (c *checker) deces(a Act, b *xBulletin) error {
	d, err := c.one(a, "defunt", "défunt", "défunts")
	if err != nil {
		return err
	}
	const of = "du défunt"
	id, err := c.identity(d, of, d.BirthDate)
	if err != nil {
		return err
	}
	death, err := c.date(a.EventDate, "date du décès", true)
	if err != nil {
		return err
	}
	b.Deces = &xDeces{Defunt: xDefunt{xIdentite: id, DateDeces: death}}
	return nil
}

func (c *checker) mariage(a Act, b *xBulletin) error {
	spouses := withRoles(a, "epoux", "epouse")
	switch len(spouses) {
	case 2:
	case 0:
		return c.fail("aucun conjoint (rôles epoux ou epouse) au lieu de deux")
	case 1:
		return c.fail("un seul conjoint (rôles epoux ou epouse) au lieu de deux")
	default:
		return c.fail("%d conjoints (rôles epoux ou epouse) au lieu de deux", len(spouses))
	}
	m := &xMariage{}
	for i, p := range spouses {
		of := fmt.Sprintf("du %s conjoint (%s)", [2]string{"premier", "second"}[i], map[string]string{"epoux": "époux", "epouse": "épouse"}[p.Role])
		id, err := c.identity(p, of, p.BirthDate)
		if err != nil {
			return err
		}
		m.Conjoints = append(m.Conjoints, xConjoint{Qualite: p.Role, xIdentite: id})
	}
	b.Mariage = m
	return nil
}

func (c *checker) sansVie(a Act, b *xBulletin) error {
	child, err := c.one(a, "defunt", "enfant", "enfants")
	if err != nil {
		return err
	}
	const of = "de l'enfant"
	if b.DateEvenement == "" {
		// The delivery: the event date, or else the child's birth date.
		if b.DateEvenement, err = c.date(child.BirthDate, "date de l'accouchement (date de l'événement)", true); err != nil {
			return err
		}
	}
	e := xEnfantSansVie{}
	if e.Nom, err = c.text(child.Surname, "nom "+of, false); err != nil {
		return err
	}
	if len(child.GivenNames) > 0 {
		p, err := c.givenNames(child.GivenNames, of)
		if err != nil {
			return err
		}
		e.Prenoms = &p
	}
	if e.Sexe, err = c.sex(child.Sex, of, false); err != nil {
		return err
	}
	b.DecesSansVie = &xDecesSansVie{Enfant: e}
	return nil
}
