package pdfcheck

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/model"
)

func testPool(hook string, opt IsolateOptions) *Pool {
	opt.Env = append(opt.Env, childEnv+"=1", childHook+"="+hook)
	return &Pool{Exe: os.Args[0], Lim: DefaultLimits(), Opt: opt}
}

func (p *Pool) idlePIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, c := range p.idle {
		out = append(out, c.cmd.Process.Pid)
	}
	return out
}

// TestPool: files checked in a kept child give what RunIsolated gives; the
// child is reused for the next file, also after rejecting one; it is
// replaced after MaxUses files.
func TestPool(t *testing.T) {
	t.Parallel()
	p := testPool("", IsolateOptions{})
	p.MaxUses = 3
	defer p.Close()
	good := buildDoc(opts{pages: 3, xmp: xmpPDFA})
	check := func(pdf []byte) (Result, error) {
		return p.Check(context.Background(), bytes.NewReader(pdf), int64(len(pdf)))
	}
	res, err := check(good)
	if err != nil || res.Pages != 3 || res.PDFA != "2B" {
		t.Fatalf("premier fichier : %+v %v", res, err)
	}
	first := p.idlePIDs()
	if len(first) != 1 {
		t.Fatalf("processus en attente : %v", first)
	}
	bomb := buildDoc(opts{content: gigaBomb(), contentDict: "/Filter /FlateDecode"})
	if _, err := check(bomb); reasonOf(t, err) != model.ReasonPDFDecompressionLimit {
		t.Fatalf("bombe : %v", err)
	}
	if got := p.idlePIDs(); len(got) != 1 || got[0] != first[0] {
		t.Fatalf("le processus n'a pas été réutilisé : %v puis %v", first, got)
	}
	if _, err := check(good); err != nil {
		t.Fatal(err)
	}
	// Third file for this child: replaced.
	if got := p.idlePIDs(); len(got) != 0 {
		t.Fatalf("processus gardé après MaxUses : %v", got)
	}
	if _, err := check(good); err != nil {
		t.Fatal(err)
	}
	if got := p.idlePIDs(); len(got) != 1 || got[0] == first[0] {
		t.Fatalf("nouveau processus attendu : %v (ancien %v)", got, first)
	}
}

// TestPoolMisbehaviour: a child that sleeps, eats memory, garbles, answers
// twice or out of turn, or crashes has the file rejected as
// pdf_resource_limit and is not kept; a cancelled context is not a
// rejection; a failing source is ours.
func TestPoolMisbehaviour(t *testing.T) {
	t.Parallel()
	good := buildDoc(opts{})
	for _, c := range []struct {
		hook string
		opt  IsolateOptions
	}{
		{"sleep", IsolateOptions{Timeout: 300 * time.Millisecond}},
		{"alloc", IsolateOptions{MemoryLimit: 256 << 20, Timeout: 30 * time.Second}},
		{"garbage", IsolateOptions{}},
		{"two-lines", IsolateOptions{}},
		{"unknown-reason", IsolateOptions{}},
		{"crash", IsolateOptions{}},
	} {
		t.Run(c.hook, func(t *testing.T) {
			t.Parallel()
			p := testPool(c.hook, c.opt)
			defer p.Close()
			_, err := p.Check(context.Background(), bytes.NewReader(good), int64(len(good)))
			if got := reasonOf(t, err); got != model.ReasonPDFResourceLimit {
				t.Fatalf("%s : %q (%v)", c.hook, got, err)
			}
			if got := p.idlePIDs(); len(got) != 0 {
				t.Fatalf("%s : processus gardé %v", c.hook, got)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		p := testPool("sleep", IsolateOptions{Timeout: time.Minute})
		defer p.Close()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		_, err := p.Check(ctx, bytes.NewReader(good), int64(len(good)))
		var rej *model.Rejection
		if !errors.Is(err, context.Canceled) || errors.As(err, &rej) {
			t.Fatalf("annulation : %v", err)
		}
	})
	t.Run("source", func(t *testing.T) {
		t.Parallel()
		p := testPool("", IsolateOptions{Timeout: time.Minute})
		defer p.Close()
		start := time.Now()
		_, err := p.Check(context.Background(), errReader{}, int64(len(good)))
		var rej *model.Rejection
		if err == nil || errors.As(err, &rej) || time.Since(start) > 20*time.Second {
			t.Fatalf("source en échec : %v", err)
		}
	})
}
