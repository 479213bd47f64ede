// Package cli is etatcivil's command line: main only calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes (INTERFACE.md).
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitRefused  = 3
	ExitTimedOut = 4
)

// usageError is a command-line mistake: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

type command struct {
	name    string // may hold a space: "hub create"
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// Env is what commands read and write.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

func commands() []command {
	return []command{
		{"serve", "sert l'API HTTP, les pages et les workers", cmdServe},
		{"worker", "exécute les workers seuls (autant de processus que voulu)", cmdWorker},
		{"migrate", "applique les migrations d'etatcivil et de River", cmdMigrate},
		{"s3 check", "vérifie le seau d'archive (versioning, object lock, SHA-256, If-None-Match, rétention)", cmdS3Check},
		{"s3 init", "crée les seaux d'archive (object lock) et de dépôt s'ils manquent", cmdS3Init},
		{"cog import", "charge un instantané du Code officiel géographique", cmdCOGImport},
		{"hub create", "crée un opérateur et ses communes adhérentes", cmdHubCreate},
		{"hub update", "ajoute ou retire des communes adhérentes", cmdHubUpdate},
		{"hub set-seal", "donne à un opérateur son cachet (certificat et clé)", cmdHubSetSeal},
		{"hub set-level", "fixe le niveau PAdES des cachets d'un opérateur (B-B, B-T, B-LT, B-LTA)", cmdHubSetLevel},
		{"hub show", "affiche un opérateur et ses communes", cmdHubShow},
		{"token create", "crée un jeton d'accès (imprimé seul sur la sortie standard)", cmdTokenCreate},
		{"token list", "liste les jetons", cmdTokenList},
		{"token revoke", "révoque un jeton", cmdTokenRevoke},
		{"config", "affiche la configuration effective, secrets masqués", cmdConfig},
		{"upload", "envoie un lot (manifeste et PDF) au serveur", cmdUpload},
		{"batch show", "affiche un lot et l'état de chaque entrée", cmdBatchShow},
		{"batch receipt", "télécharge le récépissé de dépôt scellé d'un lot", cmdBatchReceipt},
		{"act fetch", "télécharge et vérifie le PDF scellé d'un acte archivé", cmdActFetch},
		{"act verify", "rapport d'intégrité d'un acte archivé (niveau du cachet, horodatage, verrou)", cmdActVerify},
		{"audit verify", "vérifie la chaîne du journal d'audit et ses points d'ancrage", cmdAuditVerify},
		{"audit checkpoint", "ancre le journal d'audit : point scellé, horodaté, écrit dans le seau", cmdAuditCheckpoint},
		{"audit log", "qui a lu un acte, ou qu'a lu un jeton (journal d'audit)", cmdAuditLog},
		{"audit export", "exporte les actes d'une commune et d'une année, vérifiables hors ligne", cmdAuditExport},
		{"audit check", "vérifie un export hors ligne, sans serveur", cmdAuditCheck},
		{"fixity report", "bilan des relectures de fixité des archives", cmdFixityReport},
		{"fixity run", "relit tout de suite chaque version archivée (exploitation)", cmdFixityRun},
		{"retimestamp run", "passe de la campagne de ré-horodatage des archives (exploitation)", cmdRetimestampRun},
		{"acts list", "liste les actes", cmdActsList},
		{"act show", "affiche un acte, ses versions et son historique", cmdActShow},
		{"acts retry", "relance les actes bloqués (stalled)", cmdActsRetry},
		{"transmissions list", "liste les transmissions aux registres et leur état", cmdTransmissionsList},
		{"transmissions retry", "relance des transmissions non acquittées", cmdTransmissionsRetry},
		{"transmissions flush", "constitue tout de suite les lots en attente de cadence", cmdTransmissionsFlush},
		{"transmissions backfill", "applique la règle d'un registre aux actes déjà archivés", cmdTransmissionsBackfill},
		{"transmissions stats", "par registre : comptes par état, plus ancienne due, retards", cmdTransmissionsStats},
		{"webhook add", "enregistre un webhook (événements signés HMAC d'un opérateur ou d'une commune)", cmdWebhookAdd},
		{"webhook list", "liste les webhooks", cmdWebhookList},
		{"webhook remove", "supprime un webhook", cmdWebhookRemove},
		{"digest add", "abonne une adresse au résumé quotidien par courriel", cmdDigestAdd},
		{"digest list", "liste les abonnements au résumé quotidien", cmdDigestList},
		{"digest remove", "désabonne une adresse du résumé quotidien", cmdDigestRemove},
		{"notifications list", "liste les envois de notifications et leur état", cmdNotificationsList},
		{"notifications retry", "relance des envois de notifications abandonnés", cmdNotificationsRetry},
		{"sample generate", "génère un lot d'exemple (actes fictifs)", cmdSampleGenerate},
		{"dev", "outils de la pile locale (ports, wait, expect)", cmdDev},
		{"pdfcheck", "contrôle un PDF lu sur l'entrée standard (processus enfant du serveur)", cmdPDFCheck},
	}
}

// Main runs the command line and returns the exit code.
func Main(args []string) int {
	env := &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, env, args)
}

// Run dispatches args (without the program name).
func Run(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		usage(env.Stderr)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	var cmd *command
	rest := args
	for _, c := range commands() {
		parts := strings.Fields(c.name)
		if len(args) >= len(parts) && strings.Join(args[:len(parts)], " ") == c.name {
			c := c
			cmd, rest = &c, args[len(parts):]
			break
		}
	}
	if cmd == nil {
		fmt.Fprintf(env.Stderr, "etatcivil: commande inconnue %q\n\n", strings.Join(args, " "))
		usage(env.Stderr)
		return ExitUsage
	}
	err := cmd.run(ctx, env, rest)
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.Stderr, "etatcivil %s: %s\n(« etatcivil %s --help » pour l'aide)\n", cmd.name, ue.msg, cmd.name)
		return ExitUsage
	}
	fmt.Fprintf(env.Stderr, "etatcivil %s: %v\n", cmd.name, err)
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitError
}

func usage(w io.Writer) {
	fmt.Fprint(w, `etatcivil — dématérialisation des actes d'état civil

Usage : etatcivil COMMANDE [options]

`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Les commandes côté client (upload, batch, acts, act) lisent ETATCIVIL_SERVER
et ETATCIVIL_TOKEN ; les commandes côté serveur lisent la configuration
ETATCIVIL_* (voir « etatcivil config » et le README).
Codes de sortie : 0 ok, 1 erreur, 2 usage, 3 lot refusé, 4 attente expirée.
« etatcivil COMMANDE --help » détaille chaque commande.
`)
}

// flags builds a FlagSet whose --help prints the command's usage and
// description in French.
func flags(env *Env, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage : etatcivil %s %s\n\n%s\n", name, synopsis, strings.TrimSpace(description))
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(env.Stderr, "\nOptions :\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses args, allowing flags after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// logger is the servers' log: JSON lines (slog), or slog's text format
// with ETATCIVIL_LOG_FORMAT=text (easier to read in a terminal).
func logger(w io.Writer) *slog.Logger {
	opt := &slog.HandlerOptions{Level: slog.LevelInfo}
	if os.Getenv("ETATCIVIL_LOG_FORMAT") == "text" {
		return slog.New(slog.NewTextHandler(w, opt))
	}
	return slog.New(slog.NewJSONHandler(w, opt))
}
