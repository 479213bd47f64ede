package inseelot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/etatcivil/etatcivil/schemas"
)

// ErrNoValidator is returned by Validate when xmllint (libxml2-utils) is
// not on the PATH: the lot was not checked, which is not a success.
var ErrNoValidator = errors.New("xmllint introuvable (paquet libxml2-utils) : le lot n'a pas pu être validé")

// validateTimeout bounds one xmllint run.
const validateTimeout = 2 * time.Minute

// ValidationError is a lot that xmllint found not valid against the
// schema. Problems holds xmllint's messages, one a line, as it wrote
// them ("-:12: Schemas validity error : Element …").
type ValidationError struct {
	Schema   string
	Problems []string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("lot non conforme au schéma %s : %s", e.Schema, strings.Join(e.Problems, " ; "))
}

// Validate checks doc against the XML Schema at xsdPath with
//
//	xmllint --nonet --noout --schema xsdPath -
//
// (no network: the schema imports nothing). A document that is not
// valid gives a *ValidationError; a missing xmllint gives ErrNoValidator;
// an unreadable or broken schema, or xmllint failing otherwise, gives
// another error.
func Validate(doc []byte, xsdPath string) error {
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		return ErrNoValidator
	}
	if _, err := os.Stat(xsdPath); err != nil {
		return fmt.Errorf("schéma illisible : %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), validateTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--nonet", "--noout", "--schema", xsdPath, "-")
	cmd.Stdin = bytes.NewReader(doc)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err = cmd.Run()
	if err == nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && l != "- fails to validate" && l != "- validates" {
			lines = append(lines, l)
		}
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case 1, 3, 4: // unparsable document (1), not valid (3, 4)
			if len(lines) == 0 {
				lines = []string{fmt.Sprintf("xmllint a échoué (code %d) sans message", exit.ExitCode())}
			}
			return &ValidationError{Schema: xsdPath, Problems: lines}
		case 5:
			return fmt.Errorf("schéma %s invalide : %s", xsdPath, strings.Join(lines, " ; "))
		}
	}
	return fmt.Errorf("xmllint a échoué (%v) : %s", err, strings.Join(lines, " ; "))
}

var (
	schemaOnce sync.Once
	schemaPath string
	schemaErr  error
)

// ValidateEmbedded checks doc against the schema embedded in the binary
// (schemas.Lot, the repository's schemas/etatcivil-lot-1.xsd), written
// once to a private temporary file for xmllint. It never reads a schema
// from outside the binary.
func ValidateEmbedded(doc []byte) error {
	schemaOnce.Do(func() {
		dir, err := os.MkdirTemp("", "etatcivil-lot-schema-")
		if err != nil {
			schemaErr = err
			return
		}
		schemaPath = filepath.Join(dir, SchemaFile)
		schemaErr = os.WriteFile(schemaPath, schemas.Lot, 0o600)
	})
	if schemaErr != nil {
		return fmt.Errorf("schéma des lots : %w", schemaErr)
	}
	return Validate(doc, schemaPath)
}
