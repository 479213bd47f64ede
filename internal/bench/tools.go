package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"time"
)

type toolStep struct {
	name string
	d    time.Duration
}

type toolsResult struct {
	steps []toolStep
	total time.Duration
}

// standalone runs, on the same files, what a user scripting the best
// existing tools would: qpdf --check, openssl cms -sign with the same key,
// and a SigV4 PUT with curl to the same gateway (its payload's SHA-256
// signed, as our PUTs check theirs), each with xargs -P $(nproc).
func standalone(ctx context.Context, cfg Config, dir string, files []string) (toolsResult, error) {
	var r toolsResult
	var list bytes.Buffer
	for _, f := range files {
		list.WriteString(f)
		list.WriteByte(0)
	}
	scheme := "http"
	if cfg.S3.Secure {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s/%s/tools/%d", scheme, cfg.S3.Endpoint, cfg.S3.Staging, time.Now().UnixNano())
	nproc := strconv.Itoa(runtime.NumCPU())
	steps := []struct {
		name string
		args []string
	}{
		{"qpdf --check", []string{"qpdf", "--check"}},
		{"openssl cms -sign", []string{"sh", "-c", `openssl cms -sign -binary -md sha256 -in "$1" -signer "$SEAL_CERT" -inkey "$SEAL_KEY" -outform DER -out /dev/null`, "_"}},
		{"curl --aws-sigv4 PUT", []string{"sh", "-c", `curl -sS --fail -o /dev/null --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_KEYS" -H "x-amz-content-sha256: $(sha256sum "$1" | cut -d' ' -f1)" -T "$1" "$S3_URL/$(basename "$1")"`, "_"}},
	}
	for _, st := range steps {
		cmd := exec.CommandContext(ctx, "xargs", append([]string{"-0", "-P", nproc, "-n", "1"}, st.args...)...)
		cmd.Stdin = bytes.NewReader(list.Bytes())
		cmd.Env = append(os.Environ(), "SEAL_CERT="+cfg.SealCert, "SEAL_KEY="+cfg.SealKey, "S3_REGION="+cfg.S3.Region,
			"S3_KEYS="+cfg.S3.AccessKey+":"+cfg.S3.SecretKey, "S3_URL="+url)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return r, fmt.Errorf("%s : %v\n%.2000s", st.name, err, out.String())
		}
		d := time.Since(start)
		r.steps = append(r.steps, toolStep{st.name, d})
		r.total += d
	}
	return r, nil
}
