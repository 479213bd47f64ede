// Command registry-sim simulates the central registries over HTTP, with
// fault injection, for tests and the local stack.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/etatcivil/etatcivil/internal/registrysim"
)

func main() {
	addr := flag.String("addr", envOr("REGISTRY_SIM_ADDR", "127.0.0.1:8090"), "adresse d'écoute")
	state := flag.String("state", "", "fichier où le simulateur garde sa mémoire (messages acceptés, clés, compteurs) entre deux démarrages ; vide : rien n'est gardé")
	var f registrysim.Faults
	flag.Float64Var(&f.ErrorRate, "error-rate", 0, "part des requêtes répondues 503 (0–1)")
	flag.IntVar(&f.LatencyMsMax, "latency-ms-max", 0, "délai aléatoire de 0 à N ms par requête")
	flag.Float64Var(&f.DropRate, "drop-rate", 0, "part des connexions fermées sans réponse (0–1)")
	flag.Float64Var(&f.LostAckRate, "lost-ack-rate", 0, "part des messages acceptés dont l'accusé est perdu pour cette tentative (0–1)")
	flag.Float64Var(&f.RefuseRate, "refuse-rate", 0, "part des messages refusés avec un motif (0–1)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, `Usage : registry-sim [--addr HÔTE:PORT] [--state FICHIER] [pannes]

Simulateur des registres centraux, serveur HTTP réel :
  POST /http/{registre}      connecteur JSON générique (un acte par message)
  POST /insee/{registre}     lots INSEE (XML urn:etatcivil:lot:1, validé contre le schéma)
  POST /archives/{registre}  versements SEDA 2.3 (ZIP, validé contre les schémas officiels)
Clés d'idempotence honorées : un renvoi reçoit l'accusé d'origine (resends),
un même contenu accepté sous une autre clé est compté (double_accepted).
Pilotage : POST /_sim/faults (mêmes noms que les options, en JSON :
error_rate, latency_ms_max, drop_rate, lost_ack_rate, refuse_rate),
GET /_sim/stats, POST /_sim/reset, GET /_sim/messages?registry=ID&limit=N.

`)
		flag.PrintDefaults()
	}
	flag.Parse()
	sim, err := registrysim.Load(*state)
	if *state == "" {
		sim = registrysim.New()
	} else if err != nil {
		log.Fatal(err)
	}
	if err := sim.SetFaults(f); err != nil {
		log.Fatalf("pannes : %v", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-c:
				_ = srv.Close()
				if *state != "" {
					if err := sim.Save(*state); err != nil {
						log.Printf("état non enregistré : %v", err)
					}
				}
				close(done)
				return
			case <-tick.C:
				if *state != "" {
					if err := sim.Save(*state); err != nil {
						log.Printf("état non enregistré : %v", err)
					}
				}
			}
		}
	}()
	log.Printf("registry-sim à l'écoute sur http://%s (pannes : %+v)", ln.Addr(), f)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
	<-done
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
