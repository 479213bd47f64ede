// Package server wires etatcivil's long-running processes: "serve" (API,
// pages and, by default, workers) and "worker" (workers only), with the
// operations listener and a graceful shutdown.
package server

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"riverqueue.com/riverui"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auditlog"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/cog"
	"github.com/etatcivil/etatcivil/internal/config"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/notify"
	"github.com/etatcivil/etatcivil/internal/pdfcheck"
	"github.com/etatcivil/etatcivil/internal/registry"
	"github.com/etatcivil/etatcivil/internal/retimestamp"
	"github.com/etatcivil/etatcivil/internal/revocation"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/tsa"
	"github.com/etatcivil/etatcivil/internal/web"
)

// Options choose what a process runs.
type Options struct {
	API     bool // serve the HTTP API
	Workers bool // run River workers
	// Ready, if set, is called with the API's base URL once it listens.
	Ready func(apiURL, opsURL string)
	// Mail sends e-mails (sign-in links); nil: none.
	Mail web.Mailer
}

// BlobConfig turns the configuration into the blob package's.
func BlobConfig(c *config.Config) blob.Config {
	return blob.Config{Endpoint: c.S3Endpoint, Region: c.S3Region, AccessKey: c.S3AccessKey, SecretKey: c.S3SecretKey,
		Secure: c.S3Secure, Archive: c.S3Bucket, Staging: c.S3StagingBucket}
}

// Deps builds the workers' dependencies from the configuration.
func Deps(c *config.Config, st *store.Store, bl *blob.Store, logger *slog.Logger, workers bool) (*ingest.Deps, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("chemin de l'exécutable: %w", err)
	}
	lim := pdfcheck.DefaultLimits()
	lim.MaxFileSize = c.MaxFileSize
	lim.MaxPages = c.MaxPages
	n := 0
	if workers {
		n = c.Workers
	}
	keys := &ingest.KeyRing{Store: st, P12Password: c.SealP12Password}
	if c.SealKey != "" {
		k, err := ingest.LoadKey(c.SealCert, c.SealKey, c.SealP12Password)
		if err != nil {
			return nil, fmt.Errorf("cachet par défaut (ETATCIVIL_SEAL_CERT/ETATCIVIL_SEAL_KEY): %w", err)
		}
		keys.Default = k
	}
	var stamp seal.Timestamper
	if c.TSAURL != "" {
		client := &tsa.Client{URL: c.TSAURL, Username: c.TSAUsername, Password: c.TSAPassword, Timeout: 30 * time.Second}
		stamp = func(ctx context.Context, imprint []byte) ([]byte, error) {
			return client.Timestamp(ctx, imprint, crypto.SHA256)
		}
	}
	roots, err := Roots(c)
	if err != nil {
		return nil, fmt.Errorf("ETATCIVIL_TRUST_ROOTS: %w", err)
	}
	// One fetcher per process: its cache serves every act sealed with the
	// same certificates until their answers' next update (at most an hour).
	validation := &seal.Validation{Roots: roots, Collect: (&revocation.Fetcher{}).Collect}
	return &ingest.Deps{
		Timestamp: stamp, Validation: validation,
		Store: st, Blob: bl, Logger: logger, PDFCheckExe: exe, Limits: lim,
		Isolate:     pdfcheck.IsolateOptions{MemoryLimit: c.PDFCheckMemory, Timeout: c.PDFCheckTimeout},
		RetryBudget: c.InfraRetryBudget, BackoffMax: c.InfraBackoffMax, Workers: n,
		Sealer: seal.New(), Keys: keys, RetainUntil: c.Retention.AddTo, RejectedRetentionDays: c.RejectedRetentionDays,
		RescueAfter: c.RescueAfter, StepTimeout: c.StepTimeout,
	}, nil
}

// Campaign builds the re-timestamping campaign from the configuration.
func Campaign(c *config.Config, st *store.Store, bl *blob.Store, deps *ingest.Deps, logger *slog.Logger) (*retimestamp.Campaign, error) {
	var weak []crypto.Hash
	for _, name := range strings.Split(c.RetimestampWeak, ",") {
		name = strings.ToUpper(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		found := false
		for _, h := range []crypto.Hash{crypto.MD5, crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			if h.String() == name {
				weak, found = append(weak, h), true
			}
		}
		if !found {
			return nil, fmt.Errorf("ETATCIVIL_RETIMESTAMP_WEAK : algorithme inconnu %q (MD5, SHA-1, SHA-224, SHA-256, SHA-384, SHA-512)", name)
		}
	}
	return &retimestamp.Campaign{Store: st, Blob: bl, Validation: deps.Validation, Timestamp: deps.Timestamp,
		Margin: c.RetimestampMargin.Span(time.Now()), Weak: weak, Batch: c.RetimestampBatch, Every: c.RetimestampEvery,
		RetainUntil: c.Retention.AddTo, Logger: logger}, nil
}

// Roots loads ETATCIVIL_TRUST_ROOTS (nil when unset: the system's roots).
func Roots(c *config.Config) (*x509.CertPool, error) {
	if c.TrustRoots == "" {
		return nil, nil
	}
	return api.LoadRoots(strings.Split(c.TrustRoots, ":"))
}

// Audit builds the audit checkpoints' anchor (sealed with the default
// seal, timestamped by the TSA) and the fixity auditor from the
// configuration.
func Audit(c *config.Config, st *store.Store, bl *blob.Store, deps *ingest.Deps, roots *x509.CertPool) (*auditlog.Anchor, *auditlog.Fixity) {
	anchor := &auditlog.Anchor{Store: st, Blob: bl, Key: deps.Keys.Default, Timestamp: deps.Timestamp, Roots: roots,
		RetainUntil: c.Retention.AddTo}
	fixity := &auditlog.Fixity{Store: st, Blob: bl, Period: c.FixityPeriod.Span(time.Now()), Bandwidth: c.FixityBandwidth}
	return anchor, fixity
}

// LoadCommunes reads the COG snapshot imported in the database.
func LoadCommunes(ctx context.Context, st *store.Store) (*cog.Snapshot, error) {
	date, rows, err := st.Communes(ctx)
	if err != nil {
		return nil, fmt.Errorf("lecture du COG: %w", err)
	}
	if date == "" {
		return nil, errors.New("aucun COG importé: lancez « etatcivil cog import internal/cog/data/cog.csv.gz » (make up le fait)")
	}
	return cog.NewSnapshot(date, rows), nil
}

// Run runs until ctx is cancelled (SIGTERM), then stops accepting work,
// lets running jobs finish within the shutdown timeout, and returns.
func Run(ctx context.Context, c *config.Config, logger *slog.Logger, opt Options) error {
	st, err := store.Open(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	st.DashboardTTL = c.DashboardTTL
	if err := st.CheckSchema(ctx); err != nil {
		return err
	}
	bl, err := blob.New(BlobConfig(c))
	if err != nil {
		return err
	}
	if opt.API {
		// serve refuses a bucket that fails the check (INTERFACE.md).
		res, err := bl.Check(ctx, 24*time.Hour)
		if err != nil {
			return fmt.Errorf("s3 check: %w", err)
		}
		for _, r := range res {
			if !r.OK {
				return fmt.Errorf("le seau d'archive échoue au contrôle %s: %s (voir « etatcivil s3 check »)", r.Name, r.Detail)
			}
		}
	}
	deps, err := Deps(c, st, bl, logger, opt.Workers)
	if err != nil {
		return err
	}
	if snap, err := LoadCommunes(ctx, st); err == nil {
		deps.CommuneName = func(code string) string { c, _ := snap.Lookup(code); return c.Name }
	}
	deps.Routes = &registry.Routes{}
	deps.Metrics = ingest.NewSendMetrics()
	if c.RegistriesFile != "" {
		cfg, err := registry.Load(c.RegistriesFile)
		if err != nil {
			return err
		}
		deps.Routes.Set(cfg)
		go reloadOnHUP(ctx, logger, c.RegistriesFile, deps.Routes)
	}
	// Notifications (webhooks, daily digests) run on the same River client;
	// the same SMTP server sends the pages' sign-in links.
	smtp, err := notify.FromEnv()
	if err != nil {
		return err
	}
	notifier := &notify.Notifier{Store: st, SMTP: smtp, Logger: logger}
	deps.Extensions = append(deps.Extensions, notifier)
	roots, err := Roots(c)
	if err != nil {
		return err
	}
	anchor, fixity := Audit(c, st, bl, deps, roots)
	jobsExt := &auditlog.Jobs{Fixity: fixity, CheckpointEvery: c.CheckpointEvery,
		PruneReadReasons: func(ctx context.Context) (int64, error) {
			return st.PruneReadReasons(ctx, c.ReadLogRetention.SubFrom(time.Now()))
		}}
	if anchor.Key != nil {
		jobsExt.Anchor = anchor
	} else {
		logger.Warn("pas de point d'ancrage du journal d'audit : aucun cachet par défaut (ETATCIVIL_SEAL_CERT/ETATCIVIL_SEAL_KEY)")
	}
	deps.Extensions = append(deps.Extensions, jobsExt)
	campaign, err := Campaign(c, st, bl, deps, logger)
	if err != nil {
		return err
	}
	deps.Extensions = append(deps.Extensions, campaign)
	if smtp.Enabled() && opt.Mail == nil {
		opt.Mail = notifier.SendMail
	}
	jobs, err := ingest.NewClient(st.Pool, deps)
	if err != nil {
		return err
	}
	if opt.Workers {
		// Not ctx: cancelling Start's context cancels running jobs at once.
		// On SIGTERM, Stop below lets them finish within the timeout.
		if err := jobs.River.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("démarrage des workers: %w", err)
		}
	}
	metrics := api.NewMetrics()
	ops := &http.Server{Addr: c.OpsAddr, Handler: opsHandler(st, bl, metrics, deps.Metrics), ReadHeaderTimeout: 5 * time.Second}
	opsLn, err := net.Listen("tcp", c.OpsAddr)
	if err != nil {
		return fmt.Errorf("écoute %s: %w", c.OpsAddr, err)
	}

	var apiSrv *http.Server
	apiURL := ""
	if opt.API {
		pepper, err := auth.NewHasher(c.TokenPepper)
		if err != nil {
			return err
		}
		communes, err := LoadCommunes(ctx, st)
		if err != nil {
			return err
		}
		a := &api.Server{Roots: roots, Anchor: anchor, Fixity: fixity, Timestamp: deps.Timestamp,
			Store: st, Blob: bl, Jobs: jobs, Communes: communes, Logger: logger, Metrics: metrics,
			Sealer: deps.Sealer, Keys: deps.Keys,
			Auth: &auth.Authenticator{Store: st, Hasher: pepper},
			Limits: api.Limits{MaxFileSize: c.MaxFileSize, MaxManifestSize: c.MaxManifestSize,
				AuthFailuresPerMinute: c.AuthFailuresPerMinute, TrustedProxies: c.TrustedProxies},
		}
		if opt.Mail != nil && c.PublicURL == "" {
			logger.Warn("connexion par courriel désactivée : ETATCIVIL_PUBLIC_URL manque (les liens ne sont jamais construits depuis l'en-tête Host)")
		}
		pages := &web.Server{Store: st, Auth: a.Auth, API: a, Communes: communes, Logger: logger, Mail: opt.Mail, BaseURL: c.PublicURL}
		// River's web UI for admins, under the pages' sessions.
		ui, err := riverui.NewHandler(&riverui.HandlerOpts{Endpoints: riverui.NewEndpoints(jobs.River, nil), Logger: logger, Prefix: "/admin/jobs"})
		if err != nil {
			return fmt.Errorf("interface de River : %w", err)
		}
		if err := ui.Start(ctx); err != nil {
			return fmt.Errorf("interface de River : %w", err)
		}
		pages.Jobs = ui
		root := http.NewServeMux()
		root.Handle("/api/", a.Handler())
		root.Handle("/", pages.Handler())
		apiSrv = &http.Server{
			Addr: c.Addr, Handler: root,
			// Slow clients cannot hold connections: headers within 10 s,
			// a body may take long (large scans on slow links) but must
			// keep flowing, idle connections close.
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Minute,
			WriteTimeout:      30 * time.Minute,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		}
		scheme := "http"
		if c.TLSCert != "" {
			// HTTPS when a certificate is given: TLS 1.2 at least, Go's
			// cipher suites and curves (AEAD only, forward secrecy, X25519
			// first). Behind a reverse proxy that terminates TLS, leave it
			// unset (docs/operations.md). The files are re-read when they
			// change (certFiles): a renewal needs no restart.
			certs, err := newCertFiles(c.TLSCert, c.TLSKey, logger)
			if err != nil {
				return fmt.Errorf("ETATCIVIL_TLS_CERT / ETATCIVIL_TLS_KEY: %w", err)
			}
			apiSrv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
			scheme = "https"
		}
		ln, err := net.Listen("tcp", c.Addr)
		if err != nil {
			return fmt.Errorf("écoute %s: %w", c.Addr, err)
		}
		apiURL = scheme + "://" + ln.Addr().String()
		go func() {
			serve := apiSrv.Serve
			if apiSrv.TLSConfig != nil {
				serve = func(l net.Listener) error { return apiSrv.ServeTLS(l, "", "") }
			}
			if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("serveur API", "err", err)
			}
		}()
	}
	// /readyz answers only now: the API listens too, so "ready" means
	// every listener accepts connections.
	go func() { _ = ops.Serve(opsLn) }()
	logger.Info("etatcivil prêt", "api", apiURL, "ops", "http://"+opsLn.Addr().String(), "workers", opt.Workers)
	if opt.Ready != nil {
		opt.Ready(apiURL, "http://"+opsLn.Addr().String())
	}
	<-ctx.Done()
	logger.Info("arrêt demandé: plus de nouveau travail, fin des tâches en cours")
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	if apiSrv != nil {
		_ = apiSrv.Shutdown(sctx)
	}
	if opt.Workers {
		// Stop fetching, let running jobs finish; past the timeout their
		// contexts are cancelled and River puts them back for another worker.
		if err := jobs.River.Stop(sctx); err != nil {
			logger.Warn("arrêt des workers incomplet", "err", err)
			_ = jobs.River.StopAndCancel(context.Background())
		}
		jobs.CloseCheckers()
	}
	_ = ops.Shutdown(sctx)
	return nil
}

func opsHandler(st *store.Store, bl *blob.Store, m *api.Metrics, sends *ingest.SendMetrics) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(append(m.Collectors(), ingest.Collectors()...)...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	// Go's profiler, for operators (the operations listener is not the
	// API's: loopback or an internal network; docs/performance.md).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			http.Error(w, "base de données indisponible", http.StatusServiceUnavailable)
			return
		}
		if err := bl.Ping(ctx); err != nil {
			http.Error(w, "stockage S3 indisponible", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = m.WriteTo(w)
		_, _ = sends.WriteTo(w)
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		api.WriteLedgerMetrics(ctx, w, st)
		if mfs, err := reg.Gather(); err == nil {
			enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
			for _, mf := range mfs {
				_ = enc.Encode(mf)
			}
		}
	})
	return mux
}

// reloadOnHUP reloads the registries file on SIGHUP. A bad file is
// refused, named in the log, and the registries in force stay.
func reloadOnHUP(ctx context.Context, logger *slog.Logger, path string, routes *registry.Routes) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			cfg, err := registry.Load(path)
			if err != nil {
				logger.Error("registres non rechargés: les précédents restent en vigueur", "err", err)
				continue
			}
			routes.Set(cfg)
			logger.Info("registres rechargés", "file", path, "registries", len(cfg.Registries))
		}
	}
}
