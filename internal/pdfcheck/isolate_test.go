package pdfcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/model"
)

// The test binary doubles as the child: RunIsolated starts os.Args[0]
// with childEnv set, and TestMain then behaves as `etatcivil pdfcheck`.
// childHook selects misbehaviours that only tests can ask for.
const (
	childEnv  = "PDFCHECK_TEST_CHILD"
	childHook = "PDFCHECK_TEST_HOOK"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(testChild())
	}
	os.Exit(m.Run())
}

// testChild runs ChildMain, or a misbehaviour.
func testChild() int {
	args := os.Args[1:]
	if len(args) == 0 || args[0] != ChildCommand {
		fmt.Fprintln(os.Stderr, "test child: missing subcommand")
		return 3
	}
	args = args[1:]
	switch os.Getenv(childHook) {
	case "sleep":
		time.Sleep(time.Hour)
	case "alloc":
		c, err := parseChildArgs(args)
		if err != nil {
			return 3
		}
		limitMemory(c.mem)
		var keep [][]byte
		for i := 0; i < 1<<12; i++ { // up to 64 GiB: the limit must stop us first
			b := make([]byte, 16<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println(len(keep))
	case "garbage":
		fmt.Println("I am not JSON")
		return 0
	case "two-lines":
		fmt.Println(`{"result":{"pages":1,"version":"1.7","decoded_bytes":0}}`)
		fmt.Println(`{"result":{"pages":1,"version":"1.7","decoded_bytes":0}}`)
		return 0
	case "unknown-reason":
		fmt.Println(`{"reason":"all_good","message":"trust me"}`)
		return 0
	case "crash":
		panic("checker crashed")
	}
	return ChildMain(args, os.Stdin, os.Stdout)
}

// isolated runs RunIsolated on pdf with the test binary as the child.
func isolated(ctx context.Context, pdf []byte, hook string, opt IsolateOptions) (Result, error) {
	opt.Env = append(opt.Env, childEnv+"=1", childHook+"="+hook)
	return RunIsolated(ctx, os.Args[0], bytes.NewReader(pdf), int64(len(pdf)), DefaultLimits(), opt)
}

func TestRunIsolated(t *testing.T) {
	t.Parallel()
	good := buildDoc(opts{pages: 3, xmp: xmpPDFA})
	tests := []struct {
		name  string
		pdf   []byte
		hook  string
		opt   IsolateOptions
		want  model.Reason
		pages int
	}{
		{name: "good", pdf: good, pages: 3},
		{name: "rejected in child", pdf: buildDoc(opts{catalog: "/OpenAction << /S /JavaScript /JS (x) >>"}), want: model.ReasonPDFActiveContent},
		{name: "bomb in child", pdf: buildDoc(opts{content: gigaBomb(), contentDict: "/Filter /FlateDecode"}), want: model.ReasonPDFDecompressionLimit},
		{name: "not pdf", pdf: []byte("GIF89a"), want: model.ReasonNotPDF},
		{name: "timeout", pdf: good, hook: "sleep", opt: IsolateOptions{Timeout: 300 * time.Millisecond}, want: model.ReasonPDFResourceLimit},
		{name: "memory", pdf: good, hook: "alloc", opt: IsolateOptions{MemoryLimit: 256 << 20, Timeout: 30 * time.Second}, want: model.ReasonPDFResourceLimit},
		{name: "garbage output", pdf: good, hook: "garbage", want: model.ReasonPDFResourceLimit},
		{name: "two replies", pdf: good, hook: "two-lines", want: model.ReasonPDFResourceLimit},
		{name: "unknown reason", pdf: good, hook: "unknown-reason", want: model.ReasonPDFResourceLimit},
		{name: "crash", pdf: good, hook: "crash", want: model.ReasonPDFResourceLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			res, err := isolated(context.Background(), tt.pdf, tt.hook, tt.opt)
			if got := reasonOf(t, err); got != tt.want {
				t.Fatalf("got %q (%v), want %q", got, err, tt.want)
			}
			if tt.want == "" && (res.Pages != tt.pages || res.PDFA != "2B" || res.Version != "1.7") {
				t.Fatalf("got %+v", res)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

func TestRunIsolatedCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := isolated(ctx, buildDoc(opts{}), "sleep", IsolateOptions{Timeout: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	var rej *model.Rejection
	if errors.As(err, &rej) {
		t.Fatalf("cancellation became a rejection: %v", rej)
	}
}

func TestRunIsolatedTooLarge(t *testing.T) {
	t.Parallel()
	// Refused before any child starts: the executable does not exist.
	_, err := RunIsolated(context.Background(), "/nonexistent", strings.NewReader(""), 60<<20, DefaultLimits(), IsolateOptions{})
	if got := reasonOf(t, err); got != model.ReasonPDFTooLarge {
		t.Fatalf("got %q, want pdf_too_large", got)
	}
}

func TestRunIsolatedInternalErrors(t *testing.T) {
	t.Parallel()
	// A missing executable is our fault, not the file's.
	_, err := RunIsolated(context.Background(), "/nonexistent", strings.NewReader("%PDF-"), 5, DefaultLimits(), IsolateOptions{})
	var rej *model.Rejection
	if err == nil || errors.As(err, &rej) {
		t.Fatalf("got %v, want an internal error", err)
	}
	// So is a source that fails.
	pdf := buildDoc(opts{})
	_, err = RunIsolated(context.Background(), os.Args[0], errReader{}, int64(len(pdf)), DefaultLimits(),
		IsolateOptions{Env: []string{childEnv + "=1"}})
	if err == nil || errors.As(err, &rej) {
		t.Fatalf("got %v, want an internal error", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("network down") }

func TestChildMain(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if code := ChildMain([]string{"-max-pages=2"}, bytes.NewReader(buildDoc(opts{pages: 3})), &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if want := `"reason":"pdf_too_many_pages"`; !strings.Contains(out.String(), want) {
		t.Fatalf("got %s, want %s", out.String(), want)
	}
	out.Reset()
	if code := ChildMain([]string{"-bogus"}, strings.NewReader(""), &out); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
}
