package seda

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
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
// xmllint's XSD validator does not resolve xsd:IDREF values; Validate
// checks them itself (a DataObjectReferenceId must name an object of the
// message).
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
	return checkIDRefs(doc)
}

// idrefElements are the SEDA elements typed xsd:IDREF.
var idrefElements = map[string]bool{
	"DataObjectReferenceId":      true,
	"DataObjectGroupReferenceId": true,
	"ArchiveUnitRefId":           true,
	"SignedDocumentReferenceId":  true,
}

// checkIDRefs completes xmllint, whose XSD validator (libxml2 2.9) does not
// check that xsd:IDREF values resolve: every SEDA reference to an
// object, group or unit (and Relationship/@target) must name an id
// attribute of the same document.
func checkIDRefs(doc []byte) error {
	ids := map[string]bool{}
	var refs []string
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var inRef bool
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("seda: message illisible : %w", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			for _, a := range tok.Attr {
				if a.Name.Local == "id" && (a.Name.Space == "" || a.Name.Space == "http://www.w3.org/XML/1998/namespace") {
					ids[strings.TrimSpace(a.Value)] = true
				}
				if tok.Name.Space == Namespace && tok.Name.Local == "Relationship" && a.Name.Local == "target" && a.Name.Space == "" {
					refs = append(refs, strings.TrimSpace(a.Value))
				}
			}
			inRef = tok.Name.Space == Namespace && idrefElements[tok.Name.Local]
			text.Reset()
		case xml.CharData:
			if inRef {
				text.Write(tok)
			}
		case xml.EndElement:
			if inRef {
				refs = append(refs, strings.TrimSpace(text.String()))
				inRef = false
			}
		}
	}
	var missing []string
	for _, r := range refs {
		if !ids[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("seda: message non conforme au schéma SEDA 2.3 : référence(s) IDREF sans id correspondant : %s", strings.Join(missing, ", "))
	}
	return nil
}
