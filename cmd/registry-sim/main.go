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
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage : registry-sim [--addr HÔTE:PORT]\n\nSimulateur des registres centraux (INSEE, archives), avec injection de pannes :\nPOST /_sim/faults, GET /_sim/stats, POST /_sim/reset, GET /_sim/messages.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: registrysim.New().Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		<-c
		_ = srv.Close()
	}()
	log.Printf("registry-sim à l'écoute sur http://%s", ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
