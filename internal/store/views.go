package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etatcivil/etatcivil/internal/model"
)

// BatchEntry is one manifest entry as the batch JSON shows it.
type BatchEntry struct {
	ID        *string `json:"id"`
	File      string  `json:"file"`
	Commune   *string `json:"commune"`
	Kind      *string `json:"kind"`
	Year      *int    `json:"year"`
	Number    *int    `json:"number"`
	Version   *int    `json:"version"`
	State     string  `json:"state"`
	Reason    *string `json:"reason"`
	Message   *string `json:"message"`
	Waiting   *string `json:"waiting,omitempty"`
	Unchanged bool    `json:"unchanged,omitempty"`
	EntryID   string  `json:"entry_id"`
}

// Counts sums a batch's entries by outcome.
type Counts struct {
	Total     int `json:"total"`
	Pending   int `json:"pending"`
	Validated int `json:"validated"`
	Archived  int `json:"archived"`
	Rejected  int `json:"rejected"`
	Stalled   int `json:"stalled"`
}

// BatchView is the batch JSON of INTERFACE.md.
type BatchView struct {
	ID           string       `json:"id"`
	Hub          string       `json:"hub"`
	State        string       `json:"state"`
	CreatedAt    time.Time    `json:"created_at"`
	SubmittedAt  *time.Time   `json:"submitted_at"`
	MissingFiles []string     `json:"missing_files"`
	Counts       Counts       `json:"counts"`
	Acts         []BatchEntry `json:"acts"`
}

// batchHeader reads batch id's own row if it is in scope, ErrNotFound
// otherwise (a malformed id included).
func (s *Store) batchHeader(ctx context.Context, sc Scope, id string) (BatchView, error) {
	var b BatchView
	if _, err := parseUUID(id); err != nil {
		return b, fmt.Errorf("lot %q: %w", id, ErrNotFound)
	}
	err := s.Pool.QueryRow(ctx, `SELECT id, hub_id, created_at, submitted_at FROM batches WHERE id = $1 AND ($2 = '' OR hub_id = $2)`,
		id, sc.HubID).Scan(&b.ID, &b.Hub, &b.CreatedAt, &b.SubmittedAt)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !sc.All && sc.HubID == "") {
		return b, fmt.Errorf("lot %q: %w", id, ErrNotFound)
	}
	return b, err
}

// BatchInScope answers ErrNotFound unless batch id exists in scope: the
// check of each file upload, one row read whatever the batch's size
// (Batch reads every entry).
func (s *Store) BatchInScope(ctx context.Context, sc Scope, id string) error {
	_, err := s.batchHeader(ctx, sc, id)
	return err
}

// Batch returns a batch with all its entries, or ErrNotFound if it does
// not exist or lies outside sc.
func (s *Store) Batch(ctx context.Context, sc Scope, id string) (BatchView, error) {
	b, err := s.batchHeader(ctx, sc, id)
	if err != nil {
		return b, err
	}
	rows, err := s.Pool.Query(ctx, `SELECT e.id, e.act_id::text, e.file, e.commune, e.kind, e.year, e.number, e.version,
			coalesce(h.state, e.state), coalesce(h.reason, e.reason), coalesce(h.message, e.message), coalesce(h.waiting, e.waiting),
			e.matched_entry IS NOT NULL
		FROM entries e LEFT JOIN entries h ON h.id = e.matched_entry
		WHERE e.batch_id = $1 ORDER BY e.idx`, id)
	if err != nil {
		return b, err
	}
	b.Acts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (BatchEntry, error) {
		var e BatchEntry
		err := r.Scan(&e.EntryID, &e.ID, &e.File, &e.Commune, &e.Kind, &e.Year, &e.Number, &e.Version,
			&e.State, &e.Reason, &e.Message, &e.Waiting, &e.Unchanged)
		return e, err
	})
	if err != nil {
		return b, err
	}
	b.MissingFiles = []string{}
	anyMissing := false
	for _, e := range b.Acts {
		b.Counts.Total++
		switch model.State(e.State) {
		case model.StateArchived:
			b.Counts.Archived++
		case model.StateValidated:
			b.Counts.Validated++
			b.Counts.Pending++
		case model.StateRejected:
			b.Counts.Rejected++
			if e.Reason != nil && *e.Reason == string(model.ReasonFileMissing) {
				anyMissing = true
			}
		case model.StateStalled:
			b.Counts.Stalled++
			b.Counts.Pending++
		case model.StateExpected:
			b.Counts.Pending++
			if b.SubmittedAt == nil {
				b.MissingFiles = append(b.MissingFiles, e.File)
			}
		default:
			b.Counts.Pending++
		}
	}
	switch {
	case b.SubmittedAt == nil:
		b.State = "receiving"
	case b.Counts.Pending > 0:
		b.State = "processing"
	case anyMissing:
		b.State = "incomplete"
	default:
		b.State = "done"
	}
	return b, nil
}

// ActFilter selects acts for ListActs.
type ActFilter struct {
	Commune string
	Year    int
	Kind    string
	State   string
	// RegistryState keeps acts with a transmission in this state
	// (refused, dead, overdue…).
	RegistryState string
	Q             string // act number, or a surname (case and accents ignored)
	// Number and Surname are the explicit forms of Q (auditors' search
	// across communes); both may be given, with Q too.
	Number  int
	Surname string
	Limit   int
	Cursor  string
}

// ActSummary is one act in a list: the act and its latest version's state.
type ActSummary struct {
	ID             string  `json:"id"`
	Commune        string  `json:"commune"`
	Kind           string  `json:"kind"`
	Year           int     `json:"year"`
	Number         int     `json:"number"`
	CurrentVersion *int    `json:"current_version"`
	Version        *int    `json:"version"`
	State          string  `json:"state"`
	Reason         *string `json:"reason"`
	Message        *string `json:"message"`
	Waiting        *string `json:"waiting"`
}

// currentStates are the states in which a version can be current.
const currentStates = `('archived')`

// latestVersionSQL picks, per act, the newest version entry.
const actSummarySelect = `SELECT a.id, a.commune, a.kind, a.year, a.number,
		(SELECT max(c.version) FROM entries c WHERE c.act_id = a.id AND c.is_version AND c.state IN ` + currentStates + `),
		v.version, coalesce(v.state, 'rejected'), v.reason, v.message, v.waiting
	FROM acts a
	LEFT JOIN LATERAL (SELECT version, state, reason, message, waiting FROM entries e
		WHERE e.act_id = a.id AND e.is_version ORDER BY (e.state <> 'rejected') DESC, e.version DESC, e.created_at DESC LIMIT 1) v ON true`

func scanSummary(r pgx.Row) (ActSummary, error) {
	var a ActSummary
	err := r.Scan(&a.ID, &a.Commune, &a.Kind, &a.Year, &a.Number, &a.CurrentVersion, &a.Version, &a.State, &a.Reason, &a.Message, &a.Waiting)
	return a, err
}

// ListActs returns a page of acts in scope, ordered by key, with a cursor
// for the next page and the total count.
func (s *Store) ListActs(ctx context.Context, sc Scope, f ActFilter) ([]ActSummary, string, int, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	var afterCommune, afterKind string
	var afterYear, afterNumber int
	if f.Cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		parts := strings.Split(string(raw), "|")
		if err != nil || len(parts) != 4 {
			return nil, "", 0, fmt.Errorf("curseur: %w", ErrInvalid)
		}
		afterCommune, afterKind = parts[0], parts[2]
		afterYear, _ = strconv.Atoi(parts[1])
		afterNumber, _ = strconv.Atoi(parts[3])
	}
	number, _ := strconv.Atoi(strings.TrimSpace(f.Q))
	// acts.state and acts.surnames are kept by a trigger (migration 006):
	// the filters and the count read acts and their indexes only.
	where := `WHERE ` + scopeOn(sc, f.Commune, "a") + `
		AND ($3 = 0 OR a.year = $3)
		AND ($4 = '' OR a.kind = $4)
		AND ($5 = '' OR a.state = $5)
		AND ($6 = '' OR a.number = $7 OR a.id IN (SELECT s.act_id FROM act_surnames s
			WHERE s.surname = etatcivil_fold($6) AND ` + scopeOn(sc, f.Commune, "s") + `))
		AND ($8 = '' OR a.id IN (SELECT t.act_id FROM transmissions t WHERE t.state = $8 AND ` + scopeOn(sc, f.Commune, "t") + `))
		AND ($9 = 0 OR a.number = $9)
		AND ($10 = '' OR a.id IN (SELECT s.act_id FROM act_surnames s
			WHERE s.surname = etatcivil_fold($10) AND ` + scopeOn(sc, f.Commune, "s") + `))`
	args := []any{sc.communeFilter(), f.Commune, f.Year, f.Kind, f.State, strings.TrimSpace(f.Q), number, f.RegistryState,
		f.Number, strings.TrimSpace(f.Surname)}
	var total int
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM acts a `+where, args...).Scan(&total); err != nil {
		return nil, "", 0, fmt.Errorf("comptage des actes: %w", err)
	}
	args = append(args, afterCommune, afterYear, afterKind, afterNumber, f.Limit+1)
	rows, err := s.Pool.Query(ctx, `WITH page AS (SELECT a.* FROM acts a `+where+`
		AND ($11 = '' OR (a.commune, a.year, a.kind, a.number) > ($11, $12, $13, $14))
		ORDER BY a.commune, a.year, a.kind, a.number LIMIT $15) `+
		strings.Replace(actSummarySelect, "FROM acts a", "FROM page a", 1)+` ORDER BY a.commune, a.year, a.kind, a.number`, args...)
	if err != nil {
		return nil, "", 0, fmt.Errorf("liste des actes: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ActSummary, error) { return scanSummary(r) })
	if err != nil {
		return nil, "", 0, err
	}
	next := ""
	if len(list) > f.Limit {
		list = list[:f.Limit]
		l := list[len(list)-1]
		next = base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s|%d|%s|%d", l.Commune, l.Year, l.Kind, l.Number))
	}
	return list, next, total, nil
}

// VersionView is one version of an act.
type VersionView struct {
	Version        int        `json:"version"`
	SHA256         string     `json:"sha256"`
	SealedSHA256   *string    `json:"sealed_sha256"`
	State          string     `json:"state"`
	Reason         *string    `json:"reason"`
	Message        *string    `json:"message"`
	RevisionReason *string    `json:"revision_reason"`
	ArchivedAt     *time.Time `json:"archived_at"`
	ObjectKey      *string    `json:"object_key"`
	VersionID      *string    `json:"version_id"`
	BatchID        string     `json:"batch_id"`
	File           string     `json:"file"`
	Pages          *int       `json:"pages"`
	PDFVersion     *string    `json:"pdf_version"`
	PDFA           *string    `json:"pdfa"`
	Flow           *string    `json:"flow"`
	// FixityOutcome is the last fixity audit's verdict on the archived
	// object version (ok, missing, altered; null: not checked yet).
	FixityOutcome *string    `json:"fixity_outcome"`
	FixityAt      *time.Time `json:"fixity_at"`
	entryID       string
	indexData     []byte
}

// HistoryItem is one state of one version.
type HistoryItem struct {
	Version int       `json:"version"`
	State   string    `json:"state"`
	Reason  *string   `json:"reason,omitempty"`
	Waiting *string   `json:"waiting,omitempty"`
	At      time.Time `json:"at"`
}

// ActView is the act JSON of INTERFACE.md.
type ActView struct {
	ActSummary
	Versions      []VersionView      `json:"versions"`
	History       []HistoryItem      `json:"history"`
	Transmissions []TransmissionView `json:"transmissions"`
	Persons       json.RawMessage    `json:"persons,omitempty"`
}

// Act returns an act in scope, or ErrNotFound. With persons, the current
// (or latest) version's persons are included: the caller must audit the read.
func (s *Store) Act(ctx context.Context, sc Scope, id string, persons bool) (ActView, error) {
	var a ActView
	if _, err := parseUUID(id); err != nil {
		return a, fmt.Errorf("acte %q: %w", id, ErrNotFound)
	}
	sum, err := scanSummary(s.Pool.QueryRow(ctx, actSummarySelect+` WHERE a.id = $1 AND ($2::text[] IS NULL OR a.commune_chain && $2)`, id, sc.communeFilter()))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("acte %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return a, err
	}
	a.ActSummary = sum
	rows, err := s.Pool.Query(ctx, `SELECT id, version, sha256, state, reason, message, revision_reason, batch_id, file, pages, pdf_version, pdfa, flow, index_data,
			sealed_sha256, archived_at, object_key, version_id, fixity_outcome, fixity_at
		FROM entries WHERE act_id = $1 AND is_version ORDER BY version, created_at`, id)
	if err != nil {
		return a, err
	}
	a.Versions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (VersionView, error) {
		var v VersionView
		err := r.Scan(&v.entryID, &v.Version, &v.SHA256, &v.State, &v.Reason, &v.Message, &v.RevisionReason, &v.BatchID, &v.File,
			&v.Pages, &v.PDFVersion, &v.PDFA, &v.Flow, &v.indexData, &v.SealedSHA256, &v.ArchivedAt, &v.ObjectKey, &v.VersionID,
			&v.FixityOutcome, &v.FixityAt)
		return v, err
	})
	if err != nil {
		return a, err
	}
	rows, err = s.Pool.Query(ctx, `SELECT e.version, h.state, h.reason, h.waiting, h.at FROM entry_history h JOIN entries e ON e.id = h.entry_id
		WHERE e.act_id = $1 AND e.is_version ORDER BY h.at, h.id`, id)
	if err != nil {
		return a, err
	}
	a.History, err = pgx.CollectRows(rows, pgx.RowToStructByPos[HistoryItem])
	if err != nil {
		return a, err
	}
	a.Transmissions, err = s.actTransmissions(ctx, id)
	if err != nil {
		return a, err
	}
	if persons && len(a.Versions) > 0 {
		v := a.Versions[len(a.Versions)-1]
		for _, c := range a.Versions {
			if a.CurrentVersion != nil && c.Version == *a.CurrentVersion && c.State != string(model.StateRejected) {
				v = c
			}
		}
		var idx struct {
			Persons json.RawMessage `json:"persons"`
		}
		if err := json.Unmarshal(v.indexData, &idx); err == nil {
			a.Persons = idx.Persons
		}
		if a.Persons == nil {
			a.Persons = json.RawMessage("[]")
		}
	}
	return a, nil
}

func parseUUID(s string) (string, error) {
	if len(s) != 36 || strings.Count(s, "-") != 4 {
		return "", ErrInvalid
	}
	for _, c := range strings.ReplaceAll(s, "-", "") {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return "", ErrInvalid
		}
	}
	return s, nil
}

// ActWithPersonsRead returns an act in scope with its persons, and
// records the read (actor, purpose) before it is returned: no record,
// no data.
func (s *Store) ActWithPersonsRead(ctx context.Context, sc Scope, id string, actor Actor, purpose, reason string) (ActView, error) {
	// The act is read first, then its read recorded: the caller answers
	// only once the record is committed (no record, no data). The read
	// is not made inside the record's transaction: it takes a connection
	// of its own, and under load a pool whose every connection waits in a
	// transaction for another would stall (the read-side bench found it).
	a, err := s.Act(ctx, sc, id, true)
	if err != nil {
		return ActView{}, err
	}
	if err := s.Audit(ctx, Event{Actor: actor, Action: "act.read_persons", ActID: id, Purpose: purpose, Reason: reason}); err != nil {
		return ActView{}, err
	}
	return a, nil
}
