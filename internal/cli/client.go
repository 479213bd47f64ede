package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/upload"
)

func newClient(env *Env) (*client.Client, error) {
	base, tok := env.Getenv("ETATCIVIL_SERVER"), env.Getenv("ETATCIVIL_TOKEN")
	if base == "" || tok == "" {
		return nil, errors.New("ETATCIVIL_SERVER et ETATCIVIL_TOKEN doivent être définis (« . .local/env » avec la pile locale)")
	}
	return client.New(base, tok), nil
}

// barProgress draws a progress bar of bytes, with the count of files, on
// a terminal.
type barProgress struct {
	bar   *progressbar.ProgressBar
	files int
	done  atomic.Int64
}

func (b *barProgress) Start(total int64, files int) {
	b.files = files
	b.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetDescription(fmt.Sprintf("actes 0/%d", files)),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
	)
}

func (b *barProgress) Bytes(n int64) { _ = b.bar.Add64(n) }

func (b *barProgress) FileDone(string, error) {
	n := b.done.Add(1)
	b.bar.Describe(fmt.Sprintf("actes %d/%d", n, b.files))
}

func (b *barProgress) Finish() { _ = b.bar.Finish() }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func cmdUpload(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "upload", "[--check] [--wait] [--timeout D] [--json] DOSSIER", `
Envoie un lot : DOSSIER contient manifest.json (ou manifest.csv) et les PDF
qu'il nomme. Seuls les fichiers que le serveur n'a pas encore sont envoyés,
en parallèle ; relancer la commande reprend où elle s'était arrêtée et ne
duplique rien. Une entrée invalide n'arrête jamais l'envoi : le serveur
donne à chaque entrée son état et son motif.
  --check  contrôle tout localement (manifeste, fichiers, PDF) sans rien
           écrire sur le serveur ; sortie 1 si une entrée serait refusée.
  --wait   attend que chaque entrée soit dans un état final.`)
	check := fs.Bool("check", false, "contrôler localement sans rien envoyer")
	wait := fs.Bool("wait", false, "attendre l'état final de chaque entrée")
	timeout := fs.Duration("timeout", 30*time.Minute, "durée maximale d'attente avec --wait")
	asJSON := fs.Bool("json", false, "imprimer le lot en JSON sur la sortie standard")
	parallel := fs.Int("parallel", 4, "envois simultanés")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un dossier attendu")
	}
	if *check {
		return localCheck(ctx, env, pos[0], *asJSON)
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	opt := upload.Options{Parallel: *parallel, Log: func(f string, a ...any) { fmt.Fprintf(env.Stderr, f, a...) }}
	if isTerminal(env.Stderr) {
		opt.Progress = &barProgress{}
	}
	b, err := upload.Run(ctx, c, pos[0], opt)
	if errors.Is(err, upload.ErrRefused) {
		return exitError{ExitRefused, err}
	}
	if err != nil {
		return err
	}
	var raw []byte
	if *wait {
		wctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		var werr error
		b, raw, werr = c.WaitBatch(wctx, b.ID, nil)
		if werr != nil && wctx.Err() != nil && ctx.Err() == nil {
			// Timed out: print what we have, exit 4.
			if raw == nil {
				b, raw, _ = c.Batch(ctx, b.ID)
			}
			printBatch(env, b, raw, *asJSON)
			return exitError{ExitTimedOut, fmt.Errorf("attente expirée après %s : %d entrée(s) encore en cours", *timeout, b.Counts.Pending)}
		}
		if werr != nil {
			return werr
		}
	} else {
		b, raw, err = c.Batch(ctx, b.ID)
		if err != nil {
			return err
		}
	}
	printBatch(env, b, raw, *asJSON)
	return nil
}

func printBatch(env *Env, b store.BatchView, raw []byte, asJSON bool) {
	if asJSON {
		env.Stdout.Write(raw)
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			fmt.Fprintln(env.Stdout)
		}
		return
	}
	fmt.Fprintf(env.Stdout, "lot %s (%s) : %s — %d entrées, %d en cours, %d validées, %d archivées, %d refusées\n",
		b.ID, b.Hub, b.State, b.Counts.Total, b.Counts.Pending, b.Counts.Validated, b.Counts.Archived, b.Counts.Rejected)
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FICHIER\tCOMMUNE\tREGISTRE\tANNÉE\tN°\tV\tÉTAT\tMOTIF")
	for _, e := range b.Acts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.File, deref(e.Commune), deref(e.Kind), derefInt(e.Year),
			derefInt(e.Number), derefInt(e.Version), e.State, deref(e.Reason))
	}
	tw.Flush()
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func derefInt(i *int) string {
	if i == nil {
		return "-"
	}
	return strconv.Itoa(*i)
}

func cmdBatchShow(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "batch show", "ID [--json] [--rejected --csv]", `
Affiche un lot et l'état de chaque entrée. --rejected --csv liste les
entrées refusées avec leur message en français, pour l'équipe d'indexation.`)
	asJSON := fs.Bool("json", false, "sortie JSON de l'API")
	rejected := fs.Bool("rejected", false, "seulement les entrées refusées")
	asCSV := fs.Bool("csv", false, "sortie CSV (avec --rejected)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un identifiant de lot attendu")
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	b, raw, err := c.Batch(ctx, pos[0])
	if err != nil {
		return err
	}
	if *rejected {
		var keep []store.BatchEntry
		for _, e := range b.Acts {
			if e.State == "rejected" {
				keep = append(keep, e)
			}
		}
		b.Acts = keep
		if *asJSON {
			raw, _ = json.Marshal(b)
		}
	}
	if *asCSV {
		w := csv.NewWriter(env.Stdout)
		_ = w.Write([]string{"file", "commune", "kind", "year", "number", "state", "reason", "message"})
		for _, e := range b.Acts {
			_ = w.Write([]string{e.File, deref(e.Commune), deref(e.Kind), derefInt(e.Year), derefInt(e.Number), e.State, deref(e.Reason), deref(e.Message)})
		}
		w.Flush()
		return w.Error()
	}
	printBatch(env, b, raw, *asJSON)
	return nil
}

func cmdActsList(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "acts list", "[--commune INSEE] [--year A] [--kind K] [--state S] [--number N] [--surname NOM] [--json]", `
Liste les actes visibles avec ce jeton (toutes les pages) : ceux de ses
communes pour un opérateur ou une mairie, de toutes les communes pour un
auditeur. Le nom est cherché sans tenir compte des accents ni de la casse,
parmi les personnes de l'acte. Aucune donnée personnelle n'est affichée.`)
	commune := fs.String("commune", "", "code INSEE")
	year := fs.Int("year", 0, "année du registre")
	kind := fs.String("kind", "", "naissance, mariage, deces ou reconnaissance")
	state := fs.String("state", "", "état (validated, rejected, stalled…)")
	q := fs.String("q", "", "numéro d'acte ou nom")
	number := fs.Int("number", 0, "numéro d'acte")
	surname := fs.String("surname", "", "nom d'une personne de l'acte")
	asJSON := fs.Bool("json", false, "sortie JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	v := url.Values{}
	for k, val := range map[string]string{"commune": *commune, "kind": *kind, "state": *state, "q": *q, "surname": *surname} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if *year != 0 {
		v.Set("year", strconv.Itoa(*year))
	}
	if *number != 0 {
		v.Set("number", strconv.Itoa(*number))
	}
	v.Set("limit", "1000")
	var all []store.ActSummary
	total := 0
	for {
		raw, err := c.Get(ctx, "/api/v1/acts?"+v.Encode(), nil)
		if err != nil {
			return err
		}
		var page struct {
			Acts  []store.ActSummary `json:"acts"`
			Next  *string            `json:"next"`
			Total int                `json:"total"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return err
		}
		all, total = append(all, page.Acts...), page.Total
		if page.Next == nil {
			break
		}
		v.Set("cursor", *page.Next)
	}
	if *asJSON {
		if all == nil {
			all = []store.ActSummary{}
		}
		return json.NewEncoder(env.Stdout).Encode(map[string]any{"acts": all, "next": nil, "total": total})
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCOMMUNE\tREGISTRE\tANNÉE\tN°\tVERSION\tÉTAT\tMOTIF")
	for _, a := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", a.ID, a.Commune, a.Kind, a.Year, a.Number, derefInt(a.Version), a.State, deref(a.Reason))
	}
	tw.Flush()
	fmt.Fprintf(env.Stderr, "%d acte(s)\n", total)
	return nil
}

func cmdActShow(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "act show", "ID [--json] [--persons --purpose P [--reason TEXTE]]", `
Affiche un acte, ses versions et son historique. --persons ajoute les
personnes de l'acte : cette lecture de données personnelles exige une
finalité (--purpose : delivrance_copie, mise_a_jour, controle, contentieux,
archivage, autre) et est journalisée.`)
	asJSON := fs.Bool("json", false, "sortie JSON")
	persons := fs.Bool("persons", false, "inclure les personnes (lecture journalisée)")
	purpose := fs.String("purpose", "", "finalité de la lecture")
	reason := fs.String("reason", "", "motif libre de la lecture")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un identifiant d'acte attendu")
	}
	if *persons && *purpose == "" {
		return usagef("--persons exige --purpose")
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	path := "/api/v1/acts/" + url.PathEscape(pos[0])
	h := http.Header{}
	if *persons {
		path += "?persons=1"
		h.Set("Etatcivil-Purpose", *purpose)
		if *reason != "" {
			h.Set("Etatcivil-Reason", *reason)
		}
	}
	raw, err := c.Get(ctx, path, h)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := env.Stdout.Write(raw)
		return err
	}
	var a store.ActView
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "acte %s : %s %s %d n° %d — %s", a.ID, a.Kind, a.Commune, a.Year, a.Number, a.State)
	if a.Reason != nil {
		fmt.Fprintf(env.Stdout, " (%s)", *a.Reason)
	}
	fmt.Fprintln(env.Stdout)
	if a.Message != nil {
		fmt.Fprintln(env.Stdout, "  "+*a.Message)
	}
	if a.Waiting != nil {
		fmt.Fprintln(env.Stdout, "  en attente :", *a.Waiting)
	}
	for _, v := range a.Versions {
		fmt.Fprintf(env.Stdout, "  v%d %s sha256 %s (lot %s, %s)\n", v.Version, v.State, v.SHA256, v.BatchID, v.File)
	}
	for _, h := range a.History {
		fmt.Fprintf(env.Stdout, "  %s v%d → %s\n", h.At.Local().Format("2006-01-02 15:04:05"), h.Version, h.State)
	}
	if len(a.Persons) > 0 {
		fmt.Fprintf(env.Stdout, "  personnes : %s\n", a.Persons)
	}
	if len(a.Transmissions) > 0 {
		fmt.Fprintln(env.Stdout, "  transmissions :")
	}
	for _, t := range a.Transmissions {
		line := fmt.Sprintf("    %s v%d : %s", t.Registry, t.Version, transmissionStates[t.State])
		if t.AckID != nil {
			line += " (accusé " + *t.AckID + ")"
		}
		if t.Reason != nil {
			line += " — motif : " + *t.Reason
		}
		fmt.Fprintln(env.Stdout, line)
		for _, h := range t.History {
			what := h.Outcome
			if h.HTTPStatus != nil {
				what += fmt.Sprintf(" HTTP %d", *h.HTTPStatus)
			}
			if h.Error != nil {
				what += " : " + *h.Error
			}
			fmt.Fprintf(env.Stdout, "      %s tentative : %s\n", h.At.Local().Format("2006-01-02 15:04:05"), what)
		}
	}
	return nil
}

// transmissionStates names the transmission states in French.
var transmissionStates = map[string]string{
	"pending": "en attente d'envoi", "sent": "envoyée, accusé attendu", "acknowledged": "acquittée", "refused": "refusée",
	"retrying": "registre indisponible, nouvel essai prévu", "overdue": "accusé en retard, renvoi prévu", "dead": "abandonnée (à relancer)",
}

func cmdActsRetry(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "acts retry", "[--state stalled] [ID...]", `
Relance les actes bloqués (« stalled » : l'infrastructure a échoué jusqu'à
épuiser le budget de tentatives) : tous ceux du périmètre du jeton, ou
seulement les ID donnés (identifiants d'acte ou d'entrée).`)
	state := fs.String("state", "stalled", "état à relancer (seul stalled est relançable)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *state != "stalled" {
		return usagef("seul l'état stalled se relance ; un acte refusé se corrige par un nouvel envoi")
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	if pos == nil {
		pos = []string{}
	}
	return postRetry(ctx, env, c, "/api/v1/acts/retry", map[string]any{"ids": pos}, "entrée(s) relancée(s)")
}

// postRetry posts a retry request and prints how many items it re-drove.
func postRetry(ctx context.Context, env *Env, c *client.Client, path string, body map[string]any, what string) error {
	raw, err := c.Post(ctx, path, body)
	if err != nil {
		return err
	}
	var out struct {
		Retried []string `json:"retried"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%d %s\n", len(out.Retried), what)
	return nil
}

func cmdTransmissionsList(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "transmissions list", "[--registry ID] [--state S] [--json]", `
Liste les transmissions aux registres (par acte, version et registre) :
état (pending, sent, acknowledged, refused, retrying, overdue, dead),
tentatives, accusé de réception ou motif du refus. Rien ne disparaît :
une transmission abandonnée (dead) reste listée et se relance.`)
	reg := fs.String("registry", "", "registre")
	state := fs.String("state", "", "état")
	asJSON := fs.Bool("json", false, "sortie JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	v := url.Values{}
	if *reg != "" {
		v.Set("registry", *reg)
	}
	if *state != "" {
		v.Set("state", *state)
	}
	raw, err := c.Get(ctx, "/api/v1/transmissions?"+v.Encode(), nil)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := env.Stdout.Write(raw)
		return err
	}
	var out struct {
		Transmissions []store.TransmissionItem `json:"transmissions"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTE\tV\tREGISTRE\tÉTAT\tTENTATIVES\tACCUSÉ/MOTIF\tMAJ")
	for _, t := range out.Transmissions {
		note := deref(t.AckID)
		if t.Reason != nil {
			note = *t.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", t.ID, t.ActID, t.Version, t.Registry, t.State, t.Attempts, note, t.UpdatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

func cmdTransmissionsRetry(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "transmissions retry", "[--registry ID] [--state dead|refused|overdue|retrying] [ID...]", `
Relance des transmissions non acquittées, avec un budget de tentatives
neuf (les tentatives passées restent dans l'historique) : par identifiant,
par registre ou par état. Un critère au moins est requis.

Une transmission par acte est renvoyée sous la même clé. Un lot abandonné
(dead), en retard (overdue) ou en reprise (retrying) est renvoyé entier,
sous sa même clé : le registre l'a peut-être reçu sans que nous le
sachions, et la même clé lui permet de le dire au lieu de l'accepter deux
fois. Un acte refusé quitte son lot et part dans un lot nouveau.`)
	reg := fs.String("registry", "", "registre")
	state := fs.String("state", "", "état")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 && *reg == "" && *state == "" {
		return usagef("indiquez des identifiants, --registry ou --state")
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	if pos == nil {
		pos = []string{}
	}
	return postRetry(ctx, env, c, "/api/v1/transmissions/retry", map[string]any{"ids": pos, "registry": *reg, "state": *state}, "transmission(s) relancée(s)")
}

func cmdTransmissionsBackfill(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "transmissions backfill", "--registry ID [--json]", `
Applique la règle actuelle d'un registre aux versions déjà archivées qui ne
lui ont pas été transmises (un registre ajouté, une règle élargie) : chaque
version qu'elle retient reçoit sa transmission, comme à l'archivage. Sans
effet sur ce qui a déjà une transmission vers ce registre : relancer la
commande ne crée rien deux fois. Rôle admin.`)
	reg := fs.String("registry", "", "registre (obligatoire)")
	asJSON := fs.Bool("json", false, "sortie JSON (totaux)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *reg == "" {
		return usagef("--registry est obligatoire")
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	total := ingest.BackfillResult{Registry: *reg}
	after := ""
	for {
		raw, err := c.Post(ctx, "/api/v1/transmissions/backfill", map[string]any{"registry": *reg, "after": after, "limit": 1000})
		if err != nil {
			return err
		}
		var page ingest.BackfillResult
		if err := json.Unmarshal(raw, &page); err != nil {
			return err
		}
		total.Examined += page.Examined
		total.Routed += page.Routed
		if !*asJSON {
			fmt.Fprintf(env.Stderr, "\r%d version(s) examinée(s), %d transmission(s) créée(s)", total.Examined, total.Routed)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if *asJSON {
		return json.NewEncoder(env.Stdout).Encode(total)
	}
	fmt.Fprintln(env.Stderr)
	fmt.Fprintf(env.Stdout, "%s : %d version(s) archivée(s) sans transmission examinée(s), %d transmission(s) créée(s)\n", *reg, total.Examined, total.Routed)
	return nil
}

func cmdTransmissionsStats(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "transmissions stats", "[--json]", `
Par registre : nombre de transmissions par état, la plus ancienne encore
due (ni acquittée, ni refusée, ni abandonnée) et les transmissions en
retard d'accusé de réception (overdue), dans votre périmètre.`)
	asJSON := fs.Bool("json", false, "sortie JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	raw, err := c.Get(ctx, "/api/v1/registries", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := env.Stdout.Write(raw)
		return err
	}
	var out struct {
		Registries []store.RegistryStats `json:"registries"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	states := model.TransmissionStates
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REGISTRE\t"+strings.ToUpper(strings.Join(states, "\t"))+"\tPLUS ANCIENNE DUE")
	for _, r := range out.Registries {
		fmt.Fprint(tw, r.Registry)
		for _, st := range states {
			fmt.Fprintf(tw, "\t%d", r.States[st])
		}
		oldest := "-"
		if r.OldestPending != nil {
			oldest = r.OldestPending.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "\t%s\n", oldest)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range out.Registries {
		for _, t := range r.Overdue {
			fmt.Fprintf(env.Stdout, "en retard : %s acte %s v%d, %d tentative(s), depuis %s\n", r.Registry, t.ActID, t.Version, t.Attempts,
				t.UpdatedAt.Local().Format("2006-01-02 15:04:05"))
		}
	}
	return nil
}

func cmdTransmissionsFlush(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "transmissions flush", "[--registry ID]", `Constitue tout de suite les lots qu'une cadence retiendrait encore (rôle admin).`)
	reg := fs.String("registry", "", "registre (tous les registres à lots par défaut)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := newClient(env)
	if err != nil {
		return err
	}
	_, err = c.Post(ctx, "/api/v1/transmissions/flush", map[string]any{"registry": *reg})
	return err
}
