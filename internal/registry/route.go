package registry

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/etatcivil/etatcivil/internal/model"
)

// Version is what routing knows of an archived act version.
type Version struct {
	Kind           model.Kind
	SansVie        bool
	CommuneChain   []string // the commune on the register, then its COG ancestors
	Flow           model.Flow
	Year           int // the register's year
	Version        int
	RevisionReason model.RevisionReason
	ArchivedAt     time.Time
}

// Matches reports whether the route sends v to its registry. The
// system's own re-timestamped versions are never routed again.
func (r Route) Matches(v Version) bool {
	if v.RevisionReason == model.RevisionRetimestamp {
		return false
	}
	if r.Versions != "all" && v.Version != 1 {
		return false
	}
	if len(r.Kinds) > 0 && !slices.Contains(r.Kinds, v.Kind) {
		return false
	}
	if r.SansVie != nil && *r.SansVie != v.SansVie {
		return false
	}
	if len(r.Flows) > 0 && !slices.Contains(r.Flows, v.Flow) {
		return false
	}
	if len(r.Communes) > 0 && !slices.ContainsFunc(v.CommuneChain, func(c string) bool { return slices.Contains(r.Communes, c) }) {
		return false
	}
	// An act's age counts whole years since its register closed (31
	// December of its year).
	age := v.ArchivedAt.Year() - v.Year - 1
	if age < 0 {
		age = 0
	}
	if r.MinAgeYears != nil && age < *r.MinAgeYears {
		return false
	}
	if r.MaxAgeYears != nil && age > *r.MaxAgeYears {
		return false
	}
	return true
}

// Route returns the registries v goes to, in file order.
func (c *Config) Route(v Version) []Registry {
	var out []Registry
	for _, r := range c.Registries {
		if r.Route.Matches(v) {
			out = append(out, r)
		}
	}
	return out
}

// Routes holds the registries in force; a reload (SIGHUP) swaps them at
// once for every worker. The zero value routes nowhere.
type Routes struct{ p atomic.Pointer[Config] }

// Set puts c in force.
func (r *Routes) Set(c *Config) { r.p.Store(c) }

// Get returns the registries in force, or nil.
func (r *Routes) Get() *Config {
	if r == nil {
		return nil
	}
	return r.p.Load()
}
