package testenv

import (
	"context"
	"crypto"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auditlog"
	"github.com/etatcivil/etatcivil/internal/auth"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/cog"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/pdfcheck"
	"github.com/etatcivil/etatcivil/internal/revocation"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/tsa"
	"github.com/etatcivil/etatcivil/internal/web"
)

// Pepper is the token pepper of test stacks.
const Pepper = "test-pepper-0123456789abcdef"

// ChildMain makes a test binary double as the PDF checker child: call it
// first in TestMain. When the binary was started as "BIN pdfcheck …" it
// runs the check and exits.
func ChildMain() {
	if len(os.Args) > 1 && os.Args[1] == "pdfcheck" {
		os.Exit(pdfcheck.ChildMain(os.Args[2:], os.Stdin, os.Stdout))
	}
}

// Stack is an in-process etatcivil: API on an httptest server and River
// workers, on a fresh database and fresh buckets.
type Stack struct {
	Store   *store.Store
	Blob    *blob.Store
	BlobCfg blob.Config
	Jobs    *ingest.Client
	Deps    *ingest.Deps
	API     *api.Server
	URL     string
	Hasher  auth.Hasher
}

// StackOptions tune NewStack.
type StackOptions struct {
	NoWorkers bool
	// Tune may change the workers' dependencies before they start.
	Tune func(*ingest.Deps)
	// Mail receives the e-mails the pages send (sign-in links).
	Mail web.Mailer
	// NoTSA leaves the stack without a time-stamp authority (B-T hubs'
	// acts then wait); by default a local one (TSA) serves it.
	NoTSA  bool
	Limits api.Limits
	// APIBlob, if set, is the API's S3 store (the workers keep theirs).
	APIBlob *blob.Store
}

// NewStack starts a stack for one test; everything stops at cleanup. The
// test binary must call ChildMain from TestMain.
func NewStack(t testing.TB, opt StackOptions) *Stack {
	t.Helper()
	st := Store(t)
	bl, bcfg := Blob(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := cog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ETATCIVIL_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	deps := &ingest.Deps{
		Store: st, Blob: bl, Logger: logger, PDFCheckExe: exe, Limits: pdfcheck.DefaultLimits(),
		Isolate:     pdfcheck.IsolateOptions{Timeout: 60 * time.Second},
		RetryBudget: 5, BackoffMax: 2 * time.Second, Workers: 4,
		Sealer: seal.New(), Keys: &ingest.KeyRing{Store: st, Default: DevSeal(t)},
		RetainUntil:           func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }, // tests never lock longer
		RejectedRetentionDays: 30,
		CommuneName:           func(code string) string { c, _ := snap.Lookup(code); return c.Name },
	}
	if opt.NoWorkers {
		deps.Workers = 0
	}
	if opt.Tune != nil {
		opt.Tune(deps)
	}
	if deps.Timestamp == nil && !opt.NoTSA {
		deps.Timestamp = TSA(t).Timestamper()
	}
	roots, err := api.LoadRoots([]string{filepath.Join(DevPKI(t), seal.DevRootFile), filepath.Join(DevPKI(t), tsa.DevTSARootFile)})
	if err != nil {
		t.Fatal(err)
	}
	if deps.Validation == nil {
		deps.Validation = &seal.Validation{Roots: roots, Collect: (&revocation.Fetcher{}).Collect}
	}
	jobs, err := ingest.NewClient(st.Pool, deps)
	if err != nil {
		t.Fatal(err)
	}
	if deps.Workers > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		if err := jobs.River.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sctx, c := context.WithTimeout(context.Background(), 20*time.Second)
			defer c()
			_ = jobs.River.Stop(sctx)
			cancel()
			jobs.CloseCheckers()
		})
	}
	h, err := auth.NewHasher(Pepper)
	if err != nil {
		t.Fatal(err)
	}
	lim := opt.Limits
	if lim.MaxFileSize == 0 {
		lim.MaxFileSize = 50 << 20
	}
	if lim.MaxManifestSize == 0 {
		lim.MaxManifestSize = 8 << 20
	}
	apiBlob := bl
	if opt.APIBlob != nil {
		apiBlob = opt.APIBlob
	}
	anchor := &auditlog.Anchor{Store: st, Blob: bl, Key: deps.Keys.Default, Timestamp: deps.Timestamp, Roots: roots,
		RetainUntil: deps.RetainUntil}
	a := &api.Server{Anchor: anchor, Fixity: &auditlog.Fixity{Store: st, Blob: bl}, Roots: roots, Timestamp: deps.Timestamp, Store: st, Blob: apiBlob, Jobs: jobs, Communes: snap, Logger: logger, Sealer: deps.Sealer, Keys: deps.Keys,
		Auth: &auth.Authenticator{Store: st, Hasher: h}, Limits: lim}
	// The pages beside the API, as serve mounts them.
	pages := &web.Server{Store: st, Auth: a.Auth, API: a, Communes: snap, Logger: logger, Mail: opt.Mail}
	root := http.NewServeMux()
	root.Handle("/api/", a.Handler())
	root.Handle("/", pages.Handler())
	srv := httptest.NewUnstartedServer(root)
	pages.BaseURL = "http://" + srv.Listener.Addr().String() // links in e-mails point here
	srv.Start()
	t.Cleanup(srv.Close)
	return &Stack{Store: st, Blob: bl, BlobCfg: bcfg, Jobs: jobs, Deps: deps, API: a, URL: srv.URL, Hasher: h}
}

// Hub creates a hub with its member communes.
func (s *Stack) Hub(t testing.TB, id string, communes ...string) {
	t.Helper()
	if err := s.Store.CreateHub(context.Background(), store.System, store.Hub{ID: id, Name: "Opérateur " + id, Communes: communes}); err != nil {
		t.Fatal(err)
	}
}

// Token creates a token and returns its text.
func (s *Stack) Token(t testing.TB, role auth.Role, hub string, communes ...string) string {
	t.Helper()
	id, text, hash := s.Hasher.New()
	err := s.Store.CreateToken(context.Background(), store.System, store.Token{ID: id, Hash: hash, Role: string(role),
		Name: "test " + string(role), HubID: hub, Communes: communes})
	if err != nil {
		t.Fatal(err)
	}
	return text
}

var (
	devOnce sync.Once
	devDir  string
	devErr  error
)

// DevPKI returns a directory holding the development CA and seal
// (seal.DevCA), made once per test binary.
func DevPKI(t testing.TB) string {
	t.Helper()
	devOnce.Do(func() {
		devDir, devErr = os.MkdirTemp("", "etatcivil-devpki-")
		if devErr == nil {
			devErr = devPKI(devDir)
		}
	})
	if devErr != nil {
		t.Fatalf("PKI de développement: %v", devErr)
	}
	return devDir
}

// devPKI makes the development CA and TSA in dir, their certificates
// naming an OCSP responder and CRLs served over loopback for the whole
// test binary (B-LT seals).
func devPKI(dir string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	if err := seal.DevCAWithRevocation(dir, base); err != nil {
		return err
	}
	if _, err := tsa.DevTSAWithRevocation(dir, base); err != nil {
		return err
	}
	auths, err := seal.DevAuthorities(dir)
	if err != nil {
		return err
	}
	tsaAuths, err := tsa.DevAuthorities(dir)
	if err != nil {
		return err
	}
	Revocation = &revocation.Responder{Authorities: append(auths, tsaAuths...)}
	srv := &http.Server{Handler: Revocation, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Revocation is the development OCSP responder and CRL server the
// certificates of DevPKI name (set once DevPKI has run).
var Revocation *revocation.Responder

// DevSeal loads the development seal.
func DevSeal(t testing.TB) *seal.Key {
	t.Helper()
	dir := DevPKI(t)
	k, err := ingest.LoadKey(filepath.Join(dir, "dev-seal.pem"), filepath.Join(dir, "dev-seal.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var tsaMu sync.Mutex

// LocalTSA is a development RFC 3161 time-stamp authority served over
// loopback for a test (certificates from DevPKI).
type LocalTSA struct {
	*tsa.Server
	URL string
}

// TSA starts a local time-stamp authority for t; Down makes it answer 503.
func TSA(t testing.TB) *LocalTSA {
	t.Helper()
	// One test makes the TSA's files, the others read them: DevTSA is not
	// meant to race with itself over one directory.
	tsaMu.Lock()
	srv, err := tsa.DevTSA(DevPKI(t))
	tsaMu.Unlock()
	if err != nil {
		t.Fatalf("autorité d'horodatage de développement : %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &LocalTSA{Server: srv, URL: hs.URL}
}

// Timestamper is a B-T timestamper using this TSA.
func (l *LocalTSA) Timestamper() seal.Timestamper {
	c := &tsa.Client{URL: l.URL, Timeout: 10 * time.Second}
	return func(ctx context.Context, imprint []byte) ([]byte, error) {
		return c.Timestamp(ctx, imprint, crypto.SHA256)
	}
}
