// Command etatcivil-bench measures the pipeline beside its floor and the
// standalone tools (make bench). It runs against the local stack of make
// up, whose environment (.local/env) it reads:
//
//	. .local/env && BENCH_ACTS=2000 bin/etatcivil-bench
//
// It prints a Markdown table and writes .local/bench/latest.json.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/etatcivil/etatcivil/internal/bench"
	"github.com/etatcivil/etatcivil/internal/blob"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help") {
		fmt.Fprint(os.Stderr, `Usage : . .local/env && [BENCH_ACTS=N] [BENCH_PARALLEL=P] bin/etatcivil-bench

Mesure, sur la pile locale de « make up », le pipeline (le vrai client,
la vraie API, jusqu'à « archived » puis « acknowledged »), son plancher
(les mêmes fonctions et appels S3 sans PostgreSQL ni River) et les outils
autonomes (qpdf --check, openssl cms -sign, curl --aws-sigv4 avec
xargs -P), puis imprime un tableau Markdown et écrit les mêmes chiffres
dans .local/bench/latest.json. BENCH_ACTS : 2000 par défaut.

Côté lecture : BENCH_READ_ACTS actes (1 000 000 par défaut) chargés une
fois dans la base etatcivil_bench_read (gardée d'un passage à l'autre),
servis par un « etatcivil serve » à part et lus par BENCH_READ_CLIENTS
clients (50) pendant BENCH_READ_SECONDS secondes (30), au rythme de
BENCH_READ_RATE requêtes par seconde en tout (500 ; « max » : chaque
client aussi vite qu'il peut). La latence d'une requête court depuis
l'instant où elle était due.

BENCH_PARTS limite le passage à certaines parties, séparées par des
virgules : pipeline (avec la montée en charge), floor, tools, read.
Les cachets du passage mesuré sont au niveau BENCH_LEVEL (B-B, celui de
l'objectif), puis un second passage au niveau BENCH_LEVEL_ALSO (B-T avec
l'horodatage local ; « none » : aucun) ; le niveau de l'opérateur
BENCH_HUB (smica) est rétabli à la fin.
BENCH_READ_PROFILE=F écrit dans F le profil CPU du serveur de lecture
(go tool pprof bin/etatcivil F).
`)
		return
	}
	env := func(k string) string { return os.Getenv(k) }
	need := []string{"ETATCIVIL_SERVER", "ETATCIVIL_HUB_TOKEN", "ETATCIVIL_DATABASE_URL", "ETATCIVIL_S3_ENDPOINT",
		"ETATCIVIL_SEAL_CERT", "ETATCIVIL_SEAL_KEY", "ETATCIVIL_TSA_URL", "ETATCIVIL_TRUST_ROOTS"}
	for _, k := range need {
		if env(k) == "" {
			fmt.Fprintf(os.Stderr, "etatcivil-bench : %s manque ; lancez « make up » puis « . .local/env »\n", k)
			os.Exit(2)
		}
	}
	acts, _ := strconv.Atoi(env("BENCH_ACTS"))
	if acts <= 0 {
		acts = 2000
	}
	parallel, _ := strconv.Atoi(env("BENCH_PARALLEL"))
	num := func(k string, def int) int {
		if v, err := strconv.Atoi(env(k)); err == nil && v > 0 {
			return v
		}
		return def
	}
	var parts []string
	for p := range strings.SplitSeq(env("BENCH_PARTS"), ",") {
		switch p = strings.TrimSpace(p); p {
		case "":
		case "pipeline", "floor", "tools", "read":
			parts = append(parts, p)
		default:
			fmt.Fprintf(os.Stderr, "etatcivil-bench : BENCH_PARTS : %q inconnue (pipeline, floor, tools, read)\n", p)
			os.Exit(2)
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etatcivil-bench :", err)
		os.Exit(1)
	}
	ep := env("ETATCIVIL_S3_ENDPOINT")
	secure := strings.HasPrefix(ep, "https://")
	ep = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(ep, "https://"), "http://"), "/")
	root := filepath.Dir(filepath.Dir(self))
	cfg := bench.Config{
		Acts: acts, Dir: filepath.Join(root, ".local", "bench"), Server: env("ETATCIVIL_SERVER"), HubToken: env("ETATCIVIL_HUB_TOKEN"),
		AdminToken:  env("ETATCIVIL_TOKEN"),
		DatabaseURL: env("ETATCIVIL_DATABASE_URL"),
		S3: blob.Config{Endpoint: ep, Secure: secure, Region: env("ETATCIVIL_S3_REGION"), AccessKey: env("ETATCIVIL_S3_ACCESS_KEY"),
			SecretKey: env("ETATCIVIL_S3_SECRET_KEY"), Archive: env("ETATCIVIL_S3_BUCKET"), Staging: env("ETATCIVIL_S3_STAGING_BUCKET")},
		Exe: filepath.Join(filepath.Dir(self), "etatcivil"), SealCert: env("ETATCIVIL_SEAL_CERT"), SealKey: env("ETATCIVIL_SEAL_KEY"),
		TSAURL: env("ETATCIVIL_TSA_URL"), TrustRoots: env("ETATCIVIL_TRUST_ROOTS"), Parallel: parallel, Out: os.Stdout,
		ReadActs: num("BENCH_READ_ACTS", 1_000_000), ReadClients: num("BENCH_READ_CLIENTS", 50), ReadRate: readRate(env("BENCH_READ_RATE")),
		ReadDuration: time.Duration(num("BENCH_READ_SECONDS", 30)) * time.Second, Parts: parts,
		ReadProfile: env("BENCH_READ_PROFILE"),
		Level:       or(env("BENCH_LEVEL"), "B-B"), LevelAlso: or(env("BENCH_LEVEL_ALSO"), "B-T"), Hub: or(env("BENCH_HUB"), "smica"),
	}
	if cfg.LevelAlso == "none" {
		cfg.LevelAlso = ""
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := bench.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "etatcivil-bench :", err)
		os.Exit(1)
	}
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// readRate is BENCH_READ_RATE: requests per second in all, 500 by
// default, 0 for "max".
func readRate(v string) int {
	if v == "max" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return n
	}
	return 500
}
