package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auditlog"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/server"
	"github.com/etatcivil/etatcivil/internal/store"
)

func cmdAuditVerify(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "audit verify", "[--json]", `
Recalcule la chaîne du journal d'audit et vérifie chaque point d'ancrage
du seau d'archive (rôles auditor et admin) : cachet et horodatage, lien au
précédent, racine Merkle, et chaque événement ancré tel qu'il est stocké.
Un événement modifié, supprimé ou inséré est nommé par son numéro, même si
toute la chaîne a été recalculée. Indique combien d'événements ne sont pas
encore ancrés. Sort avec le code 0 si tout vérifie, 1 sinon.`)
	asJSON := fs.Bool("json", false, "sortie JSON : {ok, chained, unanchored, checkpoints, anchored_through, failures: [{seq, checkpoint, problem}]}")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	raw, err := c.Get(ctx, "/api/v1/audit/verify", nil)
	if err != nil {
		return err
	}
	var rep auditlog.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return err
	}
	if *asJSON {
		if _, err := env.Stdout.Write(raw); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.Stdout, "%d événement(s) chaîné(s) ; %d point(s) d'ancrage, ancrés jusqu'au n° %d ; %d pas encore ancré(s)\n",
			rep.Chained, rep.Checkpoints, rep.AnchoredThrough, rep.Unanchored)
		for _, f := range rep.Failures {
			fmt.Fprintf(env.Stdout, "  ÉCHEC n° %d : %s\n", f.Seq, f.Problem)
		}
		if rep.OK {
			fmt.Fprintln(env.Stdout, "journal intact")
		}
	}
	if !rep.OK {
		return exitError{code: 1, err: fmt.Errorf("le journal d'audit ne vérifie pas (%d échec(s))", len(rep.Failures))}
	}
	return nil
}

// openAudit opens what the operator's audit commands need: the database,
// the archive bucket, the default seal and the TSA, as serve does.
func openAudit(ctx context.Context, env *Env) (*auditlog.Anchor, *auditlog.Fixity, func(), error) {
	c, st, err := openStore(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	bl, err := blob.New(server.BlobConfig(c))
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	deps, err := server.Deps(c, st, bl, slog.New(slog.NewTextHandler(env.Stderr, nil)), false)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	roots, err := server.Roots(c)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	anchor, fixity := server.Audit(c, st, bl, deps, roots)
	return anchor, fixity, st.Close, nil
}

func cmdAuditCheckpoint(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "audit checkpoint", "[--timeout D]", `
Chaîne d'abord tous les événements validés avant le lancement de la
commande (elle attend la fin des transactions alors en cours), puis les
ancre : arbre de Merkle (RFC 9162) sur les événements chaînés depuis le
point précédent, document scellé avec le cachet par défaut et horodaté,
écrit une fois pour toutes dans le seau d'archive (verrou COMPLIANCE) avec
les empreintes des événements. Rend la main une fois le point écrit. Le
serveur en fait autant toutes les ETATCIVIL_AUDIT_CHECKPOINT_EVERY.`)
	timeout := fs.Duration("timeout", 5*time.Minute, "attente maximale des transactions en cours")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	anchor, _, done, err := openAudit(ctx, env)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	docs, err := anchor.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if len(docs) == 0 {
		fmt.Fprintln(env.Stderr, "aucun nouvel événement : pas de nouveau point d'ancrage")
	}
	for _, d := range docs {
		fmt.Fprintf(env.Stdout, "point d'ancrage n° %d : événements %d à %d, racine %s (%s)\n",
			d.Number, d.FirstSeq, d.LastSeq, d.Root, auditlog.ObjectKey(d.Number, "json"))
	}
	return nil
}

func cmdAuditLog(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "audit log", "--act ID | --actor JETON [--from DATE] [--to DATE] [--json]", `
Qui a lu ou modifié l'acte ID (--act), ou qu'a fait le jeton JETON
(--actor, l'identifiant du jeton, cf. « token list ») : les événements
du journal d'audit, du plus ancien au plus récent, avec la finalité et le
motif de chaque lecture (le motif libre est purgé après
ETATCIVIL_READ_LOG_RETENTION ; son empreinte reste). Rôles auditor et
admin ; la consultation est elle-même journalisée.`)
	act := fs.String("act", "", "identifiant d'acte")
	actor := fs.String("actor", "", "identifiant de jeton")
	from := fs.String("from", "", "depuis (AAAA-MM-JJ ou RFC 3339)")
	to := fs.String("to", "", "jusqu'à, exclu (AAAA-MM-JJ ou RFC 3339)")
	asJSON := fs.Bool("json", false, "sortie JSON (tous les événements, en une liste)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *act == "" && *actor == "" {
		return usagef("--act ou --actor est obligatoire")
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	q := url.Values{"limit": {"1000"}}
	for k, v := range map[string]string{"act": *act, "actor": *actor, "from": *from, "to": *to} {
		if v != "" {
			q.Set(k, v)
		}
	}
	all := []store.AuditEvent{}
	for {
		raw, err := c.Get(ctx, "/api/v1/audit/events?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		var page struct {
			Events []store.AuditEvent `json:"events"`
			Next   *string            `json:"next"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return err
		}
		all = append(all, page.Events...)
		if page.Next == nil {
			break
		}
		q.Set("cursor", *page.Next)
	}
	if *asJSON {
		return json.NewEncoder(env.Stdout).Encode(all)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "N°\tDATE\tAUTEUR\tACTION\tACTE\tFINALITÉ\tMOTIF")
	for _, e := range all {
		seq := "-"
		if e.Seq != nil {
			seq = strconv.FormatInt(*e.Seq, 10)
		}
		reason := ""
		switch {
		case e.Reason != nil:
			reason = strings.ReplaceAll(*e.Reason, "\t", " ")
		case e.ReasonSHA256 != nil:
			reason = "(purgé)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s (%s)\t%s\t%s\t%s\t%s\n", seq, e.At.Local().Format("2006-01-02 15:04:05"), e.Name, e.Actor,
			e.Action, deref(e.ActID), deref(e.Purpose), reason)
	}
	return tw.Flush()
}

func cmdAuditExport(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "audit export", "--commune INSEE --year AAAA -o FICHIER.tar --purpose P [--reason TEXTE]", `
Exporte les actes archivés d'une commune pour une année (rôles auditor et
admin) : les PDF scellés, leur rapport d'intégrité, les événements du
journal d'audit qui les concernent avec leur preuve d'inclusion Merkle,
les points d'ancrage scellés et horodatés qu'elles citent, et un manifeste
scellé avec l'empreinte de chaque fichier. Aucun événement d'une autre
commune. « etatcivil audit check FICHIER.tar » le vérifie sans serveur.
Chaque PDF exporté est une lecture journalisée avec sa finalité. Le
fichier n'apparaît qu'une fois l'export complet reçu.`)
	commune := fs.String("commune", "", "code INSEE de la commune")
	year := fs.Int("year", 0, "année des registres")
	out := fs.String("o", "", "fichier de sortie (.tar)")
	purpose := fs.String("purpose", "", "finalité : delivrance_copie, mise_a_jour, controle, contentieux, archivage, autre")
	reason := fs.String("reason", "", "motif libre")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *commune == "" || *year == 0 || *out == "" || *purpose == "" {
		return usagef("--commune, --year, -o et --purpose sont obligatoires")
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	h := http.Header{"Etatcivil-Purpose": {*purpose}}
	if *reason != "" {
		h.Set("Etatcivil-Reason", *reason)
	}
	q := url.Values{"commune": {*commune}, "year": {strconv.Itoa(*year)}}
	tmp, sum, _, err := download(ctx, c, "/api/v1/audit/export?"+q.Encode(), h, *out)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(env.Stderr, "%s : export de %s pour %d (SHA-256 %s)\n", *out, *commune, *year, sum)
	return nil
}

func cmdAuditCheck(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "audit check", "[--roots FICHIER.pem[:...]] [--json] FICHIER.tar", `
Vérifie un export (« audit export ») sans serveur ni base : le cachet du
manifeste, l'empreinte de chaque fichier (aucun manquant ni ajouté), le
cachet PAdES de chaque PDF, le cachet et l'horodatage de chaque point
d'ancrage, et pour chaque événement son encodage, son acte (parmi ceux de
l'export) et sa preuve d'inclusion jusqu'à la racine scellée. Chaque
problème nomme son fichier. Les racines de confiance viennent de --roots
ou d'ETATCIVIL_TRUST_ROOTS. Sort avec le code 0 si tout vérifie, 1 sinon.`)
	rootsFlag := fs.String("roots", "", "racines de confiance (PEM, séparées par « : »)")
	asJSON := fs.Bool("json", false, "sortie JSON : {ok, commune, year, acts, events, checkpoints, problems: [{file, problem}]}")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un fichier d'export est attendu")
	}
	rootFiles := *rootsFlag
	if rootFiles == "" {
		rootFiles = env.Getenv("ETATCIVIL_TRUST_ROOTS")
	}
	if rootFiles == "" {
		return usagef("racines de confiance requises : --roots FICHIER.pem (ou ETATCIVIL_TRUST_ROOTS) ; un export ne se vérifie pas contre ses propres certificats")
	}
	roots, err := api.LoadRoots(strings.Split(rootFiles, ":"))
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := auditlog.Check(f, roots)
	if err != nil {
		return exitError{code: 1, err: err}
	}
	if *asJSON {
		if err := json.NewEncoder(env.Stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.Stdout, "export de %s pour %d : %d acte(s), %d événement(s) prouvé(s), %d point(s) d'ancrage",
			rep.Commune, rep.Year, rep.Acts, rep.Events, rep.Checkpoints)
		if rep.Unanchored > 0 {
			fmt.Fprintf(env.Stdout, " ; %d événement(s) postérieur(s) au dernier point, hors export", rep.Unanchored)
		}
		fmt.Fprintln(env.Stdout)
		for _, p := range rep.Problems {
			fmt.Fprintf(env.Stdout, "  ÉCHEC %s : %s\n", p.File, p.Problem)
		}
		if rep.OK {
			fmt.Fprintln(env.Stdout, "export intact")
		}
	}
	if !rep.OK {
		return exitError{code: 1, err: fmt.Errorf("l'export ne vérifie pas (%d problème(s))", len(rep.Problems))}
	}
	return nil
}

func cmdFixityReport(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "fixity report", "[--json]", `
Bilan des audits de fixité (rôles auditor et admin) : combien de versions
archivées, combien relues pendant la période (ETATCIVIL_FIXITY_PERIOD),
jamais relues, et chaque version dont la dernière relecture a échoué
(objet absent, ou octets différents du registre). Sort avec le code 1 si
une version est en échec.`)
	asJSON := fs.Bool("json", false, "sortie JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	raw, err := c.Get(ctx, "/api/v1/fixity", nil)
	if err != nil {
		return err
	}
	var rep store.FixityReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return err
	}
	if *asJSON {
		if _, err := env.Stdout.Write(raw); err != nil {
			return err
		}
	} else {
		last := "jamais"
		if rep.LastCheck != nil {
			last = rep.LastCheck.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(env.Stdout, "%d version(s) archivée(s) ; %d relue(s) sur la période (%s), %d jamais ; dernière relecture : %s\n",
			rep.Versions, rep.CheckedWithin, rep.Period, rep.NeverChecked, last)
		fmt.Fprintf(env.Stdout, "intactes : %d ; absentes : %d ; altérées : %d\n", rep.OK, rep.Missing, rep.Altered)
		for _, p := range rep.Problems {
			fmt.Fprintf(env.Stdout, "  %s %s %d %s n° %d v%d : %s — %s\n", strings.ToUpper(p.Outcome), p.Commune, p.Year, p.Kind,
				p.Number, p.Version, p.ActID, p.Detail)
		}
	}
	if len(rep.Problems) > 0 {
		return exitError{code: 1, err: fmt.Errorf("%d version(s) en échec de fixité", len(rep.Problems))}
	}
	return nil
}

func cmdFixityRun(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "fixity run", "", `
Relit tout de suite chaque version archivée (au débit
ETATCIVIL_FIXITY_BANDWIDTH), recalcule son SHA-256 et enregistre le
verdict, comme le fait le serveur au fil de la période. Commande
d'exploitation : elle lit la base et le seau directement.`)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	_, fixity, done, err := openAudit(ctx, env)
	if err != nil {
		return err
	}
	defer done()
	t, err := fixity.Pass(ctx)
	fmt.Fprintf(env.Stdout, "%d version(s) relue(s) : %d intacte(s), %d absente(s), %d altérée(s)\n", t.Checked, t.OK, t.Missing, t.Altered)
	if err != nil {
		return err
	}
	if t.Missing+t.Altered > 0 {
		return exitError{code: 1, err: fmt.Errorf("%d version(s) en échec de fixité (« fixity report »)", t.Missing+t.Altered)}
	}
	return nil
}
