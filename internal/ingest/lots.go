package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/etatcivil/etatcivil/internal/inseelot"
	"github.com/etatcivil/etatcivil/internal/manifest"
	"github.com/etatcivil/etatcivil/internal/registry"
	"github.com/etatcivil/etatcivil/internal/store"
)

// LotPolicy says how a lot-based connector groups transmissions into
// lots, and when a group may become a lot (flush overrides it).
type LotPolicy struct {
	Key func(u store.Unlotted) string
	// Ready reports whether the group key, whose newest act was archived
	// at newest, may become a lot at now.
	Ready func(key string, newest, now time.Time) bool
}

// ArchivesPolicy groups by register (commune, year, kind): one SEDA
// transfer per register, once no act of it has been archived for settle
// (a batch being ingested ends in one package, not one per act).
func ArchivesPolicy(settle time.Duration) LotPolicy {
	return LotPolicy{
		Key:   func(u store.Unlotted) string { return fmt.Sprintf("%s/%d/%s", u.Commune, u.Year, u.Kind) },
		Ready: func(_ string, newest, now time.Time) bool { return now.Sub(newest) >= settle },
	}
}

// INSEEPolicy groups courant acts by commune, nature, period and register
// year (births
// daily, deaths weekly, marriages and stillbirths monthly, in the
// commune's time zone, by archiving date), ready once the period is over.
// Acts INSEE does not receive (recognitions) get no key and stay pending.
func INSEEPolicy() LotPolicy {
	return LotPolicy{
		Key: func(u store.Unlotted) string {
			nature, ok := inseelot.NatureOf(u.Kind, u.SansVie)
			if !ok {
				return ""
			}
			from, _ := inseelot.Period(nature, u.ArchivedAt, manifest.Location(u.Commune))
			// The register's year too: act numbers restart each year, so
			// a lot never mixes two registers (two acts n° 5).
			return fmt.Sprintf("%s/%s/%s/%d", u.Commune, nature, from.Format(time.RFC3339), u.Year)
		},
		Ready: func(key string, _, now time.Time) bool {
			parts := strings.SplitN(key, "/", 4)
			if len(parts) != 4 {
				return false
			}
			from, err := time.Parse(time.RFC3339, parts[2])
			if err != nil {
				return false
			}
			loc := manifest.Location(parts[0])
			_, to := inseelot.Period(parts[1], from.In(loc), loc)
			return !now.Before(to)
		},
	}
}

// LotBuildArgs builds the lots of one registry (all lot-based registries
// when Registry is empty). Flush builds lots whose period is not over.
type LotBuildArgs struct {
	Registry string `json:"registry,omitempty"`
	Flush    bool   `json:"flush,omitempty"`
	// Redrive: build lots of these transmissions only, at once (acts
	// released from a refused lot, or re-driven after a refusal).
	Redrive []string `json:"redrive,omitempty"`
}

// Kind implements river.JobArgs.
func (LotBuildArgs) Kind() string { return "lot_build" }

// LotBuildWorker commits lots: for each group of unlotted transmissions
// that is ready, one lot, its act set committed before any send.
type LotBuildWorker struct {
	river.WorkerDefaults[LotBuildArgs]
	deps *Deps
}

// Timeout bounds one build round.
func (w *LotBuildWorker) Timeout(*river.Job[LotBuildArgs]) time.Duration { return w.deps.stepTimeout() }

// Work implements river.Worker.
func (w *LotBuildWorker) Work(ctx context.Context, job *river.Job[LotBuildArgs]) error {
	d := w.deps
	cfg := d.Routes.Get()
	if cfg == nil {
		return nil
	}
	now := time.Now()
	for _, reg := range cfg.Registries {
		if reg.Connector == registry.ConnectorHTTP || (job.Args.Registry != "" && job.Args.Registry != reg.ID) {
			continue
		}
		policy, ok := d.LotPolicies[reg.Connector]
		if !ok {
			continue // no lot builder for this connector yet: transmissions wait, visible as pending
		}
		list, err := d.Store.Unlotted(ctx, reg.ID, job.Args.Redrive, 10000)
		if err != nil {
			return err
		}
		type lot struct {
			commune string
			newest  time.Time
			ids     []string
		}
		lots := map[string]*lot{}
		var order []string
		for _, u := range list {
			key := policy.Key(u)
			if key == "" {
				continue
			}
			l := lots[key]
			if l == nil {
				l = &lot{commune: u.Commune}
				lots[key] = l
				order = append(order, key)
			}
			l.ids = append(l.ids, u.ID)
			if u.ArchivedAt.After(l.newest) {
				l.newest = u.ArchivedAt
			}
		}
		for _, key := range order {
			l := lots[key]
			if !job.Args.Flush && len(job.Args.Redrive) == 0 && !policy.Ready(key, l.newest, now) {
				continue
			}
			if reg.Connector == registry.ConnectorINSEE {
				// Acts are checked when routed; one re-driven after a local
				// refusal still lacks its data: refused again, alone, so the
				// lot's other acts go.
				if l.ids, err = screenINSEE(ctx, d, key, l.ids); err != nil {
					return err
				}
				if len(l.ids) == 0 {
					continue
				}
			}
			id, err := d.Store.CreateLot(ctx, reg.ID, string(reg.Connector), key, l.commune, l.ids, func(tx pgx.Tx, lotID string) error {
				_, err := d.jobs.River.InsertTx(ctx, tx, SendLotArgs{LotID: lotID}, nil)
				return err
			})
			if err != nil {
				return err
			}
			if id != "" {
				d.Logger.Info("lot constitué", "registry", reg.ID, "lot", id, "group", key, "acts", len(l.ids))
			}
		}
	}
	return nil
}
