package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/etatcivil/etatcivil/internal/cog"
	"github.com/etatcivil/etatcivil/internal/manifest"
	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/pdfcheck"
	"github.com/etatcivil/etatcivil/internal/sample"
	"github.com/etatcivil/etatcivil/internal/upload"
)

// checkLine is one entry's local verdict.
type checkLine struct {
	File    string  `json:"file"`
	OK      bool    `json:"ok"`
	Reason  *string `json:"reason"`
	Message *string `json:"message"`
	Pages   int     `json:"pages,omitempty"`
}

// localCheck validates a batch directory without the server: manifest
// schema and rules (with the COG snapshot built into the binary; hub
// membership is the server's to judge), each file's size and SHA-256, and
// the PDF policy in a child process. It writes nothing anywhere.
func localCheck(ctx context.Context, env *Env, dir string, asJSON bool) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	name, data, err := upload.Manifest(root)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(name, data)
	if err != nil {
		return exitError{ExitRefused, err}
	}
	snap, err := cog.Embedded()
	if err != nil {
		return err
	}
	manifest.Checker{Lookup: snap.Lookup}.Check(m)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var lines []checkLine
	bad := 0
	for i := range m.Acts {
		e := &m.Acts[i]
		line := checkLine{File: e.File}
		rej := e.Problem
		if rej == nil {
			var pages int
			pages, rej = checkFile(ctx, root, exe, e)
			line.Pages = pages
		}
		if rej != nil {
			r, msg := string(rej.Reason), rej.Message
			line.Reason, line.Message = &r, &msg
			bad++
		} else {
			line.OK = true
		}
		lines = append(lines, line)
	}
	if asJSON {
		_ = json.NewEncoder(env.Stdout).Encode(map[string]any{"ok": bad == 0, "entries": lines})
	} else {
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FICHIER\tVERDICT\tMOTIF\tMESSAGE")
		for _, l := range lines {
			verdict := "ok"
			if !l.OK {
				verdict = "refusé"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.File, verdict, deref(l.Reason), deref(l.Message))
		}
		tw.Flush()
		fmt.Fprintf(env.Stderr, "%d entrée(s), %d seraient refusées (appartenance des communes à l'opérateur non vérifiée localement)\n", len(lines), bad)
	}
	if bad > 0 {
		return fmt.Errorf("%d entrée(s) seraient refusées", bad)
	}
	return nil
}

// checkFile checks one file's bytes against its entry and the PDF policy.
func checkFile(ctx context.Context, root *os.Root, exe string, e *manifest.Entry) (int, *model.Rejection) {
	f, err := root.Open(e.File)
	if err != nil {
		return 0, model.Reject(model.ReasonFileMissing, "")
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, model.Reject(model.ReasonFileMissing, err.Error())
	}
	if n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return 0, model.Reject(model.ReasonChecksumMismatch, "")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, model.Reject(model.ReasonFileMissing, err.Error())
	}
	res, err := pdfcheck.RunIsolated(ctx, exe, f, n, pdfcheck.DefaultLimits(), pdfcheck.IsolateOptions{})
	var rej *model.Rejection
	if errors.As(err, &rej) {
		return 0, rej
	}
	if err != nil {
		return 0, model.Reject(model.ReasonPDFResourceLimit, err.Error())
	}
	return res.Pages, nil
}

func cmdSampleGenerate(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "sample generate", "DOSSIER [--count N] [--realistic] [--bad] [--seed S]", `
Génère un lot d'actes fictifs : manifest.json, les PDF (pages numérisées
simulées) et expected.json (état attendu de chaque entrée). Le lot
d'exemple testdata/sample/ vient de cette commande ; --realistic fait des
fichiers de 100 Ko à 1 Mo pour le banc d'essai.`)
	count := fs.Int("count", 24, "nombre d'actes valides")
	realistic := fs.Bool("realistic", false, "tailles réalistes (100 Ko – 1 Mo)")
	bad := fs.Bool("bad", false, "ajouter les entrées invalides de démonstration")
	seed := fs.Int64("seed", sample.CommittedSeed, "graine (même graine, même lot)")
	hub := fs.String("hub", "smica", "opérateur du manifeste")
	prefix := fs.String("prefix", "", "préfixe des noms de fichiers")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un dossier attendu")
	}
	opt := sample.Options{Dir: pos[0], Hub: *hub, Count: *count, Seed: *seed, Bad: *bad, Prefix: *prefix}
	if *realistic {
		opt.SizeClass = sample.SizeRealistic
	}
	return sample.Generate(opt)
}
