package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/etatcivil/etatcivil/internal/revocation"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// cmdDev holds the small tools the Makefile's local stack uses, so that it
// needs nothing but this binary and a shell: free ports, waiting for a
// URL, and checking a demo batch against its expected outcome.
func cmdDev(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("dev ports N | dev wait URL [DURÉE] | dev expect DOSSIER LOT.json | dev pki DOSSIER [URL] | dev tsa DOSSIER HÔTE:PORT")
	}
	switch args[0] {
	case "ports":
		n := 1
		if len(args) > 1 {
			n, _ = strconv.Atoi(args[1])
		}
		// Hold every listener until all are chosen, so the ports differ.
		var lns []net.Listener
		defer func() {
			for _, l := range lns {
				l.Close()
			}
		}()
		for range n {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			lns = append(lns, l)
			fmt.Fprintln(env.Stdout, l.Addr().(*net.TCPAddr).Port)
		}
		return nil
	case "wait":
		if len(args) < 2 {
			return usagef("dev wait URL [DURÉE]")
		}
		d := 60 * time.Second
		if len(args) > 2 {
			var err error
			if d, err = time.ParseDuration(args[2]); err != nil {
				return usagef("durée %q", args[2])
			}
		}
		deadline := time.Now().Add(d)
		for {
			resp, err := http.Get(args[1])
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode < 500 {
					return nil
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s ne répond pas après %s", args[1], d)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	case "tsa":
		// A local RFC 3161 time-stamp authority over loopback HTTP, with
		// the development PKI of DOSSIER (make up): for B-T seals.
		if len(args) != 3 {
			return usagef("dev tsa DOSSIER HÔTE:PORT")
		}
		// The same address serves the development OCSP responder and CRLs
		// (/ocsp, /crl/NAME.crl) the development certificates name, for
		// B-LT seals.
		base := "http://" + args[2]
		srv, err := tsa.DevTSAWithRevocation(args[1], base)
		if err != nil {
			return err
		}
		resp, err := devResponder(args[1])
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/", srv)
		mux.Handle("/ocsp", resp)
		mux.Handle("/ocsp/", resp)
		mux.Handle("/crl/", resp)
		hs := &http.Server{Addr: args[2], Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			<-ctx.Done()
			_ = hs.Close()
		}()
		fmt.Fprintf(env.Stderr, "autorité d'horodatage de développement sur http://%s\n", args[2])
		if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	case "pki":
		if len(args) != 2 && len(args) != 3 {
			return usagef("dev pki DOSSIER [URL du service de révocation]")
		}
		if err := os.MkdirAll(args[1], 0o700); err != nil {
			return err
		}
		base := ""
		if len(args) == 3 {
			base = args[2]
		}
		return seal.DevCAWithRevocation(args[1], base)
	case "expect":
		if len(args) != 3 {
			return usagef("dev expect DOSSIER LOT.json")
		}
		return expect(env, args[1], args[2])
	}
	return usagef("sous-commande dev inconnue %q", args[0])
}

// expect prints a summary table of a batch against DIR/expected.json and
// fails unless every entry reached its expected state and reason.
func expect(env *Env, dir, batchFile string) error {
	var want []struct {
		File   string  `json:"file"`
		State  string  `json:"state"`
		Reason *string `json:"reason"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &want); err != nil {
		return fmt.Errorf("expected.json: %w", err)
	}
	var b store.BatchView
	data, err = os.ReadFile(batchFile)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return fmt.Errorf("%s: %w", batchFile, err)
	}
	if len(b.Acts) != len(want) {
		return fmt.Errorf("%d entrées dans le lot, %d attendues", len(b.Acts), len(want))
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FICHIER\tÉTAT\tMOTIF\tATTENDU\tOK\tMESSAGE")
	bad := 0
	for i, e := range b.Acts {
		w := want[i]
		ok := e.File == w.File && e.State == w.State && deref(e.Reason) == deref(w.Reason)
		mark := "oui"
		if !ok {
			mark, bad = "NON", bad+1
		}
		exp := w.State
		if w.Reason != nil {
			exp += " " + *w.Reason
		}
		msg := deref(e.Message)
		if len([]rune(msg)) > 70 {
			msg = string([]rune(msg)[:70]) + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.File, e.State, deref(e.Reason), exp, mark, msg)
	}
	tw.Flush()
	if bad > 0 {
		return fmt.Errorf("%d entrée(s) hors de l'état attendu", bad)
	}
	fmt.Fprintf(env.Stdout, "toutes les %d entrées sont dans l'état attendu\n", len(want))
	return nil
}

// devResponder answers OCSP and CRL requests for the development PKI of
// dir: the seal's authorities when dev pki was given a revocation URL,
// the TSA's root always (dev tsa names it).
func devResponder(dir string) (*revocation.Responder, error) {
	auths, err := tsa.DevAuthorities(dir)
	if err != nil {
		return nil, err
	}
	if sealAuths, err := seal.DevAuthorities(dir); err == nil {
		auths = append(auths, sealAuths...)
	}
	return &revocation.Responder{Authorities: auths}, nil
}
