package auditlog_test

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/api"
	"github.com/etatcivil/etatcivil/internal/auditlog"
	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

// devRoots are the development seal's and TSA's roots.
func devRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	dir := testenv.DevPKI(t)
	testenv.TSA(t) // creates the TSA's files
	roots, err := api.LoadRoots([]string{filepath.Join(dir, "dev-root.pem"), filepath.Join(dir, "dev-tsa-root.pem")})
	if err != nil {
		t.Fatal(err)
	}
	return roots
}

type fixture struct {
	st     *store.Store
	bl     *blob.Store
	cfg    blob.Config
	anchor *auditlog.Anchor
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	st := testenv.Store(t)
	bl, cfg := testenv.Blob(t)
	a := &auditlog.Anchor{Store: st, Blob: bl, Key: testenv.DevSeal(t), Timestamp: testenv.TSA(t).Timestamper(),
		Roots: devRoots(t), RetainUntil: func(t time.Time) time.Time { return t.Add(24 * time.Hour) }}
	return fixture{st: st, bl: bl, cfg: cfg, anchor: a}
}

func (f fixture) events(t *testing.T, n int, action string) {
	t.Helper()
	for i := range n {
		if err := f.st.Audit(context.Background(), store.Event{Actor: store.System, Action: action, Data: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
}

func (f fixture) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := f.st.Pool.Exec(context.Background(), q, args...); err != nil {
		t.Fatal(err)
	}
}
