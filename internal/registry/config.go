// Package registry describes the central registries etatcivil transmits
// archived acts to (ETATCIVIL_REGISTRIES_FILE): how to reach each, which
// acts go there (routing rules), when, and how hard to try. A bad file is
// refused whole, with the line of each problem named.
package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/schemas"
)

// Connector names how messages are built and sent.
type Connector string

// The connectors.
const (
	ConnectorINSEE    Connector = "insee"    // data-only lots, courant acts, per cadence
	ConnectorArchives Connector = "archives" // SEDA 2.3 transfers, one package per register
	ConnectorHTTP     Connector = "http"     // generic JSON, one message per act version
)

// Auth is how etatcivil authenticates to a registry.
type Auth struct {
	BearerTokenFile string `yaml:"bearer_token_file" json:"bearer_token_file,omitempty"`
	ClientCert      string `yaml:"client_cert" json:"client_cert,omitempty"`
	ClientKey       string `yaml:"client_key" json:"client_key,omitempty"`
	CAFile          string `yaml:"ca_file" json:"ca_file,omitempty"`
}

// Route says which archived act versions go to a registry. An empty list
// matches everything.
type Route struct {
	Kinds       []model.Kind `yaml:"kinds" json:"kinds,omitempty"`
	SansVie     *bool        `yaml:"sans_vie" json:"sans_vie,omitempty"`
	Communes    []string     `yaml:"communes" json:"communes,omitempty"`
	Flows       []model.Flow `yaml:"flows" json:"flows,omitempty"`
	MinAgeYears *int         `yaml:"min_age_years" json:"min_age_years,omitempty"`
	MaxAgeYears *int         `yaml:"max_age_years" json:"max_age_years,omitempty"`
	Versions    string       `yaml:"versions" json:"versions,omitempty"` // "first" (default) or "all"
}

// Retry is a registry's retry policy.
type Retry struct {
	InitialBackoff Duration `yaml:"initial_backoff" json:"initial_backoff"`
	MaxBackoff     Duration `yaml:"max_backoff" json:"max_backoff"`
	MaxAttempts    int      `yaml:"max_attempts" json:"max_attempts"`
}

// Registry is one configured registry.
type Registry struct {
	ID          string    `yaml:"id" json:"id"`
	Connector   Connector `yaml:"connector" json:"connector"`
	Endpoint    string    `yaml:"endpoint" json:"endpoint"`
	Auth        Auth      `yaml:"auth" json:"auth"`
	Route       Route     `yaml:"route" json:"route"`
	Cadence     string    `yaml:"cadence" json:"cadence"`
	AckDeadline Duration  `yaml:"ack_deadline" json:"ack_deadline"`
	Retry       Retry     `yaml:"retry" json:"retry"`
}

// Config is the whole registries file.
type Config struct {
	Registries []Registry `yaml:"registries" json:"registries"`
}

// Duration is a time.Duration written as Go writes one ("30s", "15m").
type Duration struct{ time.Duration }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("durée %q invalide", n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Defaults fill what a registry entry leaves out.
var Defaults = Registry{
	Cadence:     "immediate",
	AckDeadline: Duration{24 * time.Hour},
	Retry:       Retry{InitialBackoff: Duration{time.Minute}, MaxBackoff: Duration{6 * time.Hour}, MaxAttempts: 50},
	Route:       Route{Versions: "first"},
}

// Problem is one thing wrong in a registries file, with its line.
type Problem struct {
	Line   int    // 1-based; 0 when unknown
	Path   string // JSON pointer into the document
	Detail string // French
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("ligne %d (%s) : %s", p.Line, p.Path, p.Detail)
	}
	return fmt.Sprintf("%s : %s", p.Path, p.Detail)
}

// Error lists every problem of a refused file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fichier des registres %s refusé :", e.File)
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

func compiled() (*jsonschema.Schema, error) {
	schemaOnce.Do(func() {
		raw, err := schemas.FS.ReadFile("registries.schema.json")
		if err != nil {
			schemaErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			schemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		const url = "https://github.com/etatcivil/etatcivil/schemas/registries.schema.json"
		if err := c.AddResource(url, doc); err != nil {
			schemaErr = err
			return
		}
		schema, schemaErr = c.Compile(url)
	})
	return schema, schemaErr
}

// Load reads and checks a registries file (YAML). ${NAME} in it is
// replaced by the environment variable NAME (secrets stay out of the file).
func Load(path string) (*Config, error) {
	return LoadEnv(path, os.LookupEnv)
}

// LoadEnv is Load with its own environment.
func LoadEnv(path string, lookup func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fichier des registres: %w", err)
	}
	var missing []Problem
	for i, line := range strings.Split(string(data), "\n") {
		os.Expand(line, func(k string) string {
			if _, ok := lookup(k); !ok {
				missing = append(missing, Problem{Line: i + 1, Path: "$" + k, Detail: fmt.Sprintf("variable d'environnement %s non définie", k)})
			}
			return ""
		})
	}
	if len(missing) > 0 {
		return nil, &Error{File: path, Problems: missing}
	}
	expanded := os.Expand(string(data), func(k string) string { v, _ := lookup(k); return v })
	return Parse(path, []byte(expanded))
}

// Parse checks a registries file: YAML syntax, the JSON Schema, then the
// rules a schema cannot say (unique ids, readable credential files,
// coherent ages). Every problem is reported with its line.
func Parse(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{File: name, Problems: []Problem{{Line: yamlLine(err), Path: "/", Detail: "YAML illisible : " + err.Error()}}}
	}
	if len(root.Content) == 0 {
		return nil, &Error{File: name, Problems: []Problem{{Line: 1, Path: "/", Detail: "fichier vide"}}}
	}
	var generic any
	if err := root.Content[0].Decode(&generic); err != nil {
		return nil, &Error{File: name, Problems: []Problem{{Line: root.Content[0].Line, Path: "/", Detail: err.Error()}}}
	}
	sch, err := compiled()
	if err != nil {
		return nil, fmt.Errorf("schéma des registres: %w", err)
	}
	if err := sch.Validate(jsonCompatible(generic)); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return nil, err
		}
		e := &Error{File: name}
		for _, leaf := range leaves(ve) {
			ptr := "/" + strings.Join(leaf.InstanceLocation, "/")
			e.Problems = append(e.Problems, Problem{Line: lineOf(root.Content[0], leaf.InstanceLocation), Path: ptr, Detail: leaf.Error()})
		}
		return nil, e
	}
	var c Config
	if err := root.Content[0].Decode(&c); err != nil {
		return nil, &Error{File: name, Problems: []Problem{{Line: yamlLine(err), Path: "/", Detail: err.Error()}}}
	}
	e := &Error{File: name}
	seen := map[string]bool{}
	for i := range c.Registries {
		r := &c.Registries[i]
		at := func(field ...string) int {
			return lineOf(root.Content[0], append([]string{"registries", strconv.Itoa(i)}, field...))
		}
		if seen[r.ID] {
			e.Problems = append(e.Problems, Problem{Line: at("id"), Path: fmt.Sprintf("/registries/%d/id", i), Detail: fmt.Sprintf("identifiant %q en double", r.ID)})
		}
		seen[r.ID] = true
		applyDefaults(r)
		if r.Route.MinAgeYears != nil && r.Route.MaxAgeYears != nil && *r.Route.MinAgeYears > *r.Route.MaxAgeYears {
			e.Problems = append(e.Problems, Problem{Line: at("route"), Path: fmt.Sprintf("/registries/%d/route", i), Detail: "min_age_years dépasse max_age_years"})
		}
		if r.Retry.InitialBackoff.Duration > r.Retry.MaxBackoff.Duration {
			e.Problems = append(e.Problems, Problem{Line: at("retry"), Path: fmt.Sprintf("/registries/%d/retry", i), Detail: "initial_backoff dépasse max_backoff"})
		}
		for _, f := range []struct{ field, path string }{{"bearer_token_file", r.Auth.BearerTokenFile}, {"client_cert", r.Auth.ClientCert},
			{"client_key", r.Auth.ClientKey}, {"ca_file", r.Auth.CAFile}} {
			if f.path == "" {
				continue
			}
			if _, err := os.Stat(f.path); err != nil {
				e.Problems = append(e.Problems, Problem{Line: at("auth", f.field), Path: fmt.Sprintf("/registries/%d/auth/%s", i, f.field),
					Detail: fmt.Sprintf("fichier %s illisible", f.path)})
			}
		}
		if r.Connector == ConnectorINSEE && !slices.Contains(r.Route.Flows, model.FlowCourant) && len(r.Route.Flows) != 0 {
			e.Problems = append(e.Problems, Problem{Line: at("route"), Path: fmt.Sprintf("/registries/%d/route", i), Detail: "le connecteur insee ne reçoit que des actes courants"})
		}
	}
	if len(e.Problems) > 0 {
		return nil, e
	}
	return &c, nil
}

func applyDefaults(r *Registry) {
	if r.Cadence == "" {
		r.Cadence = Defaults.Cadence
	}
	if r.AckDeadline.Duration == 0 {
		r.AckDeadline = Defaults.AckDeadline
	}
	if r.Retry.InitialBackoff.Duration == 0 {
		r.Retry.InitialBackoff = Defaults.Retry.InitialBackoff
	}
	if r.Retry.MaxBackoff.Duration == 0 {
		r.Retry.MaxBackoff = Defaults.Retry.MaxBackoff
	}
	if r.Retry.MaxAttempts == 0 {
		r.Retry.MaxAttempts = Defaults.Retry.MaxAttempts
	}
	if r.Route.Versions == "" {
		r.Route.Versions = Defaults.Route.Versions
	}
}

// leaves returns the innermost validation errors, which name the fields.
func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// lineOf finds the line of the node at path (map keys and list indexes),
// or of its deepest existing ancestor.
func lineOf(n *yaml.Node, path []string) int {
	line := n.Line
	for _, step := range path {
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == step {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case yaml.SequenceNode:
			i, err := strconv.Atoi(step)
			if err != nil || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		default:
			return line
		}
	}
	return line
}

// yamlLine pulls "line N" out of a YAML error.
func yamlLine(err error) int {
	s := err.Error()
	if i := strings.Index(s, "line "); i >= 0 {
		j := i + 5
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n, _ := strconv.Atoi(s[i+5 : j])
		return n
	}
	return 0
}

// jsonCompatible turns YAML's decoded values into what JSON would decode
// (map[string]any, float64-compatible numbers).
func jsonCompatible(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonCompatible(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = jsonCompatible(e)
		}
		return x
	case int:
		return json.Number(strconv.Itoa(x))
	case int64:
		return json.Number(strconv.FormatInt(x, 10))
	case uint64:
		return json.Number(strconv.FormatUint(x, 10))
	case float64:
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
	}
	return v
}
