package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	base := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"120y", time.Date(2144, 2, 29, 12, 0, 0, 0, time.UTC)},
		{"1d", time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)},
		{"1y6d", time.Date(2025, 3, 7, 12, 0, 0, 0, time.UTC)},
		{"36h", time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)},
	} {
		d, err := ParseDuration(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if got := d.AddTo(base); !got.Equal(c.want) {
			t.Errorf("%s: %s, attendu %s", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "0d", "y", "12x", "-1d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepté", bad)
		}
	}
}

func TestSecretsFromFilesAndRedaction(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "pepper")
	if err := os.WriteFile(f, []byte("pepper-from-file-123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"ETATCIVIL_TOKEN_PEPPER_FILE": f,
		"ETATCIVIL_S3_SECRET_KEY":     "s3-secret-value",
		"ETATCIVIL_DATABASE_URL":      "postgres://u:dbpass@h:5432/d?sslmode=disable&password=qpass",
		"ETATCIVIL_S3_ENDPOINT":       "http://127.0.0.1:9000",
	}
	c, err := load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.TokenPepper != "pepper-from-file-123456" || c.S3Secure || c.S3Endpoint != "127.0.0.1:9000" {
		t.Fatalf("config: %+v", c)
	}
	all := strings.Join(c.Redacted(), "\n")
	for _, secret := range []string{"pepper-from-file", "s3-secret-value", "dbpass", "qpass"} {
		if strings.Contains(all, secret) {
			t.Errorf("secret %q affiché:\n%s", secret, all)
		}
	}
	if !strings.Contains(all, "ETATCIVIL_S3_ENDPOINT=http://127.0.0.1:9000") {
		t.Errorf("point d'accès absent:\n%s", all)
	}
}

func TestBadValuesFailFast(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ETATCIVIL_MAX_PAGES": "beaucoup", "ETATCIVIL_RETENTION": "jamais", "ETATCIVIL_PDFCHECK_TIMEOUT": "-3s"}
	_, err := load(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("valeurs invalides acceptées")
	}
	for _, name := range []string{"ETATCIVIL_MAX_PAGES", "ETATCIVIL_RETENTION", "ETATCIVIL_PDFCHECK_TIMEOUT"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("l'erreur ne nomme pas %s: %v", name, err)
		}
	}
}
