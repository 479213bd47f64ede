// Package upload sends a batch directory to the server: the manifest
// first, then only the files the server still lacks, in parallel, then
// submit. Re-running it on the same directory resumes and never
// duplicates anything: the manifest's SHA-256 is the idempotency key.
package upload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/etatcivil/etatcivil/internal/client"
	"github.com/etatcivil/etatcivil/internal/manifest"
	"github.com/etatcivil/etatcivil/internal/store"
)

// ErrRefused: the server refused the whole batch (unparseable manifest,
// unknown or foreign hub).
var ErrRefused = errors.New("lot refusé")

// Progress receives upload progress. Implementations must be safe for
// concurrent use.
type Progress interface {
	Start(totalBytes int64, files int)
	Bytes(n int64)
	FileDone(file string, err error)
	Finish()
}

// Options tune an upload.
type Options struct {
	Parallel int
	Progress Progress
	Log      func(format string, args ...any) // messages for stderr
}

// Manifest finds and reads the manifest of dir: manifest.json, else
// manifest.csv.
func Manifest(root *os.Root) (name string, data []byte, err error) {
	for _, n := range []string{"manifest.json", "manifest.csv"} {
		f, err := root.Open(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, 256<<20))
		return n, data, err
	}
	return "", nil, errors.New("ni manifest.json ni manifest.csv dans le dossier")
}

// Run uploads dir and submits. It returns the submitted batch.
func Run(ctx context.Context, c *client.Client, dir string, opt Options) (store.BatchView, error) {
	if opt.Parallel <= 0 {
		opt.Parallel = 4
	}
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	// os.Root confines every open to dir: a name from the manifest or the
	// server can never reach a path outside it.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return store.BatchView{}, err
	}
	defer root.Close()
	name, data, err := Manifest(root)
	if err != nil {
		return store.BatchView{}, err
	}
	sum := sha256.Sum256(data)
	key := hex.EncodeToString(sum[:])
	var b store.BatchView
	err = retry(ctx, func() error {
		var err error
		b, _, err = c.CreateBatch(ctx, data, name == "manifest.csv", key)
		return err
	})
	var apiErr *client.Error
	if errors.As(err, &apiErr) && (apiErr.Status == 400 || apiErr.Status == 403 || apiErr.Status == 413) {
		return b, fmt.Errorf("%w: %s", ErrRefused, apiErr.Detail)
	}
	if err != nil {
		return b, err
	}
	if b.SubmittedAt != nil {
		opt.Log("lot %s déjà soumis : rien à envoyer\n", b.ID)
		return b, nil
	}
	type job struct {
		file string
		size int64
	}
	var jobs []job
	var total int64
	// Only files the manifest names are ever sent, whatever the server
	// lists.
	named := map[string]bool{}
	if m, err := manifest.Parse(name, data); err == nil {
		for _, e := range m.Acts {
			named[e.File] = true
		}
	}
	for _, f := range b.MissingFiles {
		if !named[f] {
			opt.Log("le serveur demande %s, que le manifeste ne nomme pas : ignoré\n", f)
			continue
		}
		st, err := root.Stat(f)
		if err != nil {
			opt.Log("absent du dossier : %s (%v)\n", f, errors.Unwrap(err))
			continue
		}
		if !st.Mode().IsRegular() {
			opt.Log("pas un fichier ordinaire, ignoré : %s\n", f)
			continue
		}
		jobs = append(jobs, job{f, st.Size()})
		total += st.Size()
	}
	if opt.Progress != nil {
		opt.Progress.Start(total, len(jobs))
	}
	queue := make(chan job)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range opt.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				err := retry(ctx, func() error { return send(ctx, c, root, b.ID, j.file, j.size, opt.Progress) })
				var apiErr *client.Error
				if err != nil && !(errors.As(err, &apiErr) && apiErr.Status == 422) {
					failed.Add(1)
				}
				if err != nil {
					opt.Log("%s : %v\n", j.file, err)
				}
				if opt.Progress != nil {
					opt.Progress.FileDone(j.file, err)
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case queue <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(queue)
	wg.Wait()
	if opt.Progress != nil {
		opt.Progress.Finish()
	}
	if err := ctx.Err(); err != nil {
		return b, err
	}
	if n := failed.Load(); n > 0 {
		opt.Log("%d fichier(s) non envoyés ; ils seront refusés « file_missing » (relancez l'envoi avant pour les transmettre)\n", n)
	}
	var sb store.BatchView
	err = retry(ctx, func() error {
		var err error
		sb, _, err = c.Submit(ctx, b.ID)
		return err
	})
	return sb, err
}

// countingReader reports bytes to a Progress as they are read.
type countingReader struct {
	r io.Reader
	p Progress
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if c.p != nil && n > 0 {
		c.p.Bytes(int64(n))
	}
	return n, err
}

func send(ctx context.Context, c *client.Client, root *os.Root, batchID, file string, size int64, p Progress) error {
	f, err := root.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.PutFile(ctx, batchID, file, countingReader{f, p}, size)
}

// retry runs fn up to 5 times while it fails for a reason that may pass
// (network, 5xx, 429), with growing pauses.
func retry(ctx context.Context, fn func() error) error {
	delay := 500 * time.Millisecond
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = fn()
		if err == nil || !client.Retryable(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
	return err
}
