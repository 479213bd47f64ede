package manifest

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/etatcivil/etatcivil/internal/model"
)

// CSV layout of manifest.csv (INTERFACE.md): one row per person, the rows
// of one act consecutive and sharing its file (every row names its file).
// The other act columns of the second and later rows of an act may be left
// empty; if filled, they must repeat the first row. A row whose person columns are all empty names no
// person (an act without indexed persons is one such row).
//
// sans_vie, when present, is true/false, 1/0, oui/non or vrai/faux; an
// empty cell is false.
//
// given_names holds the given names separated by "|" ("Jeanne|Marie"):
// a space or a hyphen stays inside a name ("Jean Baptiste|Marie-Thérèse"
// is two names), since old registers write compound names both ways.
const givenNamesSep = "|"

// Columns of manifest.csv. hub and sans_vie are optional additions.
var (
	actColumns = []string{"file", "size", "sha256", "commune", "kind", "sans_vie", "year", "number",
		"act_date", "event_date", "flow", "replaces", "revision_reason"}
	personColumns   = []string{"role", "surname", "given_names", "sex", "birth_date", "birth_place"}
	requiredColumns = []string{"file", "size", "sha256", "commune", "kind", "year", "number", "act_date"}
	integerColumns  = map[string]bool{"size": true, "year": true, "number": true}
)

// ParseCSV reads manifest.csv. The separator is "," or ";", whichever the
// header line uses most; the text is UTF-8, with or without a BOM; anything
// else refuses the whole manifest (ErrUnparseable), as does a missing or
// unknown header column. hub is the manifest's hub unless the CSV has a
// hub column, which then wins (one value for the whole file). Each entry
// is turned into the JSON object manifest.json would hold and validated
// against the same schema, so both formats follow one set of rules.
// 4-digit commune codes (a spreadsheet dropped the leading zero) are
// left-padded with "0" and the entry gets a note saying so.
func ParseCSV(data []byte, hub string) (*Manifest, error) {
	s, err := loadSchemas()
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	if err := checkUTF8(data); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, unparseable("le manifeste est vide")
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = sniffSeparator(data)
	r.FieldsPerRecord = -1 // a row of the wrong width is its entry's problem, not the batch's
	r.ReuseRecord = true

	header, err := r.Read()
	if err != nil {
		return nil, csvError(err)
	}
	cols, err := readHeader(header, r.Comma)
	if err != nil {
		return nil, err
	}

	m := &Manifest{Hub: hub, Format: FormatCSV}
	hubFromColumn := ""
	var g *csvGroup
	flush := func() error {
		if g == nil {
			return nil
		}
		e := Entry{Index: len(m.Acts)}
		obj := g.object()
		e.Notes = g.notes
		// Problems of the rows themselves (width, disagreeing act
		// columns) come first: schema failures usually follow from them.
		for _, p := range g.problems {
			e.reject(model.ReasonManifestInvalid, p)
		}
		raw, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("manifest: %s : encodage : %w", e.Pointer(), err)
		}
		if err := finishEntry(s, &e, obj, raw); err != nil {
			return err
		}
		m.Acts = append(m.Acts, e)
		return nil
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := r.FieldPos(0)
		row := make(map[string]string, len(cols))
		for i, name := range cols {
			if i < len(rec) {
				row[name] = strings.TrimSpace(rec[i])
			}
		}
		if h := row["hub"]; h != "" {
			if hubFromColumn != "" && h != hubFromColumn {
				return nil, unparseable("ligne %d : colonne hub « %s » différente de « %s » sur une ligne précédente ; un manifeste ne concerne qu'un opérateur", line, clip(h), clip(hubFromColumn))
			}
			hubFromColumn = h
		}
		if g == nil || row["file"] != g.file {
			if err := flush(); err != nil {
				return nil, err
			}
			g = newGroup(len(m.Acts), line, row)
		} else {
			g.addRow(line, row)
		}
		if len(rec) != len(cols) {
			g.problems = append(g.problems, fmt.Sprintf("/acts/%d : ligne %d, %d colonne(s) au lieu des %d de l'en-tête.", g.index, line, len(rec), len(cols)))
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if hubFromColumn != "" {
		m.Hub = hubFromColumn
	}
	if len(m.Acts) == 0 {
		return nil, unparseable("le manifeste ne contient aucun acte (seulement l'en-tête)")
	}
	return m, nil
}

// sniffSeparator picks ';' or ',' from the header line.
func sniffSeparator(data []byte) rune {
	line := data
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		line = data[:i]
	}
	if bytes.Count(line, []byte{';'}) > bytes.Count(line, []byte{','}) {
		return ';'
	}
	return ','
}

// readHeader checks the header row and returns the column names in order.
func readHeader(header []string, sep rune) ([]string, error) {
	known := map[string]bool{"hub": true}
	for _, c := range actColumns {
		known[c] = true
	}
	for _, c := range personColumns {
		known[c] = true
	}
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if !known[name] {
			if i == 0 {
				return nil, unparseable("ligne 1 : en-tête absent ou illisible (première cellule « %s ») ; la première ligne doit nommer les colonnes, séparées par « %c » : %s",
					clip(h), sep, strings.Join(append(append([]string{}, actColumns...), personColumns...), string(sep)))
			}
			return nil, unparseable("ligne 1, colonne %d : colonne « %s » inconnue", i+1, clip(h))
		}
		if seen[name] {
			return nil, unparseable("ligne 1, colonne %d : colonne « %s » en double", i+1, name)
		}
		seen[name] = true
		cols[i] = name
	}
	for _, c := range requiredColumns {
		if !seen[c] {
			return nil, unparseable("ligne 1 : colonne obligatoire « %s » absente de l'en-tête", c)
		}
	}
	return cols, nil
}

// csvError translates an encoding/csv error into a French refusal.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		what := "ligne mal formée"
		switch {
		case errors.Is(pe.Err, csv.ErrBareQuote):
			what = "guillemet « \" » dans une cellule non entourée de guillemets (doublez-le et entourez la cellule de guillemets)"
		case errors.Is(pe.Err, csv.ErrQuote):
			what = "guillemet « \" » mal placé ou jamais refermé"
		}
		return unparseableCause(err, "ligne %d, colonne %d : %s", pe.Line, pe.Column, what)
	}
	return unparseableCause(err, "CSV illisible")
}

// csvGroup gathers the consecutive rows of one act.
type csvGroup struct {
	index     int
	file      string
	firstLine int
	act       map[string]string
	persons   []map[string]string
	problems  []string
	notes     []string
}

func newGroup(index, line int, row map[string]string) *csvGroup {
	g := &csvGroup{index: index, file: row["file"], firstLine: line, act: map[string]string{}}
	for _, c := range actColumns {
		g.act[c] = row[c]
	}
	g.addPerson(row)
	return g
}

// addRow adds a further row of the same act: its act columns must be empty
// or repeat the first row's.
func (g *csvGroup) addRow(line int, row map[string]string) {
	for _, c := range actColumns {
		if v := row[c]; v != "" && v != g.act[c] {
			g.problems = append(g.problems, fmt.Sprintf("/acts/%d/%s : ligne %d, « %s » diffère de « %s » donné ligne %d pour le même fichier.",
				g.index, c, line, clip(v), clip(g.act[c]), g.firstLine))
		}
	}
	g.addPerson(row)
}

func (g *csvGroup) addPerson(row map[string]string) {
	p := map[string]string{}
	empty := true
	for _, c := range personColumns {
		p[c] = row[c]
		if row[c] != "" {
			empty = false
		}
	}
	if !empty {
		g.persons = append(g.persons, p)
	}
}

// object builds the JSON object manifest.json would hold for this act.
// Empty cells are absent fields; a cell that is not of its column's type
// is passed as text, so that the schema reports it with its pointer.
func (g *csvGroup) object() map[string]any {
	obj := map[string]any{}
	for _, c := range actColumns {
		v := g.act[c]
		if v == "" {
			continue
		}
		switch {
		case integerColumns[c]:
			obj[c] = integerOrText(v)
		case c == "sans_vie":
			obj[c] = boolOrText(v)
		case c == "commune" && len(v) == 4 && isDigits(v):
			padded := "0" + v
			g.notes = append(g.notes, fmt.Sprintf("Code commune « %s » complété en « %s » (zéro initial probablement perdu par le tableur).", v, padded))
			obj[c] = padded
		default:
			obj[c] = v
		}
	}
	persons := make([]any, 0, len(g.persons))
	for _, p := range g.persons {
		po := map[string]any{}
		for _, c := range personColumns {
			v := p[c]
			switch {
			case c == "given_names":
				names := []any{}
				if v != "" {
					for _, n := range strings.Split(v, givenNamesSep) {
						names = append(names, strings.TrimSpace(n))
					}
				}
				po[c] = names
			case v != "":
				po[c] = v
			}
		}
		persons = append(persons, po)
	}
	obj["persons"] = persons
	return obj
}

func integerOrText(v string) any {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return json.Number(strconv.FormatInt(n, 10))
	}
	return v
}

func boolOrText(v string) any {
	switch strings.ToLower(v) {
	case "true", "1", "oui", "vrai":
		return true
	case "false", "0", "non", "faux":
		return false
	}
	return v
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
