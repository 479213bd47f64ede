package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/etatcivil/etatcivil/internal/notify"
	"github.com/etatcivil/etatcivil/internal/store"
)

// needScope is the usage check of --hub and --commune: one at least.
func needScope(hub, commune string) error {
	if hub == "" && commune == "" {
		return usagef("--hub ou --commune (ou les deux) est obligatoire")
	}
	return nil
}

// checkScope checks the commune of a webhook or a digest against the COG
// (the hub is checked by the store).
func checkScope(ctx context.Context, st *store.Store, commune string) error {
	if commune != "" {
		return checkCommunes(ctx, st, []string{commune})
	}
	return nil
}

func cmdWebhookAdd(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "webhook add", "--hub ID | --commune INSEE --url URL --secret-file FICHIER", `
Enregistre un webhook : dans la minute, il reçoit en POST (JSON) les
événements des actes de son périmètre — actes refusés (rejected) ou
bloqués (stalled), transmissions refusées (refused) ou abandonnées (dead)
par un registre, accusés de réception en retard (overdue).

Périmètre : --hub, les actes déposés par cet opérateur ; --commune, les
actes de cette commune (ou des communes dont elle a pris la suite) ; les
deux, les actes de la commune déposés par l'opérateur.

Chaque requête porte Etatcivil-Timestamp (secondes Unix),
Etatcivil-Delivery (identifiant, le même à chaque nouvel essai : ignorez un
envoi déjà reçu) et Etatcivil-Signature : « sha256= » suivi du HMAC-SHA-256
hexadécimal, avec le secret pour clé, de « horodatage.corps ». Le secret
est lu dans FICHIER (au moins 16 caractères) ; le destinataire détient le
même. Une réponse 2xx vaut remise ; sinon, nouvel essai avec un délai
croissant, 20 essais au plus (voir « etatcivil notifications list »).`)
	hub := fs.String("hub", "", "opérateur dont les actes sont suivis")
	commune := fs.String("commune", "", "code INSEE de la commune suivie")
	rawURL := fs.String("url", "", "URL http(s) du destinataire (obligatoire)")
	secretFile := fs.String("secret-file", "", "fichier contenant le secret partagé (obligatoire)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("argument inattendu %q", pos[0])
	}
	if err := needScope(*hub, *commune); err != nil {
		return err
	}
	u, err := url.Parse(*rawURL)
	if *rawURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return usagef("--url doit être une URL http:// ou https:// complète")
	}
	if *secretFile == "" {
		return usagef("--secret-file est obligatoire")
	}
	b, err := os.ReadFile(*secretFile)
	if err != nil {
		return fmt.Errorf("lecture du secret : %w", err)
	}
	secret := strings.TrimSpace(string(b))
	if len(secret) < 16 {
		return fmt.Errorf("le secret de %s est trop court (16 caractères au moins)", *secretFile)
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkScope(ctx, st, *commune); err != nil {
		return err
	}
	w, err := st.CreateWebhook(ctx, cliActor(env), store.Webhook{HubID: *hub, Commune: *commune, URL: *rawURL, Secret: secret})
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, w.ID)
	return nil
}

func cmdWebhookList(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "webhook list", "[--all] [--json]", `Liste les webhooks (jamais leur secret).`)
	all := fs.Bool("all", false, "inclure les webhooks supprimés")
	asJSON := fs.Bool("json", false, "sortie JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.Webhooks(ctx, *all)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []store.Webhook{}
		}
		return json.NewEncoder(env.Stdout).Encode(list)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOPÉRATEUR\tCOMMUNE\tURL\tCRÉÉ\tÉTAT")
	for _, w := range list {
		state := "actif"
		if w.DisabledAt != nil {
			state = "supprimé le " + w.DisabledAt.Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", w.ID, dash(w.HubID), dash(w.Commune), w.URL, w.CreatedAt.Format("2006-01-02"), state)
	}
	return tw.Flush()
}

func cmdWebhookRemove(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "webhook remove", "ID", `
Supprime un webhook : il ne reçoit plus rien, ses envois en attente sont
annulés (ils restent dans « etatcivil notifications list »).`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un identifiant de webhook attendu (colonne ID de « webhook list »)")
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.DisableWebhook(ctx, cliActor(env), pos[0])
}

func cmdDigestAdd(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "digest add", "--hub ID | --commune INSEE --email ADRESSE", `
Abonne une adresse au résumé quotidien : chaque jour après 7 h (heure de
Paris), un courriel en français liste les actes du périmètre refusés ou
bloqués, les transmissions refusées ou abandonnées par un registre et les
accusés de réception en retard depuis le résumé précédent. Rien à signaler,
pas de courriel. Le premier résumé couvre ce qui arrive à partir de
maintenant. Il faut un serveur SMTP (ETATCIVIL_SMTP_ADDR, voir le README).

Périmètre : --hub, les actes déposés par cet opérateur ; --commune, les
actes de cette commune (ou des communes dont elle a pris la suite) ; les
deux, les actes de la commune déposés par l'opérateur.`)
	hub := fs.String("hub", "", "opérateur dont les actes sont suivis")
	commune := fs.String("commune", "", "code INSEE de la commune suivie")
	email := fs.String("email", "", "adresse du destinataire (obligatoire)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("argument inattendu %q", pos[0])
	}
	if err := needScope(*hub, *commune); err != nil {
		return err
	}
	addr, err := mail.ParseAddress(*email)
	if *email == "" || err != nil {
		return usagef("--email doit être une adresse électronique valide")
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkScope(ctx, st, *commune); err != nil {
		return err
	}
	sub, err := st.CreateEmailSubscription(ctx, cliActor(env), store.EmailSubscription{HubID: *hub, Commune: *commune, Address: addr.Address})
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, sub.ID)
	return nil
}

func cmdDigestList(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "digest list", "[--all] [--json]", `Liste les abonnements au résumé quotidien.`)
	all := fs.Bool("all", false, "inclure les abonnements supprimés")
	asJSON := fs.Bool("json", false, "sortie JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.EmailSubscriptions(ctx, *all)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []store.EmailSubscription{}
		}
		return json.NewEncoder(env.Stdout).Encode(list)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOPÉRATEUR\tCOMMUNE\tADRESSE\tDERNIER RÉSUMÉ\tÉTAT")
	for _, s := range list {
		state := "actif"
		if s.DisabledAt != nil {
			state = "supprimé le " + s.DisabledAt.Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, dash(s.HubID), dash(s.Commune), s.Address,
			s.DigestedAt.Format("2006-01-02 15:04"), state)
	}
	return tw.Flush()
}

func cmdDigestRemove(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "digest remove", "ID", `Désabonne une adresse du résumé quotidien (ses courriels en attente sont annulés).`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un identifiant d'abonnement attendu (colonne ID de « digest list »)")
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.DisableEmailSubscription(ctx, cliActor(env), pos[0])
}

func cmdNotificationsList(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "notifications list", "[--failed] [--json]", `
Liste les envois de notifications (webhooks et résumés par courriel), du
plus récent au plus ancien : état (pending, delivered, failed, cancelled),
nombre d'essais, dernier statut HTTP et dernière erreur. Un envoi « failed »
a épuisé ses essais : « etatcivil notifications retry ID » le relance.`)
	failed := fs.Bool("failed", false, "seulement les envois abandonnés (failed)")
	asJSON := fs.Bool("json", false, "sortie JSON")
	limit := fs.Int("limit", 200, "nombre maximal d'envois listés (1000 au plus)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	state := ""
	if *failed {
		state = "failed"
	}
	list, err := st.Deliveries(ctx, state, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []store.DeliveryItem{}
		}
		return json.NewEncoder(env.Stdout).Encode(list)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCANAL\tDESTINATAIRE\tÉVÉNEMENTS\tÉTAT\tESSAIS\tCRÉÉ\tDERNIÈRE ERREUR")
	for _, d := range list {
		lastErr := "-"
		if d.LastError != nil {
			lastErr = *d.LastError
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", d.ID, d.Channel, d.Target, d.Events, d.State, d.Attempts,
			d.CreatedAt.Format("2006-01-02 15:04"), lastErr)
	}
	return tw.Flush()
}

func cmdNotificationsRetry(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "notifications retry", "ID...", `
Relance des envois abandonnés (failed) : même identifiant, même contenu,
nouveau crédit d'essais. Les envois dont le webhook ou l'abonnement a été
supprimé ne sont pas relancés.`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("au moins un identifiant d'envoi attendu (colonne ID de « notifications list --failed »)")
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	done, err := notify.Retry(ctx, st, cliActor(env), pos)
	if err != nil {
		return err
	}
	for _, id := range done {
		fmt.Fprintln(env.Stdout, id)
	}
	if len(done) < len(pos) {
		fmt.Fprintf(env.Stderr, "%d envoi(s) relancé(s) sur %d : les autres n'étaient pas abandonnés, ou leur destinataire a été supprimé\n", len(done), len(pos))
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
