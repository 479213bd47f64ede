package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/testenv"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// server is a running "etatcivil serve" process and the environment that
// reaches it.
type server struct {
	bin    string
	env    []string // ETATCIVIL_* for server-side commands
	blob   *blob.Store
	url    string
	ops    string
	admin  string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	log    *bytes.Buffer
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer starts bin/etatcivil serve on a fresh database and buckets,
// creates hub "smica" (Rodez, Millau, Villefranche) and an admin token.
func startServer(t testing.TB, extra ...string) *server {
	t.Helper()
	return startServerArgs(t, []string{"serve"}, extra...)
}

// startServerArgs is startServer with the serve command's arguments.
func startServerArgs(t testing.TB, args []string, extra ...string) *server {
	t.Helper()
	bin := testenv.Bin(t, "etatcivil")
	db := testenv.DatabaseURL(t)
	bl, bcfg := testenv.Blob(t)
	s := &server{bin: bin, log: &bytes.Buffer{}, blob: bl}
	// The TSA binds its own port first: a port freePort has just released
	// must not be handed to it before serve takes it.
	stamps := testenv.TSA(t) // B-T seals, as make up serves them
	api, ops := freePort(t), freePort(t)
	pki := testenv.DevPKI(t)
	s.env = append([]string{
		"ETATCIVIL_SEAL_CERT=" + filepath.Join(pki, "dev-seal.pem"), "ETATCIVIL_SEAL_KEY=" + filepath.Join(pki, "dev-seal.key"),
		"PATH=" + os.Getenv("PATH"),
		"ETATCIVIL_DATABASE_URL=" + db,
		"ETATCIVIL_ADDR=" + api, "ETATCIVIL_OPS_ADDR=" + ops,
		"ETATCIVIL_S3_ENDPOINT=http://" + bcfg.Endpoint, "ETATCIVIL_S3_REGION=us-east-1",
		"ETATCIVIL_S3_BUCKET=" + bcfg.Archive, "ETATCIVIL_S3_STAGING_BUCKET=" + bcfg.Staging,
		"ETATCIVIL_S3_ACCESS_KEY=" + bcfg.AccessKey, "ETATCIVIL_S3_SECRET_KEY=" + bcfg.SecretKey,
		"ETATCIVIL_TOKEN_PEPPER=" + testenv.Pepper, "ETATCIVIL_RETENTION=1d",
		"ETATCIVIL_SHUTDOWN_TIMEOUT=10s", "ETATCIVIL_TSA_URL=" + stamps.URL,
		"ETATCIVIL_TRUST_ROOTS=" + filepath.Join(pki, seal.DevRootFile) + ":" + filepath.Join(pki, tsa.DevTSARootFile),
	}, extra...)
	s.url, s.ops = "http://"+api, "http://"+ops
	// --if-missing: a server started on a restored database finds it there.
	s.run(t, "hub", "create", "smica", "--if-missing", "--name", "SMICA", "--communes", "12202,12145,12300")
	s.admin = strings.TrimSpace(s.run(t, "token", "create", "--role", "admin", "--name", "e2e admin"))
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("le serveur s'est arrêté:\n%s", s.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("le serveur n'est pas prêt:\n%s", s.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

func (s *server) stop() {
	if s.exited == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// run runs a server-side command and returns its stdout.
func (s *server) run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = s.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("etatcivil %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// client returns a command running the client side with token.
func (s *server) client(ctx context.Context, token string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ETATCIVIL_SERVER=" + s.url, "ETATCIVIL_TOKEN=" + token}
	return cmd
}

// metric reads one counter from /metrics.
func (s *server) metric(t testing.TB, name string) int64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(s.metricsText(t)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("métrique %s absente", name)
	return 0
}

// metricsText is the whole of /metrics.
func (s *server) metricsText(t testing.TB) string {
	t.Helper()
	resp, err := http.Get(s.ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rssWatcher samples the resident memory of every process running bin
// (the server and its pdfcheck children) and keeps the peak.
type rssWatcher struct {
	bin  string
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	peak int64
	who  string
	seen map[int]bool
}

func watchRSS(bin string) *rssWatcher {
	w := &rssWatcher{bin: bin, stop: make(chan struct{}), seen: map[int]bool{}}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			w.sample()
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *rssWatcher) sample() {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", p.Name(), "exe"))
		if err != nil || exe != w.bin {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", p.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(st), "\n") {
			// VmHWM is the process's own peak, so a short-lived child's
			// peak is caught even between two samples.
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				w.mu.Lock()
				w.seen[pid] = true
				if kb*1024 > w.peak {
					w.peak, w.who = kb*1024, fmt.Sprintf("pid %d", pid)
				}
				w.mu.Unlock()
			}
		}
	}
}

func (w *rssWatcher) done() (peak int64, who string, procs int) {
	close(w.stop)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak, w.who, len(w.seen)
}

func readAll(t *testing.T, r io.Reader) string {
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (s *server) archiveBucket() string { return s.blob.ArchiveBucket() }

// syncBuffer is a bytes.Buffer safe for a process writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// dbURL is the server's database.
func (s *server) dbURL() string {
	for _, e := range s.env {
		if v, ok := strings.CutPrefix(e, "ETATCIVIL_DATABASE_URL="); ok {
			return v
		}
	}
	return ""
}

// jobs describes River's jobs, for failure messages.
func (s *server) jobs(t testing.TB) string {
	conn, err := pgx.Connect(context.Background(), s.dbURL())
	if err != nil {
		return err.Error()
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT kind || ' ' || state || ' attempt ' || attempt || ' ' || coalesce(errors::text, '') FROM river_job ORDER BY id`)
	if err != nil {
		return err.Error()
	}
	var out []string
	for rows.Next() {
		var l string
		_ = rows.Scan(&l)
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// uploadWait sends dir with `etatcivil upload --wait --json` as tok and
// returns what it printed (the batch's JSON after any progress lines).
func uploadWait(t *testing.T, s *server, tok, dir string) []byte {
	t.Helper()
	var out bytes.Buffer
	up := s.client(context.Background(), tok, "upload", "--wait", "--timeout", "4m", "--json", dir)
	up.Stdout, up.Stderr = &out, &out
	if err := up.Run(); err != nil {
		t.Fatalf("upload : %v\n%s", err, out.String())
	}
	return out.Bytes()
}

// envOf is the value of key in env (the last one, as exec uses).
func envOf(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if x, ok := strings.CutPrefix(kv, key+"="); ok {
			v = x
		}
	}
	return v
}
