package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// What town halls and hubs follow: a commune's dashboard, its registers'
// completeness, what needs attention, and a hub's batches. The pages and
// the API read the same functions.

// scopeOn restricts rows of alias (acts a or transmissions t, both with
// a commune column) to the caller's scope ($1, NULL for all) and, when
// set, to one commune and its predecessors ($2). The communes come from
// etatcivil_scope() (migration 006), so indexes on commune serve.
func scopeOn(sc Scope, commune, alias string) string {
	if sc.All && commune == "" {
		return `($1::text[] IS NULL AND $2::text = '')`
	}
	return alias + `.commune = ANY(etatcivil_scope($1, $2))`
}

// StateCount is how many acts of a register (year, kind) are in a state.
type StateCount struct {
	Year  int    `json:"year"`
	Kind  string `json:"kind"`
	State string `json:"state"`
	Count int    `json:"count"`
}

// Attention is something that needs a person: an act rejected or stalled,
// or a transmission refused, overdue or dead.
type Attention struct {
	What     string    `json:"what"` // rejected, stalled, refused, overdue, dead
	ActID    string    `json:"act_id"`
	Commune  string    `json:"commune"`
	Year     int       `json:"year"`
	Kind     string    `json:"kind"`
	Number   int       `json:"number"`
	Registry *string   `json:"registry"`
	Reason   *string   `json:"reason"`
	Message  *string   `json:"message"`
	At       time.Time `json:"at"`
}

// Dashboard is a commune's (or a scope's) overview.
type Dashboard struct {
	Commune   string       `json:"commune"`
	Total     int          `json:"total"`
	Counts    []StateCount `json:"counts"`
	Attention []Attention  `json:"attention"`
	// Transmissions counts transmissions by registry and state.
	Transmissions []RegistryCount `json:"transmissions"`
}

// RegistryCount is how many transmissions to a registry are in a state.
type RegistryCount struct {
	Registry string `json:"registry"`
	State    string `json:"state"`
	Count    int    `json:"count"`
}

// attentionOrder: what blocks an act first, then what blocks a registry.
var attentionOrder = map[string]int{"rejected": 0, "stalled": 1, "refused": 2, "dead": 3, "overdue": 4}

// Dashboard counts the acts in scope (of commune, if set) by register and
// state, counts their transmissions, and lists what needs attention
// first (at most limit items). With DashboardTTL, a dashboard counted
// less than that long ago is returned as it was (concurrent callers of
// the same one wait for a single count); callers must not modify it.
func (s *Store) Dashboard(ctx context.Context, sc Scope, commune string, limit int) (Dashboard, error) {
	if s.DashboardTTL <= 0 {
		return s.dashboard(ctx, sc, commune, limit)
	}
	key := fmt.Sprintf("%t|%s|%s|%s|%d", sc.All, sc.HubID, strings.Join(sc.Communes, ","), commune, limit)
	return s.dash.get(ctx, key, s.DashboardTTL, func() (Dashboard, error) {
		// The count outlives a caller that gives up: the others wait for it.
		return s.dashboard(context.WithoutCancel(ctx), sc, commune, limit)
	})
}

// dashCache keeps recent dashboards; at most one count per key runs.
type dashCache struct {
	mu sync.Mutex
	m  map[string]*dashEntry
}

type dashEntry struct {
	done chan struct{} // closed once d and err are set
	at   time.Time
	d    Dashboard
	err  error
}

func (c *dashCache) get(ctx context.Context, key string, ttl time.Duration, count func() (Dashboard, error)) (Dashboard, error) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*dashEntry{}
	}
	e := c.m[key]
	if e != nil {
		select {
		case <-e.done:
			if e.err != nil || time.Since(e.at) > ttl {
				e = nil
			}
		default: // being counted: wait for it
		}
	}
	if e == nil {
		if len(c.m) > 10_000 {
			clear(c.m) // one entry per token and commune asked: never this many in use
		}
		e = &dashEntry{done: make(chan struct{})}
		c.m[key] = e
		c.mu.Unlock()
		e.d, e.err = count()
		e.at = time.Now()
		close(e.done)
		return e.d, e.err
	}
	c.mu.Unlock()
	select {
	case <-e.done:
		return e.d, e.err
	case <-ctx.Done():
		return Dashboard{}, ctx.Err()
	}
}

func (s *Store) dashboard(ctx context.Context, sc Scope, commune string, limit int) (Dashboard, error) {
	d := Dashboard{Commune: commune, Counts: []StateCount{}, Attention: []Attention{}, Transmissions: []RegistryCount{}}
	rows, err := s.Pool.Query(ctx, `SELECT a.year, a.kind, a.state, count(*) FROM acts a WHERE `+scopeOn(sc, commune, "a")+`
		GROUP BY a.year, a.kind, a.state ORDER BY a.year DESC, a.kind, a.state`, sc.communeFilter(), commune)
	if err != nil {
		return d, err
	}
	d.Counts, err = pgx.CollectRows(rows, pgx.RowToStructByPos[StateCount])
	if err != nil {
		return d, err
	}
	for _, c := range d.Counts {
		d.Total += c.Count
	}
	rows, err = s.Pool.Query(ctx, `SELECT t.registry, t.state, count(*) FROM transmissions t
		WHERE `+scopeOn(sc, commune, "t")+` GROUP BY t.registry, t.state ORDER BY t.registry, t.state`, sc.communeFilter(), commune)
	if err != nil {
		return d, err
	}
	if d.Transmissions, err = pgx.CollectRows(rows, pgx.RowToStructByPos[RegistryCount]); err != nil {
		return d, err
	}
	if d.Attention, err = s.Attention(ctx, sc, commune, limit); err != nil {
		return d, err
	}
	return d, nil
}

// Attention lists what needs attention in scope: rejected and stalled
// acts (with the entry's reason and French message), then refused, dead
// and overdue transmissions (with the registry's reason), newest first
// within each kind of problem.
func (s *Store) Attention(ctx context.Context, sc Scope, commune string, limit int) ([]Attention, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.Pool.Query(ctx, `(SELECT a.state, a.id::text, a.commune, a.year, a.kind, a.number, NULL::text, e.reason, e.message, e.updated_at
			FROM acts a
			JOIN LATERAL (SELECT reason, message, updated_at FROM entries e WHERE e.act_id = a.id AND e.is_version
				ORDER BY e.version DESC, e.created_at DESC LIMIT 1) e ON true
			WHERE a.state IN ('rejected', 'stalled') AND `+scopeOn(sc, commune, "a")+`
			ORDER BY e.updated_at DESC LIMIT $3)
		UNION ALL
		(SELECT t.state, a.id::text, a.commune, a.year, a.kind, a.number, t.registry, NULL, t.reason, t.updated_at
			FROM transmissions t JOIN acts a ON a.id = t.act_id
			WHERE t.state IN ('refused', 'dead', 'overdue') AND `+scopeOn(sc, commune, "t")+`
			ORDER BY t.updated_at DESC LIMIT $3)`, sc.communeFilter(), commune, limit)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Attention])
	if err != nil {
		return nil, err
	}
	sortAttention(list)
	if len(list) > limit {
		list = list[:limit]
	}
	return list, nil
}

func sortAttention(list []Attention) {
	// Stable insertion by (problem order, newest first): lists are short.
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && attentionLess(list[j], list[j-1]); j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
}

func attentionLess(a, b Attention) bool {
	if oa, ob := attentionOrder[a.What], attentionOrder[b.What]; oa != ob {
		return oa < ob
	}
	return a.At.After(b.At)
}

// Register is one register's completeness: the act numbers received for
// (commune, year, kind) and the gaps in their sequence. Numbers start at
// 1, so a register whose first act is n° 5 misses 1–4; what comes after
// the last number received cannot be known.
type Register struct {
	Commune string   `json:"commune"`
	Year    int      `json:"year"`
	Kind    string   `json:"kind"`
	Count   int      `json:"count"`
	First   int      `json:"first"`
	Last    int      `json:"last"`
	Missing int      `json:"missing"`
	Gaps    [][2]int `json:"gaps"` // [from, to], both missing
	// Archived counts the acts whose state is archived.
	Archived int `json:"archived"`
}

// Registers lists the registers in scope (of commune, year and kind when
// set), newest year first, with their gaps.
func (s *Store) Registers(ctx context.Context, sc Scope, commune string, year int, kind string) ([]Register, error) {
	filter := scopeOn(sc, commune, "a") + ` AND ($3 = 0 OR a.year = $3) AND ($4 = '' OR a.kind = $4)`
	args := []any{sc.communeFilter(), commune, year, kind}
	rows, err := s.Pool.Query(ctx, `SELECT a.commune, a.year, a.kind, count(*), min(a.number), max(a.number), max(a.number) - count(*),
			count(*) FILTER (WHERE a.state = 'archived')
		FROM acts a WHERE `+filter+` GROUP BY a.commune, a.year, a.kind ORDER BY a.commune, a.year DESC, a.kind`, args...)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Register, error) {
		var g Register
		err := r.Scan(&g.Commune, &g.Year, &g.Kind, &g.Count, &g.First, &g.Last, &g.Missing, &g.Archived)
		g.Gaps = [][2]int{}
		return g, err
	})
	if err != nil || len(list) == 0 {
		return list, err
	}
	index := map[string]int{}
	for i, g := range list {
		index[fmt.Sprintf("%s/%d/%s", g.Commune, g.Year, g.Kind)] = i
	}
	rows, err = s.Pool.Query(ctx, `SELECT commune, year, kind, coalesce(prev, 0) + 1, number - 1 FROM (
			SELECT a.commune, a.year, a.kind, a.number, lag(a.number) OVER (PARTITION BY a.commune, a.year, a.kind ORDER BY a.number) AS prev
			FROM acts a WHERE `+filter+`) x
		WHERE number > coalesce(prev, 0) + 1 ORDER BY commune, year, kind, number`, args...)
	if err != nil {
		return nil, err
	}
	var c, k string
	var y, from, to int
	_, err = pgx.ForEachRow(rows, []any{&c, &y, &k, &from, &to}, func() error {
		if i, ok := index[fmt.Sprintf("%s/%d/%s", c, y, k)]; ok {
			list[i].Gaps = append(list[i].Gaps, [2]int{from, to})
		}
		return nil
	})
	return list, err
}

// BatchItem is one batch in a hub's list.
type BatchItem struct {
	ID          string     `json:"id"`
	Hub         string     `json:"hub"`
	State       string     `json:"state"`
	CreatedAt   time.Time  `json:"created_at"`
	SubmittedAt *time.Time `json:"submitted_at"`
	Total       int        `json:"total"`
	Archived    int        `json:"archived"`
	Rejected    int        `json:"rejected"`
	Pending     int        `json:"pending"`
}

// ListBatches lists the batches of a hub (every hub when hubID is
// empty), newest first.
func (s *Store) ListBatches(ctx context.Context, hubID string, limit int) ([]BatchItem, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	// The state as Batch computes it: receiving until submitted, then
	// processing while an entry is pending, incomplete if a file never
	// came, else done.
	rows, err := s.Pool.Query(ctx, `SELECT id, hub_id,
			CASE WHEN submitted_at IS NULL THEN 'receiving' WHEN pending > 0 THEN 'processing' WHEN missing > 0 THEN 'incomplete' ELSE 'done' END,
			created_at, submitted_at, total, archived, rejected, pending
		FROM (SELECT b.id::text, b.hub_id, b.created_at, b.submitted_at,
			count(e.id) AS total, count(e.id) FILTER (WHERE coalesce(h.state, e.state) = 'archived') AS archived,
			count(e.id) FILTER (WHERE coalesce(h.state, e.state) = 'rejected') AS rejected,
			count(e.id) FILTER (WHERE coalesce(h.state, e.state) NOT IN ('archived', 'rejected')) AS pending,
			count(e.id) FILTER (WHERE e.reason = 'file_missing') AS missing
			FROM batches b LEFT JOIN entries e ON e.batch_id = b.id LEFT JOIN entries h ON h.id = e.matched_entry
			WHERE ($1 = '' OR b.hub_id = $1)
			GROUP BY b.id ORDER BY b.created_at DESC LIMIT $2) x
		ORDER BY created_at DESC`, hubID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[BatchItem])
}

// CommuneInScope reports whether the acts of commune (as written on its
// registers) are in scope.
func (s *Store) CommuneInScope(ctx context.Context, sc Scope, commune string) (bool, error) {
	var ok bool
	err := s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM commune_chains WHERE commune = $2 AND ($1::text[] IS NULL OR chain && $1))`,
		sc.communeFilter(), commune).Scan(&ok)
	return ok, err
}
