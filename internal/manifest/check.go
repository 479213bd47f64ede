package manifest

import (
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	// Time zones of the overseas communes must load on hosts without
	// /usr/share/zoneinfo (distroless images, Windows clients running
	// upload --check).
	_ "time/tzdata"

	"github.com/etatcivil/etatcivil/internal/model"
)

// Checker applies the rules JSON Schema cannot express. Its zero value
// checks file names, duplicates, dates and persons, but not communes.
type Checker struct {
	// Lookup finds a code in the COG snapshot. Nil skips the commune
	// checks.
	Lookup func(code string) (model.Commune, bool)
	// Member reports whether the commune, or one of its COG ancestors, is
	// a member of the manifest's hub. Nil skips the check (local --check).
	Member func(code string) bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Check applies every rule JSON Schema cannot express, in manifest order,
// and sets Problem on each failing entry that has none yet:
//   - file name with a path, "..", a control or forbidden character, a
//     leading dot or space, over 255 bytes, not UTF-8: file_name_invalid;
//   - the same file name again: the later entries get file_duplicate (the
//     first keeps its own outcome);
//   - commune not in the COG: commune_invalid; not among the hub's
//     communes: commune_not_member;
//   - dates that are not calendar dates, an act_date missing, in another
//     year than the register or after today in the commune's time zone, an
//     event_date or a birth_date after act_date: date_invalid;
//   - persons that do not fit the kind of act, sans_vie on another kind
//     than deces: persons_invalid;
//   - replaces without revision_reason or the reverse, or revision_reason
//     retimestamp: manifest_invalid (the schema already refuses these in a
//     parsed manifest; Check covers entries built otherwise).
//
// Each message names the field at fault by its JSON pointer.
func (c Checker) Check(m *Manifest) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	at := now()
	firstByFile := make(map[string]int, len(m.Acts))
	for i := range m.Acts {
		e := &m.Acts[i]
		// Every entry takes part in duplicate detection, even one already
		// rejected: its name is taken all the same.
		first, dup := firstByFile[e.File]
		if !dup && e.File != "" {
			firstByFile[e.File] = i
		}
		if e.Problem != nil {
			continue
		}
		if msg := fileNameProblem(e.File); msg != "" {
			e.reject(model.ReasonFileNameInvalid, fmt.Sprintf("%s/file : %s", e.Pointer(), msg))
			continue
		}
		if dup {
			e.reject(model.ReasonFileDuplicate, fmt.Sprintf("%s/file : « %s » figure déjà à l'entrée /acts/%d.", e.Pointer(), clip(e.File), first))
			continue
		}
		if r, msg := c.communeProblem(m.Hub, e); msg != "" {
			e.reject(r, fmt.Sprintf("%s/commune : %s", e.Pointer(), msg))
			continue
		}
		if msg := dateProblem(e, at); msg != "" {
			e.reject(model.ReasonDateInvalid, msg)
			continue
		}
		if msg := personsProblem(e); msg != "" {
			e.reject(model.ReasonPersonsInvalid, msg)
			continue
		}
		if msg := revisionProblem(e); msg != "" {
			e.reject(model.ReasonManifestInvalid, msg)
		}
	}
}

// maxFileName is the longest name (in bytes) common filesystems accept.
const maxFileName = 255

// fileNameProblem explains what is wrong with a file name, or returns "".
// Beyond the characters of INTERFACE.md, it refuses a trailing dot or
// space (Windows drops them, so two manifest names would be one file) and
// bidirectional-text controls (they make a name display as another).
func fileNameProblem(name string) string {
	switch {
	case name == "":
		return "nom de fichier vide."
	case !utf8.ValidString(name):
		return "le nom de fichier n'est pas de l'UTF-8 valide."
	case len(name) > maxFileName:
		return fmt.Sprintf("le nom fait %d octets, au plus %d sont admis.", len(name), maxFileName)
	case strings.Contains(name, ".."):
		return fmt.Sprintf("« %s » contient « .. ».", clip(name))
	case name[0] == '.' || name[0] == ' ':
		return fmt.Sprintf("« %s » commence par un point ou une espace.", clip(name))
	case strings.HasSuffix(name, ".") || strings.HasSuffix(name, " "):
		return fmt.Sprintf("« %s » finit par un point ou une espace.", clip(name))
	}
	for _, r := range name {
		switch {
		case r == '/' || r == '\\':
			return fmt.Sprintf("« %s » contient un chemin (« %c ») : indiquez le nom du fichier seul.", clip(name), r)
		case strings.ContainsRune(`:*?"<>|`, r):
			return fmt.Sprintf("« %s » contient le caractère interdit « %c ».", clip(name), r)
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r):
			return fmt.Sprintf("« %s » contient un caractère de contrôle (U+%04X).", clip(name), r)
		}
	}
	return ""
}

// communeProblem checks the commune against the COG and the hub.
func (c Checker) communeProblem(hub string, e *Entry) (model.Reason, string) {
	if c.Lookup == nil {
		return "", ""
	}
	com, ok := c.Lookup(e.Commune)
	if !ok {
		return model.ReasonCommuneInvalid, fmt.Sprintf("« %s » ne figure pas dans le Code officiel géographique.", clip(e.Commune))
	}
	if c.Member != nil && !c.Member(e.Commune) {
		return model.ReasonCommuneNotMember, fmt.Sprintf("« %s » (%s) n'est pas parmi les communes de l'opérateur « %s ».", e.Commune, com.Name, clip(hub))
	}
	return "", ""
}

const dateLayout = "2006-01-02"

// parseDate reads a YYYY-MM-DD calendar date; time.Parse refuses
// 2021-02-30 and 2021-13-01.
func parseDate(s string) (time.Time, bool) {
	if len(s) != len(dateLayout) {
		return time.Time{}, false
	}
	t, err := time.Parse(dateLayout, s)
	return t, err == nil
}

// dateProblem checks the dates of e; today is taken in the commune's time
// zone from at.
func dateProblem(e *Entry, at time.Time) string {
	p := e.Pointer()
	if e.ActDate == "" {
		return p + "/act_date : la date de l'acte est obligatoire."
	}
	act, ok := parseDate(e.ActDate)
	if !ok {
		return fmt.Sprintf("%s/act_date : « %s » n'est pas une date du calendrier (AAAA-MM-JJ).", p, clip(e.ActDate))
	}
	if act.Year() != e.Year {
		return fmt.Sprintf("%s/act_date : la date de l'acte (%s) n'est pas dans l'année du registre (%d).", p, e.ActDate, e.Year)
	}
	loc := Location(e.Commune)
	today := at.In(loc).Format(dateLayout)
	if e.ActDate > today { // same layout, so text order is date order
		return fmt.Sprintf("%s/act_date : la date de l'acte (%s) est postérieure à aujourd'hui (%s, heure de %s).", p, e.ActDate, today, loc)
	}
	if e.EventDate != "" {
		if _, ok := parseDate(e.EventDate); !ok {
			return fmt.Sprintf("%s/event_date : « %s » n'est pas une date du calendrier (AAAA-MM-JJ).", p, clip(e.EventDate))
		}
		if e.EventDate > e.ActDate {
			return fmt.Sprintf("%s/event_date : la date de l'événement (%s) est postérieure à la date de l'acte (%s).", p, e.EventDate, e.ActDate)
		}
	}
	for j, per := range e.Persons {
		if per.BirthDate == "" {
			continue
		}
		if _, ok := parseDate(per.BirthDate); !ok {
			return fmt.Sprintf("%s/persons/%d/birth_date : « %s » n'est pas une date du calendrier (AAAA-MM-JJ).", p, j, clip(per.BirthDate))
		}
		if per.BirthDate > e.ActDate {
			return fmt.Sprintf("%s/persons/%d/birth_date : la date de naissance (%s) est postérieure à la date de l'acte (%s).", p, j, per.BirthDate, e.ActDate)
		}
	}
	return ""
}

// zoneNames maps the 3-character prefix of overseas commune codes to their
// time zone. Every other code (metropolitan France, Corsica) is
// Europe/Paris. French Polynesia (987) spans three zones; Tahiti's, where
// most of its communes are, stands for all of them.
var zoneNames = map[string]string{
	"971": "America/Guadeloupe",
	"972": "America/Martinique",
	"973": "America/Cayenne",
	"974": "Indian/Reunion",
	"975": "America/Miquelon",
	"976": "Indian/Mayotte",
	"977": "America/St_Barthelemy",
	"978": "America/Marigot",
	"986": "Pacific/Wallis",
	"987": "Pacific/Tahiti",
	"988": "Pacific/Noumea",
}

// zones loads every zone once. With time/tzdata embedded the names always
// load; a failure is a programming error, caught by the tests.
var zones = sync.OnceValue(func() map[string]*time.Location {
	out := make(map[string]*time.Location, len(zoneNames)+1)
	for prefix, name := range zoneNames {
		loc, err := time.LoadLocation(name)
		if err != nil {
			panic(fmt.Sprintf("manifest: fuseau %s : %v", name, err))
		}
		out[prefix] = loc
	}
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(fmt.Sprintf("manifest: fuseau Europe/Paris : %v", err))
	}
	out[""] = paris
	return out
})

// Location is the time zone of a commune, from its INSEE code: the
// overseas departments and collectivities have their own, every other
// code is Europe/Paris. "Today" for an act_date is today in that zone.
func Location(commune string) *time.Location {
	z := zones()
	if len(commune) >= 3 {
		if loc, ok := z[commune[:3]]; ok {
			return loc
		}
	}
	return z[""]
}

// personsProblem checks the persons against the kind of act. Roles are
// not tied to sex; roles the rules do not mention (declarant, temoin…)
// are allowed on any kind.
func personsProblem(e *Entry) string {
	p := e.Pointer()
	if e.SansVie && e.Kind != model.KindDeces {
		return fmt.Sprintf("%s/sans_vie : un enfant sans vie s'inscrit au registre des décès (kind « deces »), non « %s ».", p, e.Kind)
	}
	n := map[model.Role]int{}
	for _, per := range e.Persons {
		n[per.Role]++
	}
	switch e.Kind {
	case model.KindMariage:
		if s := n[model.RoleEpoux] + n[model.RoleEpouse]; s != 2 {
			return fmt.Sprintf("%s/persons : un mariage compte exactement deux époux (rôles epoux ou epouse, dans toute combinaison), %d indiqué(s).", p, s)
		}
	case model.KindNaissance:
		if s := n[model.RolePere] + n[model.RoleMere]; s > 2 {
			return fmt.Sprintf("%s/persons : un acte de naissance compte au plus deux parents (rôles pere ou mere), %d indiqués.", p, s)
		}
		if n[model.RoleTitulaire] > 1 {
			return fmt.Sprintf("%s/persons : un acte de naissance compte au plus un titulaire, %d indiqués.", p, n[model.RoleTitulaire])
		}
	case model.KindDeces:
		if n[model.RoleDefunt] != 1 {
			return fmt.Sprintf("%s/persons : un acte de décès compte exactement un défunt (rôle defunt), %d indiqué(s).", p, n[model.RoleDefunt])
		}
	case model.KindReconnaissance:
		if n[model.RoleTitulaire] != 1 {
			return fmt.Sprintf("%s/persons : un acte de reconnaissance compte exactement un titulaire (l'enfant reconnu), %d indiqué(s).", p, n[model.RoleTitulaire])
		}
		if n[model.RoleAuteur] < 1 {
			return fmt.Sprintf("%s/persons : un acte de reconnaissance compte au moins un auteur de la reconnaissance (rôle auteur), aucun indiqué.", p)
		}
	}
	return ""
}

// revisionProblem checks that replaces and revision_reason go together
// and that the reason is one a manifest may give.
func revisionProblem(e *Entry) string {
	p := e.Pointer()
	switch {
	case e.RevisionReason == model.RevisionRetimestamp:
		return p + "/revision_reason : « retimestamp » est un motif réservé au système et ne peut pas figurer dans un manifeste."
	case e.Replaces != "" && e.RevisionReason == "":
		return p + "/revision_reason : champ obligatoire dès que « replaces » est indiqué."
	case e.Replaces == "" && e.RevisionReason != "":
		return p + "/replaces : champ obligatoire dès que « revision_reason » est indiqué (SHA-256 de la version remplacée)."
	}
	return ""
}
