package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/etatcivil/etatcivil/schemas"
)

// schemaFile and schemaURL name the manifest schema: its file in package
// schemas and the $id it declares.
const (
	schemaFile = "manifest.schema.json"
	schemaURL  = "https://github.com/etatcivil/etatcivil/schemas/manifest.schema.json"
)

// compiled holds the two schemas the parser uses: the whole manifest (used
// for the top level only, with acts emptied) and one entry, #/$defs/act.
type compiled struct {
	root, act *jsonschema.Schema
}

// loadSchemas compiles the embedded schema once. Formats are annotations
// only (no AssertFormat): "format": "date" documents the field, while an
// impossible calendar date is date_invalid, found by Check, not
// manifest_invalid.
var loadSchemas = sync.OnceValues(func() (compiled, error) {
	data, err := schemas.FS.ReadFile(schemaFile)
	if err != nil {
		return compiled{}, fmt.Errorf("manifest: lecture du schéma %s : %w", schemaFile, err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(data)))
	if err != nil {
		return compiled{}, fmt.Errorf("manifest: schéma %s illisible : %w", schemaFile, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(schemaURL, doc); err != nil {
		return compiled{}, fmt.Errorf("manifest: ajout du schéma : %w", err)
	}
	var s compiled
	if s.root, err = c.Compile(schemaURL); err != nil {
		return compiled{}, fmt.Errorf("manifest: compilation du schéma : %w", err)
	}
	if s.act, err = c.Compile(schemaURL + "#/$defs/act"); err != nil {
		return compiled{}, fmt.Errorf("manifest: compilation de #/$defs/act : %w", err)
	}
	return s, nil
})

// schemaProblem is one leaf failure of a validation, in French, with the
// JSON pointer of the value at fault.
type schemaProblem struct {
	Pointer string
	Text    string
}

func (p schemaProblem) String() string { return p.Pointer + " : " + p.Text }

// maxProblems bounds how many failures one message lists.
const maxProblems = 5

// joinProblems renders problems for a message, at most maxProblems of them.
func joinProblems(ps []schemaProblem) string {
	var parts []string
	for i, p := range ps {
		if i == maxProblems {
			parts = append(parts, fmt.Sprintf("et %d autre(s) erreur(s)", len(ps)-maxProblems))
			break
		}
		parts = append(parts, p.String())
	}
	return strings.Join(parts, " ; ") + "."
}

// validate checks v against sch. prefix is the JSON pointer of v in the
// manifest (e.g. "/acts/3"). It returns the leaf failures sorted by pointer,
// or an error if validation itself could not run.
func validate(sch *jsonschema.Schema, v any, prefix string) ([]schemaProblem, error) {
	err := sch.Validate(v)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, fmt.Errorf("manifest: validation : %w", err)
	}
	var out []schemaProblem
	collect(ve, prefix, &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pointer < out[j].Pointer })
	return out, nil
}

// collect walks the error tree down to its leaves and translates them.
func collect(ve *jsonschema.ValidationError, prefix string, out *[]schemaProblem) {
	if len(ve.Causes) > 0 {
		for _, c := range ve.Causes {
			collect(c, prefix, out)
		}
		return
	}
	ptr := prefix + pointer(ve.InstanceLocation)
	field := ""
	if n := len(ve.InstanceLocation); n > 0 {
		field = ve.InstanceLocation[n-1]
	}
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			*out = append(*out, schemaProblem{ptr + "/" + escape(m), "champ obligatoire absent"})
		}
	case *kind.DependentRequired:
		for _, m := range k.Missing {
			*out = append(*out, schemaProblem{ptr + "/" + escape(m),
				fmt.Sprintf("champ obligatoire dès que « %s » est indiqué", k.Prop)})
		}
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			*out = append(*out, schemaProblem{ptr + "/" + escape(p), "champ inconnu"})
		}
	case *kind.Type:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = typeName(w)
		}
		*out = append(*out, schemaProblem{ptr, fmt.Sprintf("%s attendu, %s trouvé", strings.Join(want, " ou "), typeName(k.Got))})
	case *kind.Enum:
		text := fmt.Sprintf("valeur %s non autorisée (valeurs possibles : %s)", display(k.Got), displayList(k.Want))
		if k.Got == "retimestamp" {
			text = "« retimestamp » est un motif réservé au système et ne peut pas figurer dans un manifeste (valeurs possibles : " + displayList(k.Want) + ")"
		}
		*out = append(*out, schemaProblem{ptr, text})
	case *kind.Pattern:
		*out = append(*out, schemaProblem{ptr, fmt.Sprintf("valeur %s au format invalide (%s)", display(k.Got), formatHint(field))})
	case *kind.MinLength:
		if k.Want == 1 {
			*out = append(*out, schemaProblem{ptr, "valeur vide"})
		} else {
			*out = append(*out, schemaProblem{ptr, fmt.Sprintf("%d caractère(s), au moins %d attendu(s)", k.Got, k.Want)})
		}
	case *kind.MaxLength:
		*out = append(*out, schemaProblem{ptr, fmt.Sprintf("%d caractères, au plus %d attendus", k.Got, k.Want)})
	case *kind.Minimum:
		*out = append(*out, schemaProblem{ptr, fmt.Sprintf("valeur %s inférieure au minimum %s", k.Got.RatString(), k.Want.RatString())})
	case *kind.Maximum:
		*out = append(*out, schemaProblem{ptr, fmt.Sprintf("valeur %s supérieure au maximum %s", k.Got.RatString(), k.Want.RatString())})
	case *kind.MinItems:
		*out = append(*out, schemaProblem{ptr, fmt.Sprintf("%d élément(s), au moins %d attendu(s)", k.Got, k.Want)})
	default:
		// Keywords this schema does not use today: keep the library's
		// (English) text rather than lose the detail.
		*out = append(*out, schemaProblem{ptr, "valeur non conforme au schéma (" + ve.Error() + ")"})
	}
}

// formatHint explains the expected shape of a field checked by a pattern.
func formatHint(field string) string {
	switch field {
	case "sha256", "replaces":
		return "64 caractères hexadécimaux en minuscules attendus"
	case "commune":
		return "code INSEE de 5 caractères attendu : chiffres, ou 2A/2B suivi de 3 chiffres"
	case "act_date", "event_date", "birth_date":
		return "date AAAA-MM-JJ attendue"
	}
	return "format attendu non respecté"
}

// typeName names a JSON type in French.
func typeName(t string) string {
	switch t {
	case "string":
		return "chaîne"
	case "integer":
		return "entier"
	case "number":
		return "nombre"
	case "boolean":
		return "booléen (true ou false)"
	case "object":
		return "objet"
	case "array":
		return "tableau"
	case "null":
		return "null"
	}
	return t
}

// display shows a JSON value in a French message, strings in « ».
func display(v any) string {
	switch v := v.(type) {
	case string:
		return "« " + clip(v) + " »"
	case nil:
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return clip(string(b))
}

func displayList(vs []any) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ", ")
}

// clip shortens s for a message and escapes what would not print.
func clip(s string) string {
	const max = 80
	r := []rune(s)
	if len(r) > max {
		s = string(r[:max]) + "…"
	}
	// %q keeps printable letters (accents included) and escapes control
	// characters, so a message never carries them raw.
	q := fmt.Sprintf("%q", s)
	return q[1 : len(q)-1]
}

// pointer renders a location as a JSON pointer (RFC 6901).
func pointer(loc []string) string {
	var b strings.Builder
	for _, t := range loc {
		b.WriteByte('/')
		b.WriteString(escape(t))
	}
	return b.String()
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escape(token string) string { return pointerEscaper.Replace(token) }
