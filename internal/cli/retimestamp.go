package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/server"
)

func cmdRetimestampRun(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "retimestamp run", "[--limit N] [--json]", `
Lance tout de suite une passe de la campagne de ré-horodatage, comme le
fait le serveur chaque jour (ETATCIVIL_RETIMESTAMP_EVERY) : pour les
actes dont le dernier horodatage a été fait par une autorité dont le
certificat expire dans moins de ETATCIVIL_RETIMESTAMP_MARGIN (1 an par
défaut), ou avec un algorithme de ETATCIVIL_RETIMESTAMP_WEAK, ajoute les
données de validation de toutes les chaînes du fichier et un nouvel
horodatage de document (PAdES B-LTA), et archive le résultat comme
nouvelle version (motif « retimestamp ») sous verrou, à côté de la
précédente, qui reste consultable. Rien n'est retransmis aux registres.
Une passe regarde au plus --limit actes ; relancée, elle reprend ce qui
reste. Commande d'exploitation : elle lit la base et le seau directement.
Sort avec le code 1 si un acte n'a pu être ré-horodaté.`)
	limit := fs.Int("limit", 0, "actes regardés au plus (ETATCIVIL_RETIMESTAMP_BATCH par défaut)")
	asJSON := fs.Bool("json", false, "sortie JSON : {examined, extended, not_due, failed}")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	bl, err := blob.New(server.BlobConfig(c))
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(env.Stderr, nil))
	deps, err := server.Deps(c, st, bl, logger, false)
	if err != nil {
		return err
	}
	campaign, err := server.Campaign(c, st, bl, deps, logger)
	if err != nil {
		return err
	}
	if *limit > 0 {
		campaign.Batch = *limit
	}
	t, err := campaign.Run(ctx)
	if *asJSON {
		if jerr := json.NewEncoder(env.Stdout).Encode(t); jerr != nil {
			return jerr
		}
	} else {
		fmt.Fprintf(env.Stdout, "%d acte(s) regardé(s) : %d ré-horodaté(s), %d pas encore dû(s), %d en échec\n", t.Examined, t.Extended, t.NotDue, t.Failed)
	}
	if err != nil {
		return err
	}
	if t.Failed > 0 {
		return exitError{code: 1, err: fmt.Errorf("%d acte(s) n'ont pu être ré-horodatés (voir le journal)", t.Failed)}
	}
	return nil
}
