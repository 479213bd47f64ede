// Package manifest reads a batch manifest (manifest.json or manifest.csv,
// INTERFACE.md "Batch manifest") into entries, validates each entry against
// schemas/manifest.schema.json, and checks the rules a schema cannot
// express (Checker). A manifest that cannot be read at all is refused as a
// whole (ErrUnparseable); a bad entry only marks that entry (Entry.Problem),
// so one bad entry never refuses the batch.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/etatcivil/etatcivil/internal/model"
)

// ErrUnparseable is wrapped by every error that refuses a whole manifest:
// not JSON, not an object, no hub, acts not an array, a CSV without its
// header, a CSV that is not UTF-8… The wrapping error's text is French and
// says where (line, column, byte offset) the problem is.
var ErrUnparseable = errors.New("manifeste illisible")

// Formats of a manifest, as Manifest.Format holds them.
const (
	FormatJSON = "json"
	FormatCSV  = "csv"
)

// Person is one person named in an act's index data.
type Person struct {
	Role       model.Role `json:"role"`
	Surname    string     `json:"surname"`
	GivenNames []string   `json:"given_names"`
	Sex        string     `json:"sex,omitempty"`
	BirthDate  string     `json:"birth_date,omitempty"`
	BirthPlace string     `json:"birth_place,omitempty"`
}

// Entry is one act of a manifest: a file and its index data. The JSON tags
// are the manifest's field names.
type Entry struct {
	// Index is the entry's position in the manifest, 0-based.
	Index int `json:"-"`

	File           string               `json:"file"`
	Size           int64                `json:"size"`
	SHA256         string               `json:"sha256"`
	Commune        string               `json:"commune"`
	Kind           model.Kind           `json:"kind"`
	SansVie        bool                 `json:"sans_vie,omitempty"`
	Year           int                  `json:"year"`
	Number         int                  `json:"number"`
	ActDate        string               `json:"act_date"`
	EventDate      string               `json:"event_date,omitempty"`
	Flow           model.Flow           `json:"flow"`
	Persons        []Person             `json:"persons"`
	Replaces       string               `json:"replaces,omitempty"`
	RevisionReason model.RevisionReason `json:"revision_reason,omitempty"`

	// Problem is the first problem found by parsing or by Check; nil while
	// the entry is fine so far.
	Problem *model.Rejection `json:"-"`
	// Notes are non-fatal French remarks, such as the left-padding of a
	// 4-digit commune code read from a CSV. Message appends them.
	Notes []string `json:"-"`
}

// Manifest is a parsed manifest: the hub it claims and its entries in
// manifest order.
type Manifest struct {
	Hub    string
	Acts   []Entry
	Format string // FormatJSON or FormatCSV
}

// Pointer is the JSON pointer of the entry in the manifest, e.g. "/acts/3".
// A CSV entry is numbered the same way, so messages read alike.
func (e *Entry) Pointer() string { return fmt.Sprintf("/acts/%d", e.Index) }

// Key returns the identity of the act (INTERFACE.md, "Act identity").
func (e *Entry) Key() (commune string, year int, kind model.Kind, number int) {
	return e.Commune, e.Year, e.Kind, e.Number
}

// Message is the French text to show for the entry: its problem's message,
// if any, followed by its notes.
func (e *Entry) Message() string {
	var parts []string
	if e.Problem != nil {
		parts = append(parts, e.Problem.Message)
	}
	parts = append(parts, e.Notes...)
	return strings.Join(parts, " ")
}

// reject sets the entry's problem unless it already has one: the first
// problem found is the one reported.
func (e *Entry) reject(r model.Reason, detail string) {
	if e.Problem == nil {
		e.Problem = model.Reject(r, detail)
	}
}

// indexDigestVersion prefixes the canonical encoding; change it if the
// encoding ever changes, since digests are compared with stored ones.
const indexDigestVersion = "etatcivil-index-v1\n"

// canonicalIndex fixes the fields and their order for IndexDigest.
type canonicalIndex struct {
	Commune   string            `json:"commune"`
	Kind      model.Kind        `json:"kind"`
	SansVie   bool              `json:"sans_vie"`
	Year      int               `json:"year"`
	Number    int               `json:"number"`
	ActDate   string            `json:"act_date"`
	EventDate string            `json:"event_date"`
	Flow      model.Flow        `json:"flow"`
	Persons   []canonicalPerson `json:"persons"`
}

type canonicalPerson struct {
	Role       model.Role `json:"role"`
	Surname    string     `json:"surname"`
	GivenNames []string   `json:"given_names"`
	Sex        string     `json:"sex"`
	BirthDate  string     `json:"birth_date"`
	BirthPlace string     `json:"birth_place"`
}

// IndexDigest is the SHA-256 (hex) of a canonical encoding of the entry's
// index data: commune, kind, sans_vie, year, number, act_date, event_date,
// flow and the persons in order. Two entries with the same file and the
// same digest carry the same index data ("no change"); a different digest
// is an index_conflict unless the revision says correction_index.
// File, size, sha256, replaces and revision_reason are not index data.
// An absent flow counts as reprise, absent given names as none; strings are
// compared byte for byte (no case or Unicode folding).
func (e *Entry) IndexDigest() string {
	ci := canonicalIndex{
		Commune: e.Commune, Kind: e.Kind, SansVie: e.SansVie, Year: e.Year, Number: e.Number,
		ActDate: e.ActDate, EventDate: e.EventDate, Flow: e.Flow,
		Persons: make([]canonicalPerson, len(e.Persons)),
	}
	if ci.Flow == "" {
		ci.Flow = model.FlowReprise
	}
	for i, p := range e.Persons {
		gn := p.GivenNames
		if gn == nil {
			gn = []string{}
		}
		ci.Persons[i] = canonicalPerson{p.Role, p.Surname, gn, p.Sex, p.BirthDate, p.BirthPlace}
	}
	// Marshalling a struct of strings, ints and bools cannot fail; field
	// order is the struct's and escaping is deterministic.
	b, _ := json.Marshal(ci)
	h := sha256.New()
	h.Write([]byte(indexDigestVersion))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Parse reads a manifest. The format comes from name ("manifest.json",
// "manifest.csv", or any name ending in .json or .csv); for another name it
// is sniffed: JSON if the first non-blank character is '{' or '[', CSV
// otherwise. A CSV read this way takes its hub from its optional hub
// column (see ParseCSV).
//
// A manifest that cannot be read at all returns an error wrapping
// ErrUnparseable. Entries that are read but fail the entry schema are kept
// with Problem set to manifest_invalid and the JSON pointer in the message.
func Parse(name string, data []byte) (*Manifest, error) {
	switch strings.ToLower(path.Ext(name)) {
	case ".json":
		return parseJSON(data)
	case ".csv":
		return ParseCSV(data, "")
	}
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, utf8BOM), " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		return parseJSON(data)
	}
	return ParseCSV(data, "")
}

// parseError refuses a whole manifest. Its text is French only; the
// library error that caused it, if any, stays reachable with errors.As.
type parseError struct {
	msg   string
	cause error
}

func (e *parseError) Error() string { return ErrUnparseable.Error() + " : " + e.msg }

func (e *parseError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrUnparseable}
	}
	return []error{ErrUnparseable, e.cause}
}

// unparseable builds the whole-manifest refusal.
func unparseable(format string, args ...any) error {
	return &parseError{msg: fmt.Sprintf(format, args...)}
}

// unparseableCause is unparseable for a refusal caused by err.
func unparseableCause(err error, format string, args ...any) error {
	return &parseError{msg: fmt.Sprintf(format, args...), cause: err}
}

// position turns a byte offset into a 1-based line and column (columns
// count characters, not bytes, for the lines people see in an editor).
func position(data []byte, offset int) (line, col int) {
	if offset > len(data) {
		offset = len(data)
	}
	before := data[:offset]
	line = bytes.Count(before, []byte{'\n'}) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	col = utf8.RuneCount(before[start:]) + 1
	return line, col
}

// checkUTF8 refuses data that is not valid UTF-8, naming the first bad byte.
func checkUTF8(data []byte) error {
	if utf8.Valid(data) {
		return nil
	}
	off := 0
	for off < len(data) {
		r, size := utf8.DecodeRune(data[off:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		off += size
	}
	line, col := position(data, off)
	return unparseable("ligne %d, colonne %d (octet %d) : l'octet 0x%02X n'est pas de l'UTF-8 valide. "+
		"Le manifeste doit être encodé en UTF-8 (avec ou sans BOM) ; enregistrez-le de nouveau en choisissant « UTF-8 » (par exemple « CSV UTF-8 » dans le tableur)",
		line, col, off, data[off])
}

// parseJSON reads manifest.json.
func parseJSON(data []byte) (*Manifest, error) {
	s, err := loadSchemas()
	if err != nil {
		return nil, err
	}
	// RFC 8259 lets a parser ignore a BOM; offsets below are counted
	// without it.
	data = bytes.TrimPrefix(data, utf8BOM)
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, unparseable("le manifeste est vide")
	}
	if err := checkUTF8(data); err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, jsonError(data, err)
	}
	if top == nil {
		return nil, unparseable("le manifeste doit être un objet JSON { \"hub\": …, \"acts\": [ … ] }, et non null")
	}
	rawHub, ok := top["hub"]
	if !ok {
		return nil, unparseable("le champ « hub » (identifiant de l'opérateur) est absent")
	}
	var hub string
	if err := json.Unmarshal(rawHub, &hub); err != nil || hub == "" {
		return nil, unparseable("le champ « hub » doit être une chaîne non vide, et non %s", clip(string(rawHub)))
	}
	rawActs, ok := top["acts"]
	if !ok {
		return nil, unparseable("le champ « acts » (liste des actes) est absent")
	}
	var acts []json.RawMessage
	if err := json.Unmarshal(rawActs, &acts); err != nil || acts == nil {
		return nil, unparseable("le champ « acts » doit être un tableau JSON [ … ], et non %s", clip(string(rawActs)))
	}

	// The rest of the top level (unknown fields, an empty acts…) is the
	// schema's business; entries are validated one by one below so that
	// each failure stays with its entry.
	head := map[string]any{"acts": []any{}}
	for k, raw := range top {
		if k == "acts" {
			continue
		}
		v, err := decodeValue(raw)
		if err != nil {
			return nil, unparseableCause(err, "champ « %s » : valeur JSON illisible", clip(k))
		}
		head[k] = v
	}
	if len(acts) > 0 {
		head["acts"] = []any{map[string]any{}} // stands in for the entries, validated below
	}
	probs, err := validateHead(s, head)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, unparseable("%s", joinProblems(probs))
	}

	m := &Manifest{Hub: hub, Format: FormatJSON, Acts: make([]Entry, len(acts))}
	for i, raw := range acts {
		e := &m.Acts[i]
		e.Index = i
		v, err := decodeValue(raw)
		if err != nil {
			return nil, unparseableCause(err, "%s : valeur JSON illisible", e.Pointer())
		}
		if err := finishEntry(s, e, v, raw); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// validateHead validates the top level, ignoring failures inside the
// stand-in entry (the real entries are validated one by one).
func validateHead(s compiled, head map[string]any) ([]schemaProblem, error) {
	probs, err := validate(s.root, head, "")
	if err != nil {
		return nil, err
	}
	kept := probs[:0]
	for _, p := range probs {
		if !strings.HasPrefix(p.Pointer, "/acts/") {
			kept = append(kept, p)
		}
	}
	return kept, nil
}

// decodeValue decodes one JSON value the way the schema validator expects
// (numbers as json.Number, so no precision is lost).
func decodeValue(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("valeur JSON illisible : %w", err)
	}
	return v, nil
}

// finishEntry validates the entry's JSON value v (raw is its encoding) and
// fills e. An entry failing the schema keeps what could be read of it
// (its file name above all) and gets manifest_invalid.
func finishEntry(s compiled, e *Entry, v any, raw []byte) error {
	probs, err := validate(s.act, v, e.Pointer())
	if err != nil {
		return err
	}
	if len(probs) > 0 {
		e.reject(model.ReasonManifestInvalid, joinProblems(probs))
	}
	if _, isObject := v.(map[string]any); isObject {
		// On a type mismatch encoding/json skips that field and fills the
		// others, which is what an invalid entry needs; a valid one
		// cannot fail here.
		idx, problem, notes := e.Index, e.Problem, e.Notes
		if err := json.Unmarshal(raw, e); err != nil && len(probs) == 0 {
			// JSON Schema counts 2021.0 or 2.021e3 as integers, Go does
			// not: write them as plain integers and decode again.
			raw, err = json.Marshal(plainIntegers(v))
			if err == nil {
				err = json.Unmarshal(raw, e)
			}
			if err != nil {
				return fmt.Errorf("manifest: %s valide selon le schéma mais illisible : %w", e.Pointer(), err)
			}
		}
		e.Index, e.Problem, e.Notes = idx, problem, notes
	}
	if e.Flow == "" {
		e.Flow = model.FlowReprise
	}
	return nil
}

// plainIntegers rewrites, in place, the integral numbers of v as plain
// integers ("2021.0" becomes "2021").
func plainIntegers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = plainIntegers(x)
		}
	case []any:
		for i, x := range v {
			v[i] = plainIntegers(x)
		}
	case json.Number:
		if r, ok := new(big.Rat).SetString(string(v)); ok && r.IsInt() {
			return json.Number(r.Num().String())
		}
	}
	return v
}

// jsonError translates an encoding/json error into a French refusal with
// its position.
func jsonError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off := int(syn.Offset)
		if strings.Contains(syn.Error(), "end of JSON input") {
			line, col := position(data, len(data))
			return unparseableCause(err, "ligne %d, colonne %d : fin du fichier atteinte au milieu du JSON (manifeste tronqué ?)", line, col)
		}
		// Offset counts the bytes read, the culprit included.
		at := max(off-1, 0)
		line, col := position(data, at)
		r, _ := utf8.DecodeRune(data[at:])
		return unparseableCause(err, "ligne %d, colonne %d (octet %d) : JSON invalide, caractère « %s » inattendu", line, col, at, clip(string(r)))
	case errors.As(err, &typ):
		return unparseableCause(err, "le manifeste doit être un objet JSON { \"hub\": …, \"acts\": [ … ] }, et non un %s", jsonTypeFr(typ.Value))
	}
	return unparseableCause(err, "JSON invalide")
}

func jsonTypeFr(v string) string {
	switch v {
	case "array":
		return "tableau"
	case "string":
		return "texte"
	case "number":
		return "nombre"
	case "bool":
		return "booléen"
	}
	return v
}
