package inseelot

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

var (
	lotIDPattern   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	communePattern = regexp.MustCompile(`^(?:[0-9]{5}|2[AB][0-9]{3})$`)
)

// XML writes the lot in our format (namespace urn:etatcivil:lot:1). Every
// act is checked as Check does, against the lot's nature; bulletins come
// in act-number order and numerosActes/sequence gives the first and last
// numbers and the count. The period is written as its first and last
// days (debut, fin, both included).
//
// The lot itself must be whole: a 64-hex-digit ID, a hub, a COG commune
// code, a known nature, a period exactly as Period gives it in the
// commune's time zone (From and To in that zone: a period read back from
// the database in UTC is refused rather than shifted by a day), an issue
// time and at least one act, each act number once. The first problem is
// returned as a French message.
func (l Lot) XML() ([]byte, error) {
	if !lotIDPattern.MatchString(l.ID) {
		return nil, fmt.Errorf("Lot : identifiant invalide « %s » (64 chiffres hexadécimaux minuscules attendus).", l.ID)
	}
	hub := strings.Join(strings.Fields(l.Hub), " ")
	if hub == "" || utf8.RuneCountInString(hub) > 100 {
		return nil, fmt.Errorf("Lot %s : émetteur (opérateur) manquant ou trop long (100 caractères au plus).", l.ID)
	}
	if !communePattern.MatchString(l.Commune) {
		return nil, fmt.Errorf("Lot %s : code commune invalide « %s » (code INSEE à 5 caractères : chiffres, ou 2A/2B et 3 chiffres).", l.ID, l.Commune)
	}
	if _, ok := titles[l.Nature]; !ok {
		return nil, fmt.Errorf("Lot %s : nature inconnue « %s » (naissance, deces, mariage ou deces_sans_vie attendu).", l.ID, l.Nature)
	}
	if l.From.IsZero() || l.To.IsZero() {
		return nil, fmt.Errorf("Lot %s : période manquante.", l.ID)
	}
	if from, to := Period(l.Nature, l.From, l.From.Location()); !from.Equal(l.From) || !to.Equal(l.To) {
		return nil, fmt.Errorf("Lot %s : la période [%s, %s) n'est pas une période de bulletins « %s » dans le fuseau %s (attendu [%s, %s)).",
			l.ID, l.From.Format(time.RFC3339), l.To.Format(time.RFC3339), l.Nature, l.From.Location(), from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if l.Issued.IsZero() {
		return nil, fmt.Errorf("Lot %s : date d'émission manquante.", l.ID)
	}
	if len(l.Acts) == 0 {
		return nil, fmt.Errorf("Lot %s : aucun bulletin.", l.ID)
	}

	acts := slices.Clone(l.Acts)
	slices.SortStableFunc(acts, func(a, b Act) int { return cmp.Compare(a.Number, b.Number) })
	doc := xLot{
		Identifiant:  l.ID,
		Emetteur:     hub,
		Commune:      l.Commune,
		Nature:       l.Nature,
		Debut:        l.From.Format(time.DateOnly),
		Fin:          l.To.Add(-time.Nanosecond).In(l.From.Location()).Format(time.DateOnly),
		DateEmission: l.Issued.Truncate(time.Second).Format(time.RFC3339),
		Premier:      acts[0].Number,
		Dernier:      acts[len(acts)-1].Number,
		Nombre:       len(acts),
	}
	for i, a := range acts {
		b, err := bulletinOf(a, l.Nature)
		if err != nil {
			return nil, err
		}
		if i > 0 && acts[i-1].Number == a.Number {
			return nil, fmt.Errorf("Lot %s : l'acte n° %d figure deux fois (%q et %q) ; un lot porte une seule version de chaque acte.", l.ID, a.Number, acts[i-1].ActID, a.ActID)
		}
		doc.Bulletins = append(doc.Bulletins, *b)
	}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("Lot %s : écriture XML impossible : %w", l.ID, err)
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

// The XML shapes, in schema order. Element names follow
// schemas/etatcivil-lot-1.xsd.

type xLot struct {
	XMLName      xml.Name    `xml:"urn:etatcivil:lot:1 lot"`
	Identifiant  string      `xml:"identifiant"`
	Emetteur     string      `xml:"emetteur"`
	Commune      string      `xml:"commune"`
	Nature       string      `xml:"nature"`
	Debut        string      `xml:"periode>debut"`
	Fin          string      `xml:"periode>fin"`
	DateEmission string      `xml:"dateEmission"`
	Premier      int         `xml:"numerosActes>sequence>premier"`
	Dernier      int         `xml:"numerosActes>sequence>dernier"`
	Nombre       int         `xml:"numerosActes>sequence>nombre"`
	Bulletins    []xBulletin `xml:"bulletins>bulletin"`
}

type xBulletin struct {
	NumeroActe    int            `xml:"numeroActe"`
	VersionActe   int            `xml:"versionActe"`
	DateActe      string         `xml:"dateActe"`
	Naissance     *xNaissance    `xml:"naissance,omitempty"`
	Deces         *xDeces        `xml:"deces,omitempty"`
	Mariage       *xMariage      `xml:"mariage,omitempty"`
	DecesSansVie  *xDecesSansVie `xml:"decesSansVie,omitempty"`
	DateEvenement string         `xml:"dateEvenement,omitempty"`
}

type xPrenoms struct {
	Prenom []string `xml:"prenom"`
}

// xIdentite is a fully described person: enfant né, défunt, conjoint.
type xIdentite struct {
	Nom           string   `xml:"nom"`
	Prenoms       xPrenoms `xml:"prenoms"`
	Sexe          string   `xml:"sexe"`
	DateNaissance string   `xml:"dateNaissance"`
	LieuNaissance string   `xml:"lieuNaissance"`
}

type xNaissance struct {
	Enfant  xIdentite `xml:"enfant"`
	Parents *xParents `xml:"parents,omitempty"` // absent when no parent is known
}

type xParents struct {
	Parent []xParent `xml:"parent"`
}

type xParent struct {
	Qualite string   `xml:"qualite,attr"`
	Nom     string   `xml:"nom"`
	Prenoms xPrenoms `xml:"prenoms"`
}

type xDeces struct {
	Defunt xDefunt `xml:"defunt"`
}

type xDefunt struct {
	xIdentite
	DateDeces string `xml:"dateDeces"`
}

type xMariage struct {
	Conjoints []xConjoint `xml:"epoux>conjoint"`
}

type xConjoint struct {
	Qualite string `xml:"qualite,attr"`
	xIdentite
}

type xDecesSansVie struct {
	Enfant xEnfantSansVie `xml:"enfant"`
}

type xEnfantSansVie struct {
	Nom     string    `xml:"nom,omitempty"`
	Prenoms *xPrenoms `xml:"prenoms,omitempty"`
	Sexe    string    `xml:"sexe,omitempty"`
}
