// Package config loads etatcivil's configuration once, from ETATCIVIL_*
// environment variables, with local defaults and *_FILE variants for
// secrets. It fails fast on bad values.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is the effective configuration of every etatcivil command.
type Config struct {
	DatabaseURL string // ETATCIVIL_DATABASE_URL

	Addr    string // ETATCIVIL_ADDR, the API and pages
	OpsAddr string // ETATCIVIL_OPS_ADDR, /metrics /healthz /readyz

	S3Endpoint      string // host:port, or a URL (http:// means no TLS)
	S3Region        string
	S3Bucket        string // archive bucket, object lock on
	S3StagingBucket string // staging bucket, no object lock
	S3AccessKey     string
	S3SecretKey     string // secret
	S3Secure        bool

	TokenPepper string // secret: HMAC key for token hashes

	RegistriesFile string // ETATCIVIL_REGISTRIES_FILE: the registries (YAML), reloaded on SIGHUP; empty: none
	TrustRoots     string // ETATCIVIL_TRUST_ROOTS: PEM files (":"-separated) of the roots seals and timestamps are verified against
	TSAURL         string // ETATCIVIL_TSA_URL: the RFC 3161 time-stamp authority (B-T seals); empty: none
	TSAUsername    string // ETATCIVIL_TSA_USERNAME, with ETATCIVIL_TSA_PASSWORD: HTTP basic auth to the TSA, if it needs it
	TSAPassword    string
	PublicURL      string // ETATCIVIL_PUBLIC_URL: the pages' public address, for links in e-mails; empty: the request's host

	SealCert        string // ETATCIVIL_SEAL_CERT: default seal certificate (PEM chain), a path
	SealKey         string // ETATCIVIL_SEAL_KEY: default seal key, a path (PEM, or .p12/.pfx)
	SealP12Password string // secret: ETATCIVIL_SEAL_P12_PASSWORD, for PKCS#12 seal files

	Retention             Duration // ETATCIVIL_RETENTION, default 120y
	RejectedRetentionDays int      // ETATCIVIL_REJECTED_RETENTION_DAYS
	MaxFileSize           int64    // ETATCIVIL_MAX_FILE_SIZE, bytes
	MaxManifestSize       int64    // ETATCIVIL_MAX_MANIFEST_SIZE, bytes
	MaxPages              int      // ETATCIVIL_MAX_PAGES
	PDFCheckMemory        int64    // ETATCIVIL_PDFCHECK_MEMORY, bytes, for the child checker
	PDFCheckTimeout       time.Duration
	Workers               int           // ETATCIVIL_WORKERS, concurrent jobs per process
	InfraRetryBudget      int           // ETATCIVIL_INFRA_RETRY_BUDGET: infrastructure failures before "stalled"
	InfraBackoffMax       time.Duration // ETATCIVIL_INFRA_BACKOFF_MAX
	ShutdownTimeout       time.Duration
	RescueAfter           time.Duration // ETATCIVIL_RESCUE_AFTER: a job running longer is deemed lost (crashed worker) and retried
	DashboardTTL          time.Duration // ETATCIVIL_DASHBOARD_TTL: how long a dashboard's counts are served from memory (0: counted at each read)
	StepTimeout           time.Duration // ETATCIVIL_STEP_TIMEOUT: one seal or archive step
	AuthFailuresPerMinute int
	TLSCert, TLSKey       string         // ETATCIVIL_TLS_CERT, ETATCIVIL_TLS_KEY: PEM files; both set: the API serves HTTPS
	TrustedProxies        []netip.Prefix // ETATCIVIL_TRUSTED_PROXIES: reverse proxies (addresses or CIDR, comma-separated) whose X-Forwarded-For is believed

	CheckpointEvery  time.Duration // ETATCIVIL_AUDIT_CHECKPOINT_EVERY: interval between audit checkpoints
	ReadLogRetention Duration      // ETATCIVIL_READ_LOG_RETENTION: how long the free text of read reasons is kept (default 1y)
	FixityPeriod     Duration      // ETATCIVIL_FIXITY_PERIOD: one full fixity pass over the archive (default 30d)
	FixityBandwidth  int64         // ETATCIVIL_FIXITY_BANDWIDTH: bytes per second fixity audits read at most (0: unbounded)

	RetimestampMargin Duration      // ETATCIVIL_RETIMESTAMP_MARGIN: renew a timestamp whose TSA certificate expires within (default 1y)
	RetimestampEvery  time.Duration // ETATCIVIL_RETIMESTAMP_EVERY: interval between campaign rounds (default 24h)
	RetimestampBatch  int           // ETATCIVIL_RETIMESTAMP_BATCH: acts one round looks at (default 200)
	RetimestampWeak   string        // ETATCIVIL_RETIMESTAMP_WEAK: digest algorithms considered weakening, comma-separated (e.g. SHA-1)
}

// Duration is a time.Duration that also accepts years ("120y") and days
// ("30d"), which AddTo counts on the calendar (leap days included).
type Duration struct {
	Years, Days int
	D           time.Duration
	Text        string
}

// ParseDuration parses "120y", "1d", "36h", "1y6d" or any time.ParseDuration text.
func ParseDuration(s string) (Duration, error) {
	d := Duration{Text: s}
	rest := strings.TrimSpace(s)
	if rest == "" {
		return d, errors.New("durée vide")
	}
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			break
		}
		n, _ := strconv.Atoi(rest[:i])
		switch rest[i] {
		case 'y':
			d.Years += n
		case 'd':
			d.Days += n
		default:
			goto std
		}
		rest = rest[i+1:]
	}
std:
	if rest != "" {
		td, err := time.ParseDuration(rest)
		if err != nil {
			return d, fmt.Errorf("durée %q invalide: %w", s, err)
		}
		d.D = td
	}
	if d.Years < 0 || d.Days < 0 || d.D < 0 || (d.Years == 0 && d.Days == 0 && d.D == 0) {
		return d, fmt.Errorf("durée %q invalide: doit être positive", s)
	}
	return d, nil
}

// AddTo returns t plus the duration, counting years and days on the calendar.
func (d Duration) AddTo(t time.Time) time.Time {
	return t.AddDate(d.Years, 0, d.Days).Add(d.D)
}

// SubFrom returns t minus the duration, on the calendar.
func (d Duration) SubFrom(t time.Time) time.Time {
	return t.AddDate(-d.Years, 0, -d.Days).Add(-d.D)
}

// Span is the duration's length from t on (years and days on the calendar).
func (d Duration) Span(t time.Time) time.Duration { return d.AddTo(t).Sub(t) }

// String returns the text the duration was parsed from.
func (d Duration) String() string { return d.Text }

// Load reads the configuration from the environment.
func Load() (*Config, error) { return load(os.Getenv) }

func load(getenv func(string) string) (*Config, error) {
	var errs []error
	str := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	secret := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		if f := getenv(name + "_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s_FILE: %w", name, err))
				return ""
			}
			return strings.TrimSpace(string(b))
		}
		return ""
	}
	integer := func(name string, def int64) int64 {
		v := getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: entier positif attendu", name, v))
			return def
		}
		return n
	}
	dur := func(name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: durée positive attendue (ex. 30s)", name, v))
			return def
		}
		return d
	}
	c := &Config{
		DatabaseURL:           str("ETATCIVIL_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/etatcivil?sslmode=disable"),
		Addr:                  str("ETATCIVIL_ADDR", "127.0.0.1:8080"),
		OpsAddr:               str("ETATCIVIL_OPS_ADDR", "127.0.0.1:9090"),
		S3Endpoint:            str("ETATCIVIL_S3_ENDPOINT", "http://127.0.0.1:7070"),
		S3Region:              str("ETATCIVIL_S3_REGION", "us-east-1"),
		S3Bucket:              str("ETATCIVIL_S3_BUCKET", "etatcivil-archive"),
		S3StagingBucket:       str("ETATCIVIL_S3_STAGING_BUCKET", "etatcivil-staging"),
		S3AccessKey:           str("ETATCIVIL_S3_ACCESS_KEY", ""),
		S3SecretKey:           secret("ETATCIVIL_S3_SECRET_KEY"),
		TokenPepper:           secret("ETATCIVIL_TOKEN_PEPPER"),
		RegistriesFile:        str("ETATCIVIL_REGISTRIES_FILE", ""),
		PublicURL:             str("ETATCIVIL_PUBLIC_URL", ""),
		TSAURL:                str("ETATCIVIL_TSA_URL", ""),
		TrustRoots:            str("ETATCIVIL_TRUST_ROOTS", ""),
		TSAUsername:           str("ETATCIVIL_TSA_USERNAME", ""),
		TSAPassword:           secret("ETATCIVIL_TSA_PASSWORD"),
		SealCert:              str("ETATCIVIL_SEAL_CERT", ""),
		SealKey:               str("ETATCIVIL_SEAL_KEY", ""),
		SealP12Password:       secret("ETATCIVIL_SEAL_P12_PASSWORD"),
		RejectedRetentionDays: int(integer("ETATCIVIL_REJECTED_RETENTION_DAYS", 30)),
		MaxFileSize:           integer("ETATCIVIL_MAX_FILE_SIZE", 50<<20),
		MaxManifestSize:       integer("ETATCIVIL_MAX_MANIFEST_SIZE", 64<<20),
		MaxPages:              int(integer("ETATCIVIL_MAX_PAGES", 20)),
		PDFCheckMemory:        integer("ETATCIVIL_PDFCHECK_MEMORY", 512<<20),
		PDFCheckTimeout:       dur("ETATCIVIL_PDFCHECK_TIMEOUT", 60*time.Second),
		Workers:               int(integer("ETATCIVIL_WORKERS", 4)),
		InfraRetryBudget:      int(integer("ETATCIVIL_INFRA_RETRY_BUDGET", 40)),
		InfraBackoffMax:       dur("ETATCIVIL_INFRA_BACKOFF_MAX", 5*time.Minute),
		ShutdownTimeout:       dur("ETATCIVIL_SHUTDOWN_TIMEOUT", 30*time.Second),
		RescueAfter:           dur("ETATCIVIL_RESCUE_AFTER", 10*time.Minute),
		DashboardTTL:          dur("ETATCIVIL_DASHBOARD_TTL", 5*time.Second),
		StepTimeout:           dur("ETATCIVIL_STEP_TIMEOUT", 5*time.Minute),
		AuthFailuresPerMinute: int(integer("ETATCIVIL_AUTH_FAILURES_PER_MINUTE", 30)),
		TLSCert:               str("ETATCIVIL_TLS_CERT", ""),
		TLSKey:                str("ETATCIVIL_TLS_KEY", ""),
	}
	c.CheckpointEvery = dur("ETATCIVIL_AUDIT_CHECKPOINT_EVERY", time.Hour)
	c.FixityBandwidth = integer("ETATCIVIL_FIXITY_BANDWIDTH", 20<<20)
	c.RetimestampEvery = dur("ETATCIVIL_RETIMESTAMP_EVERY", 24*time.Hour)
	c.RetimestampBatch = int(integer("ETATCIVIL_RETIMESTAMP_BATCH", 200))
	c.RetimestampWeak = str("ETATCIVIL_RETIMESTAMP_WEAK", "")
	for _, d := range []struct {
		name, def string
		to        *Duration
	}{{"ETATCIVIL_RETENTION", "120y", &c.Retention}, {"ETATCIVIL_READ_LOG_RETENTION", "1y", &c.ReadLogRetention},
		{"ETATCIVIL_FIXITY_PERIOD", "30d", &c.FixityPeriod}, {"ETATCIVIL_RETIMESTAMP_MARGIN", "1y", &c.RetimestampMargin}} {
		v, err := ParseDuration(str(d.name, d.def))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
		}
		*d.to = v
	}
	// The endpoint may be a URL; minio-go wants host:port and a TLS flag.
	ep := c.S3Endpoint
	switch {
	case strings.HasPrefix(ep, "https://"):
		c.S3Secure, ep = true, strings.TrimPrefix(ep, "https://")
	case strings.HasPrefix(ep, "http://"):
		ep = strings.TrimPrefix(ep, "http://")
	default:
		c.S3Secure = true
	}
	c.S3Endpoint = strings.TrimSuffix(ep, "/")
	if v := getenv("ETATCIVIL_S3_INSECURE"); v == "1" || v == "true" {
		c.S3Secure = false
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("ETATCIVIL_TLS_CERT et ETATCIVIL_TLS_KEY vont ensemble : les deux ou aucun"))
	}
	for _, v := range strings.Split(getenv("ETATCIVIL_TRUSTED_PROXIES"), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				errs = append(errs, fmt.Errorf("ETATCIVIL_TRUSTED_PROXIES: %q n'est ni une adresse ni un réseau CIDR", v))
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, p.Masked())
	}
	return c, errors.Join(errs...)
}

func prefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

// RequireServer checks what server-side commands need beyond defaults.
func (c *Config) RequireServer() error {
	var errs []error
	if len(c.TokenPepper) < 16 {
		errs = append(errs, errors.New("ETATCIVIL_TOKEN_PEPPER (ou ETATCIVIL_TOKEN_PEPPER_FILE) doit contenir au moins 16 caractères"))
	}
	return errors.Join(errs...)
}

// Redacted returns the configuration as sorted "NAME=value" lines with
// every secret replaced by "(masqué)".
func (c *Config) Redacted() []string {
	mask := func(s string) string {
		if s == "" {
			return "(vide)"
		}
		return "(masqué)"
	}
	scheme := "https://"
	if !c.S3Secure {
		scheme = "http://"
	}
	m := map[string]string{
		"ETATCIVIL_DATABASE_URL":      redactURL(c.DatabaseURL),
		"ETATCIVIL_ADDR":              c.Addr,
		"ETATCIVIL_OPS_ADDR":          c.OpsAddr,
		"ETATCIVIL_S3_ENDPOINT":       scheme + c.S3Endpoint,
		"ETATCIVIL_S3_REGION":         c.S3Region,
		"ETATCIVIL_S3_BUCKET":         c.S3Bucket,
		"ETATCIVIL_S3_STAGING_BUCKET": c.S3StagingBucket,
		"ETATCIVIL_S3_ACCESS_KEY":     c.S3AccessKey,
		"ETATCIVIL_S3_SECRET_KEY":     mask(c.S3SecretKey),
		"ETATCIVIL_TOKEN_PEPPER":      mask(c.TokenPepper),
		"ETATCIVIL_REGISTRIES_FILE":   c.RegistriesFile,
		"ETATCIVIL_PUBLIC_URL":        c.PublicURL,
		// Read by the notifier (internal/notify), shown here too.
		"ETATCIVIL_SMTP_ADDR":                os.Getenv("ETATCIVIL_SMTP_ADDR"),
		"ETATCIVIL_SMTP_FROM":                os.Getenv("ETATCIVIL_SMTP_FROM"),
		"ETATCIVIL_SMTP_USERNAME":            os.Getenv("ETATCIVIL_SMTP_USERNAME"),
		"ETATCIVIL_SMTP_PASSWORD":            mask(os.Getenv("ETATCIVIL_SMTP_PASSWORD") + os.Getenv("ETATCIVIL_SMTP_PASSWORD_FILE")),
		"ETATCIVIL_SMTP_STARTTLS":            os.Getenv("ETATCIVIL_SMTP_STARTTLS"),
		"ETATCIVIL_SEAL_CERT":                c.SealCert,
		"ETATCIVIL_SEAL_KEY":                 c.SealKey,
		"ETATCIVIL_SEAL_P12_PASSWORD":        mask(c.SealP12Password),
		"ETATCIVIL_RETENTION":                c.Retention.String(),
		"ETATCIVIL_REJECTED_RETENTION_DAYS":  strconv.Itoa(c.RejectedRetentionDays),
		"ETATCIVIL_MAX_FILE_SIZE":            strconv.FormatInt(c.MaxFileSize, 10),
		"ETATCIVIL_MAX_MANIFEST_SIZE":        strconv.FormatInt(c.MaxManifestSize, 10),
		"ETATCIVIL_MAX_PAGES":                strconv.Itoa(c.MaxPages),
		"ETATCIVIL_PDFCHECK_MEMORY":          strconv.FormatInt(c.PDFCheckMemory, 10),
		"ETATCIVIL_PDFCHECK_TIMEOUT":         c.PDFCheckTimeout.String(),
		"ETATCIVIL_WORKERS":                  strconv.Itoa(c.Workers),
		"ETATCIVIL_INFRA_RETRY_BUDGET":       strconv.Itoa(c.InfraRetryBudget),
		"ETATCIVIL_INFRA_BACKOFF_MAX":        c.InfraBackoffMax.String(),
		"ETATCIVIL_SHUTDOWN_TIMEOUT":         c.ShutdownTimeout.String(),
		"ETATCIVIL_RESCUE_AFTER":             c.RescueAfter.String(),
		"ETATCIVIL_DASHBOARD_TTL":            c.DashboardTTL.String(),
		"ETATCIVIL_STEP_TIMEOUT":             c.StepTimeout.String(),
		"ETATCIVIL_AUTH_FAILURES_PER_MINUTE": strconv.Itoa(c.AuthFailuresPerMinute),
		"ETATCIVIL_TLS_CERT":                 c.TLSCert,
		"ETATCIVIL_TLS_KEY":                  c.TLSKey,
		"ETATCIVIL_TRUSTED_PROXIES":          prefixes(c.TrustedProxies),
		"ETATCIVIL_AUDIT_CHECKPOINT_EVERY":   c.CheckpointEvery.String(),
		"ETATCIVIL_READ_LOG_RETENTION":       c.ReadLogRetention.String(),
		"ETATCIVIL_FIXITY_PERIOD":            c.FixityPeriod.String(),
		"ETATCIVIL_FIXITY_BANDWIDTH":         strconv.FormatInt(c.FixityBandwidth, 10),
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// redactURL hides the password of a libpq URL (in its user part or its
// query) or key=value string.
func redactURL(u string) string {
	if q := strings.Index(u, "?"); q >= 0 && strings.Contains(u, "://") {
		var params []string
		for _, kv := range strings.Split(u[q+1:], "&") {
			if k, _, _ := strings.Cut(kv, "="); strings.EqualFold(k, "password") {
				kv = k + "=(masqué)"
			}
			params = append(params, kv)
		}
		return redactURL(u[:q]) + "?" + strings.Join(params, "&")
	}
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if at := strings.Index(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				return u[:i+3] + rest[:colon] + ":(masqué)" + rest[at:]
			}
		}
		return u
	}
	var parts []string
	for _, f := range strings.Fields(u) {
		if strings.HasPrefix(f, "password=") {
			f = "password=(masqué)"
		}
		parts = append(parts, f)
	}
	if strings.Contains(u, "password='") {
		// A quoted value may hold spaces: mask everything after it.
		return u[:strings.Index(u, "password='")] + "password=(masqué)"
	}
	return strings.Join(parts, " ")
}
