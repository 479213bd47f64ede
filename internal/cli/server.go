package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/cog"
	"github.com/etatcivil/etatcivil/internal/config"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/pdfcheck"
	"github.com/etatcivil/etatcivil/internal/server"
	"github.com/etatcivil/etatcivil/internal/store"
)

// cliActor is the audit actor of server-side commands: the operator at
// the console, named by $USER when there is one.
func cliActor(env *Env) store.Actor {
	name := env.Getenv("USER")
	if name == "" {
		name = "console"
	}
	return store.Actor{ID: "cli", Name: name}
}

func loadConfig() (*config.Config, error) {
	c, err := config.Load()
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

func openStore(ctx context.Context) (*config.Config, *store.Store, error) {
	c, err := loadConfig()
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, c.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	if err := st.CheckSchema(ctx); err != nil {
		st.Close()
		return nil, nil, err
	}
	return c, st, nil
}

func cmdServe(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "serve", "[--workers=false]", `
Sert l'API HTTP (ETATCIVIL_ADDR) et, par défaut, les workers d'ingestion
dans le même processus. /metrics, /healthz et /readyz sont servis à part
sur ETATCIVIL_OPS_ADDR. Refuse de démarrer sur un schéma de base pas à
jour ou un seau d'archive qui échoue à « s3 check ». SIGTERM : plus de
nouveau travail, les tâches en cours finissent (ETATCIVIL_SHUTDOWN_TIMEOUT).`)
	workers := fs.Bool("workers", true, "exécuter aussi les workers dans ce processus")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig()
	if err != nil {
		return err
	}
	if err := c.RequireServer(); err != nil {
		return err
	}
	return server.Run(ctx, c, logger(env.Stderr), server.Options{API: true, Workers: *workers})
}

func cmdWorker(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "worker", "", `
Exécute les workers d'ingestion seuls. Autant de processus « worker » que
voulu peuvent partager une base et un seau : River distribue les tâches
sans double traitement.`)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig()
	if err != nil {
		return err
	}
	return server.Run(ctx, c, logger(env.Stderr), server.Options{Workers: true})
}

func cmdMigrate(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "migrate", "", `Applique les migrations de River puis celles d'etatcivil (numérotées, chacune dans sa transaction).`)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig()
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	applied, err := st.Migrate(ctx)
	for _, a := range applied {
		fmt.Fprintln(env.Stderr, "appliquée :", a)
	}
	if err == nil && len(applied) == 0 {
		fmt.Fprintln(env.Stderr, "schéma déjà à jour")
	}
	return err
}

func cmdS3Check(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "s3 check", "[--json]", `
Sonde le seau d'archive : versioning et object lock activés, sommes SHA-256
conservées, If-None-Match respecté, rétention lisible par version,
suppression d'une version verrouillée refusée. Dépose un petit objet témoin
verrouillé 1 jour (ou ETATCIVIL_RETENTION s'il est plus court).`)
	asJSON := fs.Bool("json", false, "sortie JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig()
	if err != nil {
		return err
	}
	bl, err := blob.New(server.BlobConfig(c))
	if err != nil {
		return err
	}
	probe := 24 * time.Hour
	if d := c.Retention.AddTo(time.Now()).Sub(time.Now()); d < probe {
		probe = d
	}
	res, err := bl.Check(ctx, probe)
	if err != nil {
		return err
	}
	ok := true
	for _, r := range res {
		ok = ok && r.OK
	}
	if *asJSON {
		_ = json.NewEncoder(env.Stdout).Encode(map[string]any{"ok": ok, "checks": res})
	} else {
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		for _, r := range res {
			word := "met"
			if !r.OK {
				word = "not met"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, word, r.Detail)
		}
		tw.Flush()
	}
	if !ok {
		return errors.New("le seau ne remplit pas toutes les conditions")
	}
	return nil
}

func cmdS3Init(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "s3 init", "", `Crée le seau d'archive (avec object lock, donc versioning) et le seau de dépôt (sans) s'ils n'existent pas.`)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig()
	if err != nil {
		return err
	}
	bl, err := blob.New(server.BlobConfig(c))
	if err != nil {
		return err
	}
	return bl.EnsureBuckets(ctx)
}

func cmdCOGImport(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "cog import", "FICHIER", `
Charge un instantané daté du Code officiel géographique (CSV, gzip ou non :
code,type,name,parent ; types COM, ARM, COMD, COMA, ANC) et remplace le
précédent. L'instantané livré est internal/cog/data/cog.csv.gz.`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un fichier attendu")
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	snap, err := cog.Read(f)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.ImportCOG(ctx, snap.Date, snap.Communes()); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "COG du %s importé : %d entrées\n", snap.Date, snap.Len())
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkCommunes verifies codes against the imported COG.
func checkCommunes(ctx context.Context, st *store.Store, codes []string) error {
	snap, err := server.LoadCommunes(ctx, st)
	if err != nil {
		return err
	}
	var bad []string
	for _, c := range codes {
		if _, ok := snap.Lookup(c); !ok {
			bad = append(bad, c)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("codes absents du COG %s : %s", snap.Date, strings.Join(bad, ", "))
	}
	return nil
}

func cmdHubCreate(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "hub create", "ID --name NOM --communes 12202,12145,...", `
Crée un opérateur de dématérialisation et ses communes adhérentes (codes
INSEE du COG). Une commune peut adhérer à plusieurs opérateurs. Un
opérateur voit aussi les registres des communes dont ses communes ont pris
la suite (communes déléguées, anciens codes).`)
	name := fs.String("name", "", "nom de l'opérateur (obligatoire)")
	communes := fs.String("communes", "", "codes INSEE séparés par des virgules")
	ifMissing := fs.Bool("if-missing", false, "ne rien faire si l'opérateur existe déjà")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *name == "" {
		return usagef("un identifiant et --name sont obligatoires")
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list := splitList(*communes)
	if err := checkCommunes(ctx, st, list); err != nil {
		return err
	}
	err = st.CreateHub(ctx, cliActor(env), store.Hub{ID: pos[0], Name: *name, Communes: list})
	if *ifMissing && errors.Is(err, store.ErrConflict) {
		return nil
	}
	return err
}

func cmdHubUpdate(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "hub update", "ID [--add-communes …] [--remove-communes …]", `Ajoute ou retire des communes adhérentes d'un opérateur.`)
	add := fs.String("add-communes", "", "codes INSEE à ajouter, séparés par des virgules")
	remove := fs.String("remove-communes", "", "codes INSEE à retirer")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un identifiant d'opérateur attendu")
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkCommunes(ctx, st, splitList(*add)); err != nil {
		return err
	}
	return st.UpdateHub(ctx, cliActor(env), pos[0], splitList(*add), splitList(*remove))
}

func cmdHubShow(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "hub show", "ID", `Affiche un opérateur et ses communes adhérentes (JSON).`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un identifiant d'opérateur attendu")
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	h, err := st.Hub(ctx, pos[0])
	if err != nil {
		return err
	}
	return json.NewEncoder(env.Stdout).Encode(h)
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, splitList(v)...); return nil }

func cmdTokenCreate(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "token create", "--role hub|townhall|auditor|admin --name QUI [--hub ID] [--commune INSEE]... [--expires DATE] [--email ADRESSE]", `
Crée un jeton d'accès et l'imprime seul sur la sortie standard, pour
TOKEN=$(etatcivil token create …). Seule une empreinte HMAC-SHA-256 du
secret est conservée : le jeton ne peut plus être réaffiché.
  hub       : un opérateur (--hub), voit les communes adhérentes ;
  townhall  : une mairie (--commune, répétable), voit ses communes ;
  auditor   : lit tout, chaque lecture est journalisée ;
  admin     : administre.
Avec --email, les pages web envoient à cette adresse un lien de connexion
à usage unique (ETATCIVIL_SMTP_ADDR configuré).`)
	role := fs.String("role", "", "rôle du jeton")
	email := fs.String("email", "", "adresse où envoyer les liens de connexion des pages web")
	name := fs.String("name", "", "personne ou système qui détient le jeton (obligatoire)")
	hub := fs.String("hub", "", "opérateur (rôle hub)")
	var communes stringList
	fs.Var(&communes, "commune", "code INSEE (rôle townhall), répétable")
	expires := fs.String("expires", "", "date d'expiration (AAAA-MM-JJ ou RFC 3339)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if !slices.Contains(auth.Roles, auth.Role(*role)) {
		return usagef("--role doit valoir hub, townhall, auditor ou admin")
	}
	if strings.TrimSpace(*name) == "" {
		return usagef("--name est obligatoire : il nomme la personne ou le système qui détient le jeton")
	}
	if (*role == "hub") != (*hub != "") {
		return usagef("--hub est obligatoire pour le rôle hub, et réservé à ce rôle")
	}
	if (*role == "townhall") != (len(communes) > 0) {
		return usagef("--commune est obligatoire pour le rôle townhall, et réservé à ce rôle")
	}
	var exp *time.Time
	if *expires != "" {
		t, err := time.Parse(time.RFC3339, *expires)
		if err != nil {
			t, err = time.ParseInLocation("2006-01-02", *expires, time.Local)
		}
		if err != nil {
			return usagef("--expires %q : date AAAA-MM-JJ ou RFC 3339 attendue", *expires)
		}
		if !t.After(time.Now()) {
			return usagef("--expires est dans le passé")
		}
		exp = &t
	}
	c, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := c.RequireServer(); err != nil {
		return err
	}
	if err := checkCommunes(ctx, st, communes); err != nil {
		return err
	}
	h, err := auth.NewHasher(c.TokenPepper)
	if err != nil {
		return err
	}
	id, text, hash := h.New()
	err = st.CreateToken(ctx, cliActor(env), store.Token{ID: id, Hash: hash, Role: *role, Name: *name, HubID: *hub, Communes: communes, ExpiresAt: exp})
	if err != nil {
		return err
	}
	if *email != "" {
		if err := st.SetTokenEmail(ctx, cliActor(env), id, *email); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.Stderr, "jeton %s créé (rôle %s, %s)\n", id, *role, *name)
	fmt.Fprintln(env.Stdout, text)
	return nil
}

func cmdTokenList(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "token list", "[--json]", `Liste les jetons (jamais leur secret).`)
	asJSON := fs.Bool("json", false, "sortie JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.Tokens(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(env.Stdout).Encode(list)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRÔLE\tNOM\tPÉRIMÈTRE\tCRÉÉ\tEXPIRE\tÉTAT")
	for _, t := range list {
		scope := t.HubID + strings.Join(t.Communes, ",")
		exp, state := "-", "actif"
		if t.ExpiresAt != nil {
			exp = t.ExpiresAt.Format("2006-01-02")
			if !t.ExpiresAt.After(time.Now()) {
				state = "expiré"
			}
		}
		if t.RevokedAt != nil {
			state = "révoqué"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, t.Name, scope, t.CreatedAt.Format("2006-01-02"), exp, state)
	}
	return tw.Flush()
}

func cmdTokenRevoke(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "token revoke", "ID", `Révoque un jeton : il est refusé (401) dès la requête suivante.`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("un identifiant de jeton attendu (colonne ID de « token list »)")
	}
	id := pos[0]
	if tid, _, ok := auth.Parse(id); ok {
		id = tid // the whole token was given: keep its id only
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.RevokeToken(ctx, cliActor(env), id)
}

func cmdConfig(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "config", "", `Affiche la configuration effective (variables ETATCIVIL_*), secrets masqués.`)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig()
	if err != nil {
		return err
	}
	for _, l := range c.Redacted() {
		fmt.Fprintln(env.Stdout, l)
	}
	return nil
}

func cmdPDFCheck(ctx context.Context, env *Env, args []string) error {
	code := pdfcheck.ChildMain(args, env.Stdin, env.Stdout)
	if code != 0 {
		return exitError{code, errors.New("contrôle PDF en échec")}
	}
	return nil
}

func cmdHubSetSeal(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "hub set-seal", "ID --cert FICHIER --key FICHIER|fichier.p12", `
Donne à un opérateur son propre cachet (ou le renouvelle) : certificat
(PEM, chaîne complète) et clé privée (PEM, ou fichier PKCS#12 .p12/.pfx
dont le mot de passe est ETATCIVIL_SEAL_P12_PASSWORD). La clé reste un
fichier du serveur : la base n'en garde que le chemin. Sans cachet propre,
un opérateur est scellé avec le cachet par défaut (ETATCIVIL_SEAL_CERT,
ETATCIVIL_SEAL_KEY). Le certificat utilisé est enregistré sur chaque version.`)
	cert := fs.String("cert", "", "certificat du cachet (PEM) ; facultatif avec un .p12")
	key := fs.String("key", "", "clé privée (PEM), fichier PKCS#12, ou clé d'un HSM : pkcs11:token=…;object=…?module-path=…&pin-source=file:/chemin")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *key == "" {
		return usagef("un identifiant d'opérateur et --key sont obligatoires")
	}
	c, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	keyPath := *key
	if strings.HasPrefix(keyPath, "pkcs11:") {
		// The database keeps the key's reference: a PIN goes in a file
		// (pin-source), never in the URI.
		if strings.Contains(keyPath, "pin-value=") {
			return usagef("--key pkcs11:… : donnez le code PIN par pin-source=file:/chemin, jamais par pin-value (la référence est enregistrée)")
		}
	} else if keyPath, err = filepath.Abs(*key); err != nil {
		return err
	}
	// Load it now: a seal that cannot sign is refused here, not at 3 a.m.
	k, err := ingest.LoadKey(*cert, keyPath, c.SealP12Password)
	if err != nil {
		return err
	}
	var pemChain []byte
	for _, crt := range k.Chain {
		pemChain = append(pemChain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: crt.Raw})...)
	}
	sum := sha256.Sum256(k.Certificate().Raw)
	if err := st.SetHubSeal(ctx, cliActor(env), pos[0], store.HubSeal{CertPEM: string(pemChain), KeyRef: keyPath}, hex.EncodeToString(sum[:])); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "cachet de %s : %s (valide jusqu'au %s)\n", pos[0], k.Certificate().Subject, k.Certificate().NotAfter.Format("2006-01-02"))
	return nil
}

func cmdHubSetLevel(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "hub set-level", "ID B-B|B-T|B-LT|B-LTA", `
Fixe le niveau PAdES des prochains cachets d'un opérateur.
  B-B    cachet seul, sans horodatage ;
  B-T    plus un horodatage RFC 3161 de l'autorité ETATCIVIL_TSA_URL ;
  B-LT   (par défaut) plus les données de validation (certificats,
         réponses OCSP ou listes de révocation) des chaînes du cachet et de
         l'autorité d'horodatage, recueillies au scellement ;
  B-LTA  plus un horodatage de document sur le tout.
Tant que l'autorité d'horodatage ou les services de révocation ne
répondent pas, les actes attendent (tsa_unavailable,
revocation_unavailable) : ils ne sont jamais archivés à un niveau
inférieur.`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || !slices.Contains([]string{"B-B", "B-T", "B-LT", "B-LTA"}, pos[1]) {
		return usagef("un identifiant d'opérateur et un niveau (B-B, B-T, B-LT ou B-LTA) sont attendus")
	}
	_, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.SetHubSealLevel(ctx, cliActor(env), pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "niveau des cachets de %s : %s\n", pos[0], pos[1])
	return nil
}
