package pdfcheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/etatcivil/etatcivil/internal/model"
)

// Pool checks files in long-lived child processes: each file is still
// checked outside the server, under the memory limit and timeout of Opt,
// and a child that misbehaves on a file (killed, timed out, over its
// memory, crashed, garbled) is discarded with the file rejected as
// RunIsolated would; but starting a child, half of a check's cost (the
// binary's package initialisation), is paid once per MaxUses files.
//
// Requests and replies are numbered: a child that answers out of turn is
// discarded, so one file's verdict can never be read as another's.
type Pool struct {
	Exe string
	Lim Limits
	Opt IsolateOptions
	// Idle bounds the children kept waiting (default 4).
	Idle int
	// MaxUses is how many files one child checks before it is replaced
	// (default 100): memory a file left behind does not accumulate.
	MaxUses int

	mu   sync.Mutex
	idle []*child
	seq  int64
}

type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	out     *bufio.Reader
	stderr  *capped
	exited  chan struct{}
	waitErr error
	uses    int
}

func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// Close stops the idle children.
func (p *Pool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.kill()
	}
}

func (p *Pool) start() (*child, error) {
	opt := p.Opt.withDefaults()
	cmd := exec.Command(p.Exe, append([]string{ChildCommand, "-serve"}, childArgs(-1, p.Lim.withDefaults(), opt.MemoryLimit)...)...)
	cmd.Env = opt.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.SysProcAttr = sysProcAttr()
	c := &child{cmd: cmd, stderr: &capped{max: maxReply}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("pdfcheck: stdin pipe: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("pdfcheck: stdout pipe: %w", err)
	}
	c.out = bufio.NewReaderSize(stdout, 4096)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pdfcheck: start %s: %w", p.Exe, err)
	}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

func (p *Pool) get() (*child, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		select {
		case <-c.exited: // died while idle: start another
		default:
			return c, nil
		}
	} else {
		p.mu.Unlock()
	}
	return p.start()
}

func (p *Pool) put(c *child) {
	c.uses++
	maxUses, maxIdle := p.MaxUses, p.Idle
	if maxUses <= 0 {
		maxUses = 100
	}
	if maxIdle <= 0 {
		maxIdle = 4
	}
	p.mu.Lock()
	if c.uses < maxUses && len(p.idle) < maxIdle {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = c.stdin.Close() // the child ends on EOF
	go func() {
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
			c.kill()
		}
	}()
}

// Check checks size bytes of pdf in a child of the pool: what RunIsolated
// returns, with the same rejections for a child that misbehaves.
func (p *Pool) Check(ctx context.Context, pdf io.Reader, size int64) (Result, error) {
	lim, opt := p.Lim.withDefaults(), p.Opt.withDefaults()
	if size > lim.MaxFileSize {
		return Result{}, model.Reject(model.ReasonPDFTooLarge, fmt.Sprintf("(%d octets, maximum %d)", size, lim.MaxFileSize))
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	c, err := p.get()
	if err != nil {
		return Result{}, err
	}
	p.mu.Lock()
	p.seq++
	seq := p.seq
	p.mu.Unlock()

	// Feed the request: "seq size\n" then the bytes. A source that fails
	// is ours; a child that stops reading is the file's (seen below).
	src := &readErr{r: pdf}
	fed := make(chan int64, 1)
	go func() {
		n := int64(0)
		if _, err := fmt.Fprintf(c.stdin, "%d %d\n", seq, size); err == nil {
			n, _ = io.CopyN(c.stdin, src, size)
		}
		if src.err != nil {
			// The child would wait for the rest forever: end it now,
			// the verdict below is ours, not the file's.
			_ = c.cmd.Process.Kill()
		}
		fed <- n
	}()
	line := make(chan []byte, 1)
	go func() {
		l, err := readLine(c.out, maxReply)
		if err != nil {
			l = nil
		}
		line <- l
	}()
	overMem := make(chan struct{})
	stopWatch := make(chan struct{})
	go watchMemory(c.cmd.Process.Pid, opt.MemoryLimit, stopWatch, overMem)
	defer close(stopWatch)
	timer := time.NewTimer(opt.Timeout)
	defer timer.Stop()

	fail := func(err error) (Result, error) {
		c.kill()
		<-fed
		return Result{}, err
	}
	var reply []byte
	select {
	case reply = <-line:
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-timer.C:
		return fail(model.Reject(model.ReasonPDFResourceLimit, fmt.Sprintf("(durée maximale de %s dépassée)", opt.Timeout)))
	case <-overMem:
		return fail(model.Reject(model.ReasonPDFResourceLimit, fmt.Sprintf("(mémoire maximale de %d Mio dépassée)", opt.MemoryLimit>>20)))
	}
	if reply == nil {
		// The child ended (crash, memory cap, a stop signal) or wrote a
		// line too long.
		c.kill()
		<-fed
		if err := src.err; err != nil {
			return Result{}, fmt.Errorf("pdfcheck: read the file for the child: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		return Result{}, exitVerdict(c.waitErr)
	}
	if n := <-fed; n != size {
		// A reply before the whole file was sent is out of turn.
		c.kill()
		if err := src.err; err != nil {
			return Result{}, fmt.Errorf("pdfcheck: read the file for the child: %w", err)
		}
		return Result{}, model.Reject(model.ReasonPDFResourceLimit, "(réponse du processus d'analyse avant la fin du fichier)")
	}
	r, err := parseLine(reply)
	if err != nil || r.Seq != seq {
		c.kill()
		return Result{}, model.Reject(model.ReasonPDFResourceLimit, "(réponse illisible du processus d'analyse)")
	}
	if r.Error != "" {
		// Ours, not the file's: the child stays usable.
		p.put(c)
		return Result{}, fmt.Errorf("pdfcheck: child: %s", r.Error)
	}
	p.put(c)
	if r.Result != nil {
		return *r.Result, nil
	}
	return Result{}, &model.Rejection{Reason: r.Reason, Message: r.Message}
}

// exitVerdict turns a child's end into the verdict on the file it was
// checking: a stop signal is not the file's fault, anything else is a
// resource limit.
func exitVerdict(waitErr error) error {
	var ee *exec.ExitError
	if waitErr == nil || !errors.As(waitErr, &ee) {
		return model.Reject(model.ReasonPDFResourceLimit, "(le processus d'analyse s'est arrêté)")
	}
	if stopSignal(ee) {
		return fmt.Errorf("pdfcheck: child stopped by %s", ee.ProcessState.String())
	}
	return model.Reject(model.ReasonPDFResourceLimit, "("+ee.ProcessState.String()+")")
}

// readLine reads one line of at most max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		chunk, err := r.ReadSlice('\n')
		out = append(out, chunk...)
		if len(out) > max {
			return nil, errors.New("line too long")
		}
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// serve is the child's loop in pool mode: requests "seq size\n" followed
// by size bytes on in, one reply line each on out, until in ends.
func serve(c childConfig, in io.Reader, out io.Writer) int {
	r := bufio.NewReaderSize(in, 64<<10)
	for {
		header, err := r.ReadString('\n')
		if err != nil {
			return 0 // the pool closed our stdin
		}
		f := strings.Fields(header)
		if len(f) != 2 {
			return 2
		}
		seq, err1 := strconv.ParseInt(f[0], 10, 64)
		size, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || size < 0 || size > c.lim.MaxFileSize {
			return 2
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return 0
		}
		res, err := Check(bytes.NewReader(data), size, c.lim)
		writeReply(out, replyFor(res, err, seq))
		// What this file used goes back before the next one comes.
		data = nil
		runtime.GC()
		debug.FreeOSMemory()
	}
}
