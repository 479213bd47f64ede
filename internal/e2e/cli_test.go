package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestCLIContract checks what hubs' scripts rely on: token create prints
// the token alone on stdout, exit codes, --help.
func TestCLIContract(t *testing.T) {
	t.Parallel()
	s := startServer(t)

	cmd := exec.Command(s.bin, "token", "create", "--role", "townhall", "--commune", "12202", "--name", "Mairie de Rodez")
	cmd.Env = s.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("token create: %v\n%s", err, errb.String())
	}
	if !regexp.MustCompile(`^ec_[a-z2-7]+_[a-z2-7]{40,}\n$`).MatchString(out.String()) {
		t.Fatalf("stdout de token create = %q", out.String())
	}
	if strings.Contains(errb.String(), strings.TrimSpace(out.String())) {
		t.Fatal("le jeton apparaît aussi sur stderr")
	}

	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"token", "create", "--role", "admin"}, 2},               // --name required
		{[]string{"token", "create", "--role", "chef", "--name", "x"}, 2}, // unknown role
		{[]string{"token", "create", "--role", "hub", "--name", "x"}, 2},  // --hub required
		{[]string{"nimportequoi"}, 2},
		{[]string{"upload", "--help"}, 0},
		{[]string{"token", "revoke", "inconnu"}, 1},
		{[]string{"hub", "create", "x", "--name", "X", "--communes", "99999"}, 1}, // not a COG code
	} {
		cmd := exec.Command(s.bin, c.args...)
		cmd.Env = s.env
		var e bytes.Buffer
		cmd.Stderr = &e
		if got := exitCode(cmd.Run()); got != c.code {
			t.Errorf("etatcivil %s: code %d, attendu %d\n%s", strings.Join(c.args, " "), got, c.code, e.String())
		}
	}

	// A manifest the server cannot parse: the batch is refused, exit 3.
	dir := t.TempDir()
	writeJSON(t, dir+"/manifest.json", map[string]any{"hub": "smica", "acts": "pas une liste"})
	up := s.client(context.Background(), s.admin, "upload", dir)
	var e bytes.Buffer
	up.Stderr = &e
	if got := exitCode(up.Run()); got != 3 {
		t.Fatalf("manifeste illisible: code %d, attendu 3\n%s", got, e.String())
	}

	// config masks secrets.
	cfg := s.run(t, "config")
	if strings.Contains(cfg, "test-pepper") || !strings.Contains(cfg, "ETATCIVIL_TOKEN_PEPPER=(masqué)") {
		t.Fatalf("config:\n%s", cfg)
	}
	// s3 check reports every property met on the test gateway.
	check := s.run(t, "s3", "check")
	for _, name := range []string{"versioning_enabled", "object_lock_enabled", "sha256_checksum_kept", "if_none_match_honoured", "retention_readable", "locked_delete_refused"} {
		if !regexp.MustCompile(`(?m)^` + name + `\s+met\b`).MatchString(check) {
			t.Errorf("s3 check: %s non rempli\n%s", name, check)
		}
	}
}
