package cli

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/store"
)

// download streams GET path into a temporary file beside out, hashing it,
// and returns the temp file's name, its SHA-256 and the response headers.
func download(ctx context.Context, c *client.Client, path string, h http.Header, out string) (string, string, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+path, nil)
	if err != nil {
		return "", "", nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "", "", nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &client.Error{Status: resp.StatusCode, Raw: data}
		_ = json.Unmarshal(data, e)
		e.Status = resp.StatusCode
		return "", "", nil, e
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.part")
	if err != nil {
		return "", "", nil, err
	}
	hash := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, hash), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", "", nil, fmt.Errorf("téléchargement interrompu: %w", err)
	}
	return tmp.Name(), hex.EncodeToString(hash.Sum(nil)), resp.Header, nil
}

func cmdActFetch(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "act fetch", "ID -o FICHIER --purpose P [--reason TEXTE] [--version N]", `
Télécharge le PDF scellé d'un acte archivé (la version actuelle, ou
--version N) dans un fichier temporaire, vérifie son SHA-256 contre le
registre, puis le renomme en FICHIER. Un écart ne laisse aucun fichier et
sort en erreur. La lecture est journalisée avec sa finalité.`)
	out := fs.String("o", "", "fichier de sortie")
	purpose := fs.String("purpose", "", "finalité : delivrance_copie, mise_a_jour, controle, contentieux, archivage, autre")
	reason := fs.String("reason", "", "motif libre")
	version := fs.Int("version", 0, "numéro de version (0 : l'actuelle)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" || *purpose == "" {
		return usagef("un identifiant d'acte, -o et --purpose sont obligatoires")
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	// The ledger: what the archived version must hash to.
	raw, err := c.Get(ctx, "/api/v1/acts/"+url.PathEscape(pos[0]), nil)
	if err != nil {
		return err
	}
	var a store.ActView
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	v := *version
	if v == 0 {
		if a.CurrentVersion == nil {
			return fmt.Errorf("l'acte %s n'a aucune version archivée", pos[0])
		}
		v = *a.CurrentVersion
	}
	want := ""
	for _, vv := range a.Versions {
		if vv.Version == v && vv.State == "archived" && vv.SealedSHA256 != nil {
			want = *vv.SealedSHA256
		}
	}
	if want == "" {
		return fmt.Errorf("l'acte %s n'a pas de version %d archivée", pos[0], v)
	}
	h := http.Header{"Etatcivil-Purpose": {*purpose}}
	if *reason != "" {
		h.Set("Etatcivil-Reason", *reason)
	}
	tmp, got, hdr, err := download(ctx, c, "/api/v1/acts/"+url.PathEscape(pos[0])+"/pdf?version="+strconv.Itoa(v), h, *out)
	if err != nil {
		return err
	}
	digest := ""
	if d, ok := strings.CutPrefix(hdr.Get("Repr-Digest"), "sha-256=:"); ok {
		if b, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(d, ":")); err == nil {
			digest = hex.EncodeToString(b)
		}
	}
	if got != want || digest != want {
		os.Remove(tmp)
		return fmt.Errorf("intégrité : le fichier reçu a pour SHA-256 %s (annoncé %s), le registre dit %s ; rien n'est écrit", got, digest, want)
	}
	if err := os.Rename(tmp, *out); err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(env.Stderr, "%s : acte %s version %d, SHA-256 %s vérifié\n", *out, pos[0], v, got)
	return nil
}

func cmdBatchReceipt(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "batch receipt", "ID -o FICHIER", `
Télécharge le récépissé de dépôt d'un lot terminé : un PDF scellé avec le
cachet de l'opérateur, listant chaque fichier avec son SHA-256 reçu, celui
de l'objet archivé, son état et sa date d'archivage (ou son motif de refus).`)
	out := fs.String("o", "", "fichier de sortie")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usagef("un identifiant de lot et -o sont obligatoires")
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	tmp, _, _, err := download(ctx, c, "/api/v1/batches/"+url.PathEscape(pos[0])+"/receipt", nil, *out)
	if err != nil {
		return err
	}
	return os.Rename(tmp, *out)
}

func cmdActVerify(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "act verify", "ID [--version N] [--json]", `
Rapport d'intégrité d'un acte archivé (rôles auditor et admin) : l'objet
est présent, ses octets sont ceux du registre, le fichier reçu en est le
préfixe exact, le cachet est valide (niveau PAdES B-B ou B-T, signataire,
horodatage et chaîne de confiance vérifiés) et l'objet est verrouillé en
mode COMPLIANCE. Sort avec le code 0 si tout est vérifié, 1 sinon.`)
	version := fs.Int("version", 0, "numéro de version (0 : l'actuelle)")
	asJSON := fs.Bool("json", false, "sortie JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un identifiant d'acte est attendu")
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	path := "/api/v1/acts/" + url.PathEscape(pos[0]) + "/verification"
	if *version > 0 {
		path += "?version=" + strconv.Itoa(*version)
	}
	raw, err := c.Get(ctx, path, nil)
	if err != nil {
		return err
	}
	var rep api.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return err
	}
	if *asJSON {
		if _, err := env.Stdout.Write(raw); err != nil {
			return err
		}
	} else {
		verdict := "INTÈGRE"
		if !rep.OK {
			verdict = "ÉCHEC"
		}
		fmt.Fprintf(env.Stdout, "acte %s version %d : %s (niveau %s)\n", rep.ActID, rep.Version, verdict, rep.Level)
		for _, ch := range rep.Checks {
			mark := "ok   "
			if !ch.OK {
				mark = "ÉCHEC"
			}
			fmt.Fprintf(env.Stdout, "  %s %-22s %s\n", mark, ch.Name, ch.Detail)
		}
		if v := rep.Validation; v != nil {
			fmt.Fprintf(env.Stdout, "  données de validation : %d certificat(s), %d réponse(s) OCSP, %d liste(s) de révocation\n", v.Certs, v.OCSPs, v.CRLs)
		}
		for i, ts := range rep.Timestamps {
			what := "horodatage de la signature"
			if ts.Kind == "document" {
				what = fmt.Sprintf("horodatage de document (%d octets couverts)", ts.Covered)
			}
			fmt.Fprintf(env.Stdout, "  %d. %s : %s\n", i+1, ts.Time.Format(time.RFC3339), what)
		}
	}
	if !rep.OK {
		return exitError{code: 1, err: fmt.Errorf("l'acte %s ne passe pas la vérification d'intégrité", rep.ActID)}
	}
	return nil
}
