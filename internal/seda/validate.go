package seda

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/etatcivil/etatcivil/schemas"
)

// ErrNoValidator is returned by Validate when xmllint (libxml2-utils) is
// not installed.
var ErrNoValidator = errors.New("seda: xmllint introuvable (paquet libxml2-utils), validation SEDA impossible")

// validateTimeout bounds one xmllint run.
const validateTimeout = time.Minute

var (
	schemaOnce sync.Once
	schemaDir  string // temp dir holding seda-2.3/, for the process's life
	schemaErr  error
)

// extractSchemas writes the embedded SEDA 2.3 schemas (schemas.SEDA) to
// a temporary directory, once per process. The directory is left in place
// for later calls.
func extractSchemas() (string, error) {
	schemaOnce.Do(func() {
		dir, err := os.MkdirTemp("", "etatcivil-seda-")
		if err != nil {
			schemaErr = err
			return
		}
		schemaErr = fs.WalkDir(schemas.SEDA, "seda-2.3", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			dst := filepath.Join(dir, filepath.FromSlash(p))
			if d.IsDir() {
				return os.MkdirAll(dst, 0o755)
			}
			b, err := fs.ReadFile(schemas.SEDA, p)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o644)
		})
		schemaDir = dir
	})
	if schemaErr != nil {
		return "", fmt.Errorf("seda: extraction des schémas SEDA 2.3 : %w", schemaErr)
	}
	return schemaDir, nil
}

// Validate checks doc against the official SEDA 2.3 schemas (embedded
// schemas.SEDA) with `xmllint --nonet --noout --schema`, the W3C imports
// resolved through the schemas' catalog.xml, so nothing is fetched from
// the network. It returns nil if the document is valid, ErrNoValidator if
// xmllint is not installed, and otherwise an error carrying xmllint's
// messages.
//
// It checks the schema only: code-list values (digest algorithm, MIME
// type, rule identifiers) are free tokens for the schema, and the
// digests are not compared with any file.
func Validate(doc []byte) error {
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		return ErrNoValidator
	}
	dir, err := extractSchemas()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), validateTimeout)
	defer cancel()
	base := filepath.Join(dir, "seda-2.3")
	cmd := exec.CommandContext(ctx, bin, "--nonet", "--noout",
		"--schema", filepath.Join(base, "seda-2.3-main.xsd"), "-")
	cmd.Env = append(os.Environ(), "XML_CATALOG_FILES="+filepath.Join(base, "catalog.xml"))
	cmd.Stdin = bytes.NewReader(doc)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(strings.ReplaceAll(out.String(), dir+string(filepath.Separator), ""))
		return fmt.Errorf("seda: message non conforme au schéma SEDA 2.3 (%v) :\n%s", err, msg)
	}
	return nil
}
