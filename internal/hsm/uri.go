package hsm

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// URI is a parsed RFC 7512 PKCS#11 URI naming a private key, e.g.
//
//	pkcs11:token=etatcivil;object=seal-smica;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/etatcivil/pin.txt
//
// Path attributes: token (token label), serial (token serial number) or
// slot-id select the token (the first of serial, token, slot-id given is
// used); object (CKA_LABEL) and/or id (CKA_ID, percent-encoded bytes)
// select the key; type, if present, must be "private". The informational
// attributes manufacturer, model, library-manufacturer,
// library-description, library-version, slot-description and
// slot-manufacturer, and vendor attributes (x-…), are accepted and not
// matched.
//
// Query attributes: module-path (the PKCS#11 library) or module-name (its
// name, looked up in the system's PKCS#11 directories); pin-value or
// pin-source (a file holding the PIN: "file:/path", "file:///path" or a
// plain absolute path; trailing newlines are dropped); cert-path, an
// etatcivil extension: a PEM file holding the key's certificate and/or its
// chain.
type URI struct {
	// Token selection: exactly one is used, in this order.
	TokenSerial string
	TokenLabel  string
	SlotID      *int

	// Key selection: at least one.
	ObjectLabel string
	ID          []byte

	// ModulePath is the PKCS#11 library (resolved from module-name if
	// needed).
	ModulePath string

	// CertPath is the PEM file of the cert-path query attribute, if any.
	CertPath string

	pinValue  string
	pinSource string
	hasPIN    bool
}

// informational path attributes: accepted, not used to select.
var informational = map[string]bool{
	"manufacturer":         true,
	"model":                true,
	"library-manufacturer": true,
	"library-description":  true,
	"library-version":      true,
	"slot-description":     true,
	"slot-manufacturer":    true,
}

// ParseURI parses a PKCS#11 URI. Its errors wrap ErrInvalidURI and never
// contain the PIN.
func ParseURI(s string) (*URI, error) {
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return nil, fmt.Errorf("%w : l'URI doit commencer par « pkcs11: »", ErrInvalidURI)
	}
	if strings.Contains(rest, "#") {
		return nil, fmt.Errorf("%w : une URI PKCS#11 n'a pas de fragment (#)", ErrInvalidURI)
	}
	pathPart, queryPart, _ := strings.Cut(rest, "?")
	u := &URI{}
	seen := map[string]bool{}
	var modulePath, moduleName, typ string
	var hasType bool

	for _, attr := range splitNonEmpty(pathPart, ";") {
		name, raw, ok := strings.Cut(attr, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w : attribut de chemin mal formé (nom=valeur attendu)", ErrInvalidURI)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w : attribut « %s » répété", ErrInvalidURI, name)
		}
		seen[name] = true
		val, err := url.PathUnescape(raw)
		if err != nil {
			return nil, fmt.Errorf("%w : attribut « %s » : encodage %%XX invalide", ErrInvalidURI, name)
		}
		switch {
		case name == "token":
			u.TokenLabel = val
		case name == "serial":
			u.TokenSerial = val
		case name == "slot-id":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w : slot-id %q n'est pas un entier positif", ErrInvalidURI, val)
			}
			u.SlotID = &n
		case name == "object":
			u.ObjectLabel = val
		case name == "id":
			u.ID = []byte(val)
		case name == "type":
			typ, hasType = val, true
		case informational[name], strings.HasPrefix(name, "x-"):
		default:
			return nil, fmt.Errorf("%w : attribut de chemin inconnu « %s »", ErrInvalidURI, name)
		}
	}

	seen = map[string]bool{}
	for _, attr := range splitNonEmpty(queryPart, "&") {
		name, raw, ok := strings.Cut(attr, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w : attribut de requête mal formé (nom=valeur attendu)", ErrInvalidURI)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w : attribut « %s » répété", ErrInvalidURI, name)
		}
		seen[name] = true
		val, err := url.PathUnescape(raw)
		if err != nil {
			// Do not quote the value: it may be the PIN.
			return nil, fmt.Errorf("%w : attribut « %s » : encodage %%XX invalide", ErrInvalidURI, name)
		}
		switch {
		case name == "module-path":
			modulePath = val
		case name == "module-name":
			moduleName = val
		case name == "pin-value":
			u.pinValue, u.hasPIN = val, true
		case name == "pin-source":
			u.pinSource = val
		case name == "cert-path":
			u.CertPath = val
		case strings.HasPrefix(name, "x-"):
		default:
			return nil, fmt.Errorf("%w : attribut de requête inconnu « %s »", ErrInvalidURI, name)
		}
	}

	if hasType && typ != "private" {
		return nil, fmt.Errorf("%w : type=%s ; le cachet est une clé privée (type=private)", ErrInvalidURI, typ)
	}
	if u.TokenSerial == "" && u.TokenLabel == "" && u.SlotID == nil {
		return nil, fmt.Errorf("%w : jeton non précisé (token=, serial= ou slot-id=)", ErrInvalidURI)
	}
	if u.ObjectLabel == "" && len(u.ID) == 0 {
		return nil, fmt.Errorf("%w : clé non précisée (object= ou id=)", ErrInvalidURI)
	}
	if u.hasPIN && u.pinSource != "" {
		return nil, fmt.Errorf("%w : pin-value et pin-source sont exclusifs", ErrInvalidURI)
	}
	if !u.hasPIN && u.pinSource == "" {
		return nil, fmt.Errorf("%w : PIN non précisé (pin-source= ou pin-value=)", ErrInvalidURI)
	}
	switch {
	case modulePath != "" && moduleName != "":
		return nil, fmt.Errorf("%w : module-path et module-name sont exclusifs", ErrInvalidURI)
	case modulePath != "":
		if !filepath.IsAbs(modulePath) {
			return nil, fmt.Errorf("%w : module-path %q doit être un chemin absolu", ErrInvalidURI, modulePath)
		}
		u.ModulePath = filepath.Clean(modulePath)
	case moduleName != "":
		if strings.ContainsAny(moduleName, "/\\") {
			return nil, fmt.Errorf("%w : module-name %q est un nom, pas un chemin (voir module-path)", ErrInvalidURI, moduleName)
		}
		u.ModulePath = findModule(moduleName)
	default:
		return nil, fmt.Errorf("%w : module PKCS#11 non précisé (module-path=)", ErrInvalidURI)
	}
	return u, nil
}

func splitNonEmpty(s, sep string) []string {
	var out []string
	for _, p := range strings.Split(s, sep) {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// moduleDirs are where module-name is looked for.
var moduleDirs = []string{
	"/usr/lib/x86_64-linux-gnu/pkcs11",
	"/usr/lib/aarch64-linux-gnu/pkcs11",
	"/usr/lib64/pkcs11",
	"/usr/lib/pkcs11",
	"/usr/local/lib/pkcs11",
	"/usr/lib/x86_64-linux-gnu/softhsm",
	"/usr/lib/aarch64-linux-gnu/softhsm",
	"/usr/lib/softhsm",
}

// findModule returns the library named name (NAME, NAME.so, libNAME.so)
// in moduleDirs, or a path in the first directory that does not exist
// (Load then reports the module as unavailable).
func findModule(name string) string {
	for _, dir := range moduleDirs {
		for _, f := range []string{name, name + ".so", "lib" + name + ".so"} {
			p := filepath.Join(dir, f)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p
			}
		}
	}
	return filepath.Join(moduleDirs[0], name+".so")
}

// pin returns the PIN: pin-value, or the content of pin-source without
// trailing newlines. Errors name the file, never its content.
func (u *URI) pin() (string, error) {
	if u.hasPIN {
		return u.pinValue, nil
	}
	p := u.pinSource
	if rest, ok := strings.CutPrefix(p, "file://"); ok {
		p = rest // file:///path → /path
	} else if rest, ok := strings.CutPrefix(p, "file:"); ok {
		p = rest
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%w : pin-source %q : chemin absolu attendu (file:/chemin)", ErrPIN, u.pinSource)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("%w : lecture du fichier de PIN %s : %w", ErrPIN, p, pathErr(err))
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return "", fmt.Errorf("%w : le fichier de PIN %s est vide", ErrPIN, p)
	}
	return string(b), nil
}

// pathErr strips the path from an *os.PathError (the caller names it).
func pathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// tokenDesc names the token for people.
func (u *URI) tokenDesc() string {
	switch {
	case u.TokenSerial != "":
		return fmt.Sprintf("jeton de numéro de série %q", u.TokenSerial)
	case u.TokenLabel != "":
		return fmt.Sprintf("jeton %q", u.TokenLabel)
	default:
		return fmt.Sprintf("jeton de l'emplacement %d", *u.SlotID)
	}
}

// keyDesc names the key for people.
func (u *URI) keyDesc() string {
	var parts []string
	if u.ObjectLabel != "" {
		parts = append(parts, fmt.Sprintf("%q", u.ObjectLabel))
	}
	if len(u.ID) > 0 {
		parts = append(parts, fmt.Sprintf("id %x", u.ID))
	}
	return "clé " + strings.Join(parts, ", ")
}

// Redact returns uri with the value of any pin-value attribute (in the
// query, or misplaced in the path) replaced by "***": the form to log or
// show. A string that is not a PKCS#11 URI is returned unchanged.
func Redact(uri string) string {
	rest, ok := strings.CutPrefix(uri, "pkcs11:")
	if !ok {
		return uri
	}
	redact := func(part, sep string) string {
		attrs := strings.Split(part, sep)
		for i, a := range attrs {
			if name, _, ok := strings.Cut(a, "="); ok && name == "pin-value" {
				attrs[i] = "pin-value=***"
			}
		}
		return strings.Join(attrs, sep)
	}
	pathPart, queryPart, hasQuery := strings.Cut(rest, "?")
	out := "pkcs11:" + redact(pathPart, ";")
	if hasQuery {
		out += "?" + redact(queryPart, "&")
	}
	return out
}

// tokenKey identifies a cached context: a module and a token selector.
type tokenKey struct {
	module string
	by     string // "serial", "label" or "slot"
	value  string
}

func tokenKeyOf(u *URI) tokenKey {
	switch {
	case u.TokenSerial != "":
		return tokenKey{u.ModulePath, "serial", u.TokenSerial}
	case u.TokenLabel != "":
		return tokenKey{u.ModulePath, "label", u.TokenLabel}
	default:
		return tokenKey{u.ModulePath, "slot", strconv.Itoa(*u.SlotID)}
	}
}
