package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/pdfcheck"
	"github.com/etatcivil/etatcivil/internal/sample"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// benchBatch makes n realistic acts (100 KB–1 MB) once per directory.
func benchBatch(b *testing.B, n int) (string, []string, int64) {
	b.Helper()
	dir := b.TempDir()
	if err := sample.Generate(sample.Options{Dir: dir, Count: n, Seed: 99, SizeClass: sample.SizeRealistic}); err != nil {
		b.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.pdf"))
	var total int64
	for _, f := range files {
		st, _ := os.Stat(f)
		total += st.Size()
	}
	return dir, files, total
}

// BenchmarkPDFCheck compares our isolated check (child process, scanner,
// pdfcpu, policy) with "qpdf --check" on the same realistic files, one
// process per file for both.
func BenchmarkPDFCheck(b *testing.B) {
	bin := testenv.Bin(b, "etatcivil")
	qpdf, err := exec.LookPath("qpdf")
	if err != nil {
		b.Fatal("qpdf absent: make tools")
	}
	_, files, total := benchBatch(b, 40)
	datas := make([][]byte, len(files))
	for i, f := range files {
		datas[i], _ = os.ReadFile(f)
	}
	var ours, theirs time.Duration
	b.Run("etatcivil", func(b *testing.B) {
		start := time.Now()
		for i := 0; i < b.N; i++ {
			for _, d := range datas {
				if _, err := pdfcheck.RunIsolated(context.Background(), bin, bytes.NewReader(d), int64(len(d)), pdfcheck.DefaultLimits(), pdfcheck.IsolateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		}
		ours = time.Since(start) / time.Duration(b.N)
		b.ReportMetric(float64(len(datas)*b.N)/time.Since(start).Seconds(), "files/s")
		b.ReportMetric(float64(total)*float64(b.N)/time.Since(start).Seconds()/1e6, "MB/s")
	})
	b.Run("qpdf_check", func(b *testing.B) {
		start := time.Now()
		for i := 0; i < b.N; i++ {
			for _, f := range files {
				if out, err := exec.Command(qpdf, "--check", f).CombinedOutput(); err != nil {
					b.Fatalf("qpdf %s: %v\n%s", f, err, out)
				}
			}
		}
		theirs = time.Since(start) / time.Duration(b.N)
		b.ReportMetric(float64(len(files)*b.N)/time.Since(start).Seconds(), "files/s")
	})
	if theirs > 0 {
		fmt.Printf("BenchmarkPDFCheck: etatcivil/qpdf time ratio = %.2f (%d files, %.1f MB)\n", float64(ours)/float64(theirs), len(files), float64(total)/1e6)
	}
}

// BenchmarkIngest uploads realistic batches through the real server and
// workers (upload --wait: manifest, PUTs to staging, validation) and
// compares with a raw upload of the same files to the same S3 gateway,
// four at a time, without any checking.
func BenchmarkIngest(b *testing.B) {
	s := startServer(b)
	tok := hubToken(b, s)
	const n = 100
	var ours, raw time.Duration
	var total int64
	b.Run("etatcivil_upload_wait", func(b *testing.B) {
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			dir := b.TempDir()
			if err := sample.Generate(sample.Options{Dir: dir, Count: n, Seed: int64(1000 + i), SizeClass: sample.SizeRealistic, Prefix: fmt.Sprintf("b%d-", i)}); err != nil {
				b.Fatal(err)
			}
			total = dirSize(dir)
			b.StartTimer()
			start := time.Now()
			up := s.client(context.Background(), tok, "upload", "--wait", "--timeout", "10m", dir)
			var e bytes.Buffer
			up.Stderr = &e
			if err := up.Run(); err != nil {
				b.Fatalf("upload: %v\n%s", err, e.String())
			}
			elapsed += time.Since(start)
		}
		ours = elapsed / time.Duration(b.N)
		b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "acts/s")
		b.ReportMetric(float64(total)*float64(b.N)/elapsed.Seconds()/1e6, "MB/s")
	})
	b.Run("raw_s3_put", func(b *testing.B) {
		bl, _ := testenv.Blob(b)
		_, files, size := benchBatch(b, n)
		total = size
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			var wg sync.WaitGroup
			ch := make(chan string)
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for f := range ch {
						fh, _ := os.Open(f)
						st, _ := fh.Stat()
						if _, err := bl.PutStaging(context.Background(), fmt.Sprintf("raw/%d/%s", i, filepath.Base(f)), fh, st.Size()); err != nil {
							b.Error(err)
						}
						fh.Close()
					}
				}()
			}
			for _, f := range files {
				ch <- f
			}
			close(ch)
			wg.Wait()
		}
		raw = time.Since(start) / time.Duration(b.N)
		b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "acts/s")
	})
	if raw > 0 {
		fmt.Printf("BenchmarkIngest: etatcivil upload+validation / raw S3 put time ratio = %.2f (%d acts, %.1f MB)\n", float64(ours)/float64(raw), n, float64(total)/1e6)
	}
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
