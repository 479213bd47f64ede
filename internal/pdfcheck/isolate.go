package pdfcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/etatcivil/etatcivil/internal/model"
)

// ChildCommand is the subcommand of the etatcivil binary that runs
// ChildMain: RunIsolated starts `exe pdfcheck [flags]`.
const ChildCommand = "pdfcheck"

// Isolation defaults.
const (
	DefaultMemoryLimit = 512 << 20
	DefaultTimeout     = 60 * time.Second
)

// IsolateOptions bounds the child process of RunIsolated. A zero field
// takes its default.
type IsolateOptions struct {
	// MemoryLimit is the memory the child may use, in bytes (default
	// 512 MiB): its address-space growth is capped with RLIMIT_AS, its
	// resident size is watched by the parent, and the Go runtime is told.
	MemoryLimit int64
	// Timeout is how long the child may run (default 60 s).
	Timeout time.Duration
	// Env is the child's whole environment, "KEY=value" entries. The child
	// does not inherit the server's environment, which holds secrets.
	Env []string
}

func (o IsolateOptions) withDefaults() IsolateOptions {
	if o.MemoryLimit <= 0 {
		o.MemoryLimit = DefaultMemoryLimit
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

// childReply is the one JSON line the child writes: exactly one of the
// three parts is set.
type childReply struct {
	// Seq is the request's number in pool mode (0 for a one-shot child).
	Seq     int64        `json:"seq,omitempty"`
	Result  *Result      `json:"result,omitempty"`
	Reason  model.Reason `json:"reason,omitempty"`
	Message string       `json:"message,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// maxReply bounds what the parent reads of the child's stdout and stderr.
const maxReply = 64 << 10

// RunIsolated runs Check in a child process, so that a hostile file can
// exhaust only the child: exe (the etatcivil binary, os.Executable() in
// production) is started as `exe pdfcheck` with the size bytes of pdf on
// its stdin and lim as flags, bounded by opt's memory limit and timeout.
//
// It returns what Check returns in the child. A child that is killed,
// times out, crashes or writes garbage gives a *model.Rejection with
// pdf_resource_limit, which must not be retried. If ctx ends first (the
// server shutting down), the child is killed and ctx.Err() is returned:
// that is not the file's fault.
func RunIsolated(ctx context.Context, exe string, pdf io.Reader, size int64, lim Limits, opt IsolateOptions) (Result, error) {
	lim = lim.withDefaults()
	opt = opt.withDefaults()
	if size > lim.MaxFileSize {
		return Result{}, model.Reject(model.ReasonPDFTooLarge,
			fmt.Sprintf("(%d octets, maximum %d)", size, lim.MaxFileSize))
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	cmd := exec.Command(exe, append([]string{ChildCommand}, childArgs(size, lim, opt.MemoryLimit)...)...)
	cmd.Env = opt.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.SysProcAttr = sysProcAttr()
	stdout := &capped{max: maxReply}
	stderr := &capped{max: maxReply}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return Result{}, fmt.Errorf("pdfcheck: stdin pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("pdfcheck: start %s: %w", exe, err)
	}

	// Feed the file. A child that dies early breaks the pipe: that is
	// reported by its exit status, not here. A failing or short source is
	// ours. The timer below runs from the start, so callers feed from a
	// local file (the worker copies the staged object first): a slow
	// network must never read as a resource limit.
	src := &readErr{r: pdf}
	fed := make(chan struct{})
	var copied int64
	go func() {
		defer close(fed)
		copied, _ = io.CopyN(stdin, src, size)
		_ = stdin.Close()
	}()

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	overMem := make(chan struct{})
	stopWatch := make(chan struct{})
	go watchMemory(cmd.Process.Pid, opt.MemoryLimit, stopWatch, overMem)
	defer close(stopWatch)

	timer := time.NewTimer(opt.Timeout)
	defer timer.Stop()

	kill := func() {
		_ = cmd.Process.Kill()
		<-done
		<-fed
	}
	var waitErr error
	select {
	case waitErr = <-done:
		<-fed
	case <-ctx.Done():
		kill()
		return Result{}, ctx.Err()
	case <-timer.C:
		kill()
		return Result{}, model.Reject(model.ReasonPDFResourceLimit,
			fmt.Sprintf("(durée maximale de %s dépassée)", opt.Timeout))
	case <-overMem:
		kill()
		return Result{}, model.Reject(model.ReasonPDFResourceLimit,
			fmt.Sprintf("(mémoire maximale de %d Mio dépassée)", opt.MemoryLimit>>20))
	}

	if err := src.err; err != nil {
		return Result{}, fmt.Errorf("pdfcheck: read the file for the child: %w", err)
	}
	if copied != size && waitErr == nil {
		return Result{}, fmt.Errorf("pdfcheck: source ended after %d of %d bytes", copied, size)
	}
	reply, perr := parseReply(stdout)
	if waitErr != nil {
		if perr == nil && reply.Error != "" {
			return Result{}, fmt.Errorf("pdfcheck: child: %s", reply.Error)
		}
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) {
			return Result{}, fmt.Errorf("pdfcheck: wait for child: %w", waitErr)
		}
		return Result{}, exitVerdict(waitErr)
	}
	if perr != nil {
		return Result{}, model.Reject(model.ReasonPDFResourceLimit, "(réponse illisible du processus d'analyse)")
	}
	switch {
	case reply.Error != "":
		return Result{}, fmt.Errorf("pdfcheck: child: %s", reply.Error)
	case reply.Result != nil:
		return *reply.Result, nil
	default:
		return Result{}, &model.Rejection{Reason: reply.Reason, Message: reply.Message}
	}
}

// stopSignal tells whether a child was killed by an operator's or a
// system's stop signal: not the file's fault, so not a rejection.
func stopSignal(ee *exec.ExitError) bool {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		switch ws.Signal() {
		case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT:
			return true
		}
	}
	return false
}

// parseReply reads the child's single JSON line.
func parseReply(out *capped) (childReply, error) {
	if out.over {
		return childReply{}, errors.New("reply too long")
	}
	return parseLine(out.buf.Bytes())
}

// parseLine decodes one reply line: exactly one outcome, a known reason.
func parseLine(b []byte) (childReply, error) {
	var r childReply
	line := bytes.TrimSpace(b)
	if len(line) == 0 || bytes.IndexByte(line, '\n') >= 0 {
		return r, errors.New("not one line")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("decode reply: %w", err)
	}
	parts := 0
	if r.Result != nil {
		parts++
	}
	if r.Reason != "" {
		parts++
		if !r.Reason.Known() {
			return r, fmt.Errorf("unknown reason %q", r.Reason)
		}
	}
	if r.Error != "" {
		parts++
	}
	if parts != 1 {
		return r, errors.New("reply has no single outcome")
	}
	return r, nil
}

// childArgs are the flags RunIsolated passes and ChildMain parses.
func childArgs(size int64, lim Limits, mem int64) []string {
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []string{
		"-size=" + i(size),
		"-max-file-size=" + i(lim.MaxFileSize),
		"-max-pages=" + i(int64(lim.MaxPages)),
		"-max-stream-decoded=" + i(lim.MaxStreamDecoded),
		"-max-doc-decoded=" + i(lim.MaxDocDecoded),
		"-max-ratio=" + i(lim.MaxRatio),
		"-ratio-grace=" + i(lim.RatioGrace),
		"-mem=" + i(mem),
	}
}

// childConfig is what the child's flags say.
type childConfig struct {
	size  int64
	lim   Limits
	mem   int64
	serve bool
}

// parseChildArgs parses the flags of ChildMain.
func parseChildArgs(args []string) (childConfig, error) {
	var c childConfig
	fs := flag.NewFlagSet(ChildCommand, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	d := DefaultLimits()
	fs.Int64Var(&c.size, "size", -1, "file size in bytes (-1: whatever stdin holds)")
	fs.Int64Var(&c.lim.MaxFileSize, "max-file-size", d.MaxFileSize, "")
	fs.IntVar(&c.lim.MaxPages, "max-pages", d.MaxPages, "")
	fs.Int64Var(&c.lim.MaxStreamDecoded, "max-stream-decoded", d.MaxStreamDecoded, "")
	fs.Int64Var(&c.lim.MaxDocDecoded, "max-doc-decoded", d.MaxDocDecoded, "")
	fs.Int64Var(&c.lim.MaxRatio, "max-ratio", d.MaxRatio, "")
	fs.Int64Var(&c.lim.RatioGrace, "ratio-grace", d.RatioGrace, "")
	fs.Int64Var(&c.mem, "mem", DefaultMemoryLimit, "memory limit in bytes")
	fs.BoolVar(&c.serve, "serve", false, "pool mode: numbered requests on stdin until it ends")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("pdfcheck flags: %w", err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("pdfcheck flags: unexpected argument %q", fs.Arg(0))
	}
	c.lim = c.lim.withDefaults()
	return c, nil
}

// limitMemory bounds the current (child) process: the Go runtime's soft
// limit, and a hard cap on address-space growth where the OS allows it.
func limitMemory(mem int64) {
	debug.SetMemoryLimit(mem / 2)
	limitAddressSpace(mem)
}

// ChildMain is what `etatcivil pdfcheck [flags]` runs; args are the flags
// after the subcommand. It reads the PDF from stdin, runs Check, writes
// one JSON line to stdout and returns the exit code: 0 whatever the
// verdict (a rejection is in the JSON), 2 for bad flags.
func ChildMain(args []string, stdin io.Reader, stdout io.Writer) int {
	c, err := parseChildArgs(args)
	if err != nil {
		writeReply(stdout, childReply{Error: err.Error()})
		return 2
	}
	limitMemory(c.mem)
	if c.serve {
		return serve(c, stdin, stdout)
	}
	data, err := io.ReadAll(io.LimitReader(stdin, c.lim.MaxFileSize+1))
	if err != nil {
		writeReply(stdout, childReply{Error: fmt.Sprintf("read stdin: %v", err)})
		return 0
	}
	size := c.size
	if size < 0 {
		size = int64(len(data))
	}
	res, err := Check(bytes.NewReader(data), size, c.lim)
	writeReply(stdout, replyFor(res, err, 0))
	return 0
}

// replyFor is the reply for Check's outcome.
func replyFor(res Result, err error, seq int64) childReply {
	var rej *model.Rejection
	switch {
	case err == nil:
		return childReply{Seq: seq, Result: &res}
	case errors.As(err, &rej):
		return childReply{Seq: seq, Reason: rej.Reason, Message: rej.Message}
	default:
		return childReply{Seq: seq, Error: err.Error()}
	}
}

// writeReply writes r as one JSON line.
func writeReply(w io.Writer, r childReply) {
	b, err := json.Marshal(r)
	if err != nil {
		b = []byte(`{"error":"marshal reply"}`)
	}
	_, _ = w.Write(append(b, '\n'))
}

// capped is a buffer that keeps at most max bytes and remembers overflow.
type capped struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	max  int
	over bool
}

// Write implements io.Writer; it never fails, so the child never blocks.
func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); len(p) > room {
		c.over = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}

// readErr remembers the first error of r other than EOF, to tell a
// failing source (our fault) from a dying child (the file's).
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// watchMemory polls the child's resident size and closes over when it
// exceeds limit, until stop is closed.
func watchMemory(pid int, limit int64, stop <-chan struct{}, over chan<- struct{}) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			rss, ok := residentBytes(pid)
			if ok && rss > limit {
				close(over)
				return
			}
		}
	}
}
