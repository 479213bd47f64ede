package bench

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/pdfcheck"
	"github.com/etatcivil/etatcivil/internal/revocation"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// floor does what the pipeline does to each act, with the same package
// functions, the same S3 calls and the same concurrency, but without
// PostgreSQL and River: staging PUT, read back and isolated check (a pool
// of checker children, as the workers have), read
// back and seal at the pipeline's level (cfg.Level, B-B by default; B-T
// adds the TSA, B-LT the validation material), sealed PUT to staging, read back and locked archive PUT,
// HEAD of the archived version. What is left between this and the
// pipeline is what durability and orchestration cost.
func floor(ctx context.Context, cfg Config, files []string) (time.Duration, error) {
	bl, err := blob.New(cfg.S3)
	if err != nil {
		return 0, err
	}
	key, err := ingest.LoadKey(cfg.SealCert, cfg.SealKey, "")
	if err != nil {
		return 0, err
	}
	roots, err := api.LoadRoots(strings.Split(cfg.TrustRoots, ":"))
	if err != nil {
		return 0, err
	}
	tc := &tsa.Client{URL: cfg.TSAURL, Timeout: 30 * time.Second}
	opt := seal.Options{Reason: "Banc d'essai", Name: key.Label}
	if cfg.Level != "B-B" {
		opt.Timestamp = func(ctx context.Context, imprint []byte) ([]byte, error) {
			return tc.Timestamp(ctx, imprint, crypto.SHA256)
		}
	}
	if cfg.Level == "B-LT" || cfg.Level == "B-LTA" {
		opt.Validation = &seal.Validation{Roots: roots, Collect: (&revocation.Fetcher{}).Collect}
		opt.DocTimestamp = cfg.Level == "B-LTA"
	}
	run := fmt.Sprintf("floor/%d/", time.Now().UnixNano())
	checker := &pdfcheck.Pool{Exe: cfg.Exe, Lim: pdfcheck.DefaultLimits(), Opt: pdfcheck.IsolateOptions{Timeout: 60 * time.Second}, Idle: cfg.Parallel}
	defer checker.Close()
	one := func(path string) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		name := run + filepath.Base(path)
		if _, err := bl.PutStaging(ctx, name, f, st.Size()); err != nil {
			return err
		}
		obj, size, err := bl.GetStaging(ctx, name)
		if err != nil {
			return err
		}
		_, err = checker.Check(ctx, obj, size)
		obj.Close()
		if err != nil {
			return fmt.Errorf("%s : %w", path, err)
		}
		obj, size, err = bl.GetStaging(ctx, name)
		if err != nil {
			return err
		}
		sealed, n, err := seal.New().Seal(ctx, obj, size, key, opt)
		obj.Close()
		if err != nil {
			return err
		}
		sum, err := bl.PutStaging(ctx, name+".sealed", sealed, n)
		sealed.Close()
		if err != nil {
			return err
		}
		obj, size, err = bl.GetStaging(ctx, name+".sealed")
		if err != nil {
			return err
		}
		a, err := bl.PutArchive(ctx, "bench/"+name+"-"+sum+".pdf", obj, size, sum, time.Now().Add(24*time.Hour))
		obj.Close()
		if err != nil {
			return err
		}
		_, err = bl.HeadArchive(ctx, "bench/"+name+"-"+sum+".pdf", a.VersionID)
		return err
	}
	start := time.Now()
	ch := make(chan string)
	errs := make(chan error, len(files))
	var wg sync.WaitGroup
	for range cfg.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				if err := one(p); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, f := range files {
		ch <- f
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		return 0, err
	}
	return time.Since(start), nil
}
