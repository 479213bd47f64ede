package ingest_test

import (
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/store"
)

// TestINSEEPolicy: lots per commune, nature, period and register year, ready once the
// period is over; recognitions never lotted.
func TestINSEEPolicy(t *testing.T) {
	t.Parallel()
	p := ingest.INSEEPolicy()
	paris, _ := time.LoadLocation("Europe/Paris")
	at := time.Date(2026, 3, 10, 15, 0, 0, 0, paris) // a Tuesday
	for _, c := range []struct {
		u     store.Unlotted
		key   string
		ready time.Time // first instant the lot may be built
	}{
		{store.Unlotted{Commune: "12202", Year: 2026, Kind: "naissance", ArchivedAt: at}, "12202/naissance/2026-03-10T00:00:00+01:00/2026", time.Date(2026, 3, 11, 0, 0, 0, 0, paris)},
		{store.Unlotted{Commune: "12202", Year: 2026, Kind: "deces", ArchivedAt: at}, "12202/deces/2026-03-09T00:00:00+01:00/2026", time.Date(2026, 3, 16, 0, 0, 0, 0, paris)},
		{store.Unlotted{Commune: "12202", Year: 2026, Kind: "mariage", ArchivedAt: at}, "12202/mariage/2026-03-01T00:00:00+01:00/2026", time.Date(2026, 4, 1, 0, 0, 0, 0, paris)},
		{store.Unlotted{Commune: "12202", Year: 2026, Kind: "deces", SansVie: true, ArchivedAt: at}, "12202/deces_sans_vie/2026-03-01T00:00:00+01:00/2026", time.Date(2026, 4, 1, 0, 0, 0, 0, paris)},
		// A 2025 act archived in 2026 goes into a lot of its own register.
		{store.Unlotted{Commune: "12202", Year: 2025, Kind: "naissance", ArchivedAt: at}, "12202/naissance/2026-03-10T00:00:00+01:00/2025", time.Date(2026, 3, 11, 0, 0, 0, 0, paris)},
		{store.Unlotted{Commune: "12202", Year: 2026, Kind: "reconnaissance", ArchivedAt: at}, "", time.Time{}},
	} {
		key := p.Key(c.u)
		if key != c.key {
			t.Errorf("%s: clé %q, attendu %q", c.u.Kind, key, c.key)
			continue
		}
		if key == "" {
			continue
		}
		if p.Ready(key, at, c.ready.Add(-time.Second)) || !p.Ready(key, at, c.ready) {
			t.Errorf("%s: prêt à partir du mauvais instant (attendu %s)", c.u.Kind, c.ready)
		}
	}
}
