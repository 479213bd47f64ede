package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// LoadHub is the hub the bulk loader creates; its communes are the 400
// the acts are spread over.
const LoadHub = "bench"

// LoadRodez is the commune holding a tenth of the loaded acts: the town
// hall of the read-side scenarios (about 100,000 acts at a million).
const LoadRodez = "12202"

// LoadActs fills db, migrated and empty, with n acts and the companions
// a live database would hold for them, in SQL (the generator runs inside
// PostgreSQL; nothing crosses the network but the audit chain):
//
//   - one hub, 400 communes of the COG with Rodez (12202) holding a tenth
//     of the acts; registers of every kind from 1900 on, every 50th number
//     missing (a gap); batches of 1,000 entries;
//   - one version per act, archived (one in 97 rejected, one in 211
//     stalled), sealed B-LT with its timestamp good for years and its
//     staging copy removed, so that no periodic job has work waiting;
//   - four history rows per act, two transmissions (archives, INSEE) per
//     archived act (some refused, dead or overdue);
//   - ten audit events per act (four state changes, two transmissions
//     created and acknowledged, a PDF read and a person-data read with
//     their purpose), spread over the past year and chained: seq and hash
//     are those the chainer would have written (the digests are computed
//     by PostgreSQL's audit_event_digest, the chain here), so audit verify
//     passes and the chainer only sees the new events.
//
// Triggers are off during the load (as a restore would run): what they
// keep (acts.state, surnames, commune chains, transmissions' commune) is
// written directly. db must be a single connection: the replication role
// is a session setting.
func LoadActs(ctx context.Context, db *pgx.Conn, n int, log io.Writer) error {
	start := time.Now()
	step := func(what, q string) error {
		t0 := time.Now()
		if _, err := db.Exec(ctx, q); err != nil {
			return fmt.Errorf("chargement, %s : %w", what, err)
		}
		if log != nil && time.Since(t0) > time.Second {
			fmt.Fprintf(log, "  %s : %s\n", what, time.Since(t0).Round(100*time.Millisecond))
		}
		return nil
	}
	uuid := func(prefix, expr string) string {
		return fmt.Sprintf(`('%s-0000-4000-8000-' || lpad(to_hex(%s), 12, '0'))::uuid`, prefix, expr)
	}
	batches := (n + 999) / 1000
	steps := []struct{ what, q string }{
		{"rôle", `SET session_replication_role = replica`},
		{"opérateur", `INSERT INTO hubs (id, name) VALUES ('` + LoadHub + `', 'Opérateur de mesure')`},
		{"communes", `CREATE TEMP TABLE bench_communes AS
			SELECT row_number() OVER (ORDER BY code) - 1 AS i, code FROM (
				SELECT '` + LoadRodez + `' AS code UNION SELECT code FROM (SELECT code FROM communes
					WHERE type = 'COM' AND code <> '` + LoadRodez + `' ORDER BY code LIMIT 399) c) x`},
		{"communes de l'opérateur", `INSERT INTO hub_communes (hub_id, commune) SELECT '` + LoadHub + `', code FROM bench_communes`},
		{"lots", fmt.Sprintf(`INSERT INTO batches (id, hub_id, idempotency_key, format, manifest_sha256, entry_count, created_by, created_at, submitted_at)
			SELECT %s, '`+LoadHub+`', 'k' || g, 'json', md5(g::text) || md5(g::text), 1000, 'bench',
				now() - interval '400 days' + g * interval '5 minutes', now() - interval '400 days' + g * interval '5 minutes'
			FROM generate_series(0, %d) g`, uuid("00000000", "g"), batches-1)},
		// Act g: Rodez for g % 10 = 0, else one of the 399 others; kind
		// g % 4; year from 1900 by blocks; number by rank within its
		// register, every 50th rank skipped (a gap).
		{"actes (table de travail)", fmt.Sprintf(`CREATE TEMP TABLE bench_acts AS
			SELECT g, %s AS id,
				CASE WHEN g %% 10 = 0 THEN '`+LoadRodez+`' ELSE (SELECT code FROM bench_communes WHERE i = 1 + (g / 10) %% 399) END AS commune,
				(ARRAY['naissance', 'mariage', 'deces', 'reconnaissance'])[1 + g %% 4] AS kind,
				1900 + (g / 40) %% 126 AS year,
				CASE WHEN g %% 97 = 0 THEN 'rejected' WHEN g %% 211 = 0 THEN 'stalled' ELSE 'archived' END AS state,
				(ARRAY['MARTIN', 'BERNARD', 'THOMAS', 'PETIT', 'ROBERT', 'RICHARD', 'DURAND', 'DUBOIS', 'MOREAU', 'LAURENT',
				       'SIMON', 'MICHEL', 'LEFEBVRE', 'LEROY', 'ROUX', 'DAVID', 'BERTRAND', 'MOREL', 'FOURNIER', 'GIRARD'])[1 + (g * 7) %% 20]
				  || CASE WHEN g %% 3 = 0 THEN '' ELSE '-' || (g %% 5000)::text END AS surname,
				now() - interval '400 days' + (g / 1000) * interval '5 minutes' AS t0
			FROM generate_series(0, %d) g`, uuid("10000000", "g"), n-1)},
		{"numéros", `CREATE TEMP TABLE bench_numbered AS
			SELECT a.*, r + r / 50 AS number FROM (
				SELECT *, row_number() OVER (PARTITION BY commune, year, kind ORDER BY g) AS r FROM bench_acts) a`},
		{"actes", `INSERT INTO acts (id, commune, year, kind, number, commune_chain, state, surnames, created_at)
			SELECT id, commune, year, kind, number, ARRAY[commune], state, ARRAY[surname], t0 FROM bench_numbered`},
		{"chaînes de communes", `INSERT INTO commune_chains (commune, chain) SELECT code, ARRAY[code] FROM bench_communes`},
		{"noms", `INSERT INTO act_surnames (surname, commune, act_id) SELECT surname, commune, id FROM bench_numbered`},
		{"entrées", `INSERT INTO entries (id, batch_id, idx, file, size, sha256, commune, kind, year, number, flow, index_data, act_id, version, is_version,
				state, reason, message, received_size, received_sha256, received_at, pages, pdf_version,
				sealed_sha256, sealed_size, sealed_at, seal_level, ts_expires_at, object_key, version_id, archived_at, retain_until,
				staging_removed_at, fixity_at, fixity_outcome, created_at, updated_at)
			SELECT ` + uuid("20000000", "g") + `, ` + uuid("00000000", "g / 1000") + `, g % 1000, 'f' || g || '.pdf', 300000 + g % 700000,
				md5(g::text) || md5(g::text), commune, kind, year, number, 'reprise',
				jsonb_build_object('persons', jsonb_build_array(jsonb_build_object('role', 'titulaire', 'surname', surname, 'given_names', jsonb_build_array('Jeanne')))),
				id, 1, true, state,
				CASE WHEN state = 'rejected' THEN 'not_pdf' END,
				CASE WHEN state = 'rejected' THEN 'Le fichier n''est pas un PDF.' WHEN state = 'stalled' THEN 'Stockage indisponible.' END,
				300000 + g % 700000, md5(g::text) || md5(g::text), t0, 1 + g % 2, '1.7',
				CASE WHEN state = 'archived' THEN md5('s' || g) || md5('s' || g) END,
				CASE WHEN state = 'archived' THEN 330000 + g % 700000 END,
				CASE WHEN state = 'archived' THEN t0 + interval '2 seconds' END,
				CASE WHEN state = 'archived' THEN 'B-LT' END,
				CASE WHEN state = 'archived' THEN t0 + interval '8 years' END,
				CASE WHEN state = 'archived' THEN 'actes/' || commune || '/' || id || '/v1.pdf' END,
				CASE WHEN state = 'archived' THEN 'v' || g END,
				CASE WHEN state = 'archived' THEN t0 + interval '3 seconds' END,
				CASE WHEN state = 'archived' THEN t0 + interval '100 years' END,
				CASE WHEN state <> 'stalled' THEN t0 + interval '1 hour' END,
				CASE WHEN state = 'archived' THEN now() - (g % 43200) * interval '1 minute' END,
				CASE WHEN state = 'archived' THEN 'ok' END,
				t0, t0 + interval '3 seconds'
			FROM bench_numbered`},
		{"historique", `INSERT INTO entry_history (entry_id, state, reason, at)
			SELECT ` + uuid("20000000", "a.g") + `, s.state, CASE WHEN s.o = 3 AND a.state = 'rejected' THEN 'not_pdf' END, a.t0 + s.o * interval '1 second'
			FROM bench_numbered a, LATERAL (VALUES ('received', 0), ('validated', 1), ('sealed', 2), (a.state, 3)) s(state, o)
			ORDER BY a.g, s.o`},
		{"transmissions", `INSERT INTO transmissions (id, registry, connector, act_id, entry_id, version, idempotency_key, state, attempts,
				ack_id, reason, sent_at, acked_at, created_at, updated_at, commune)
			SELECT ` + uuid("30000000", "g * 2 + r.o") + `, r.registry, r.registry, id, ` + uuid("20000000", "g") + `, 1, md5(r.registry || g),
				CASE WHEN g % 101 = 0 THEN 'refused' WHEN g % 307 = 0 THEN 'dead' WHEN g % 509 = 0 THEN 'overdue' ELSE 'acknowledged' END, 1,
				CASE WHEN g % 101 <> 0 THEN 'ack-' || r.registry || '-' || g END, CASE WHEN g % 101 = 0 THEN 'refus du registre' END,
				t0 + interval '4 seconds', t0 + interval '10 seconds', t0 + interval '3 seconds', t0 + interval '10 seconds', commune
			FROM bench_numbered, (VALUES ('archives', 0), ('insee', 1)) r(registry, o) WHERE state = 'archived'`},
		// Ten events per act, ids and seqs 10g+1 … 10g+10 in time order,
		// first in a work table (no index, no WAL): their digests are
		// computed there and they are inserted once with their hash.
		{"journal d'audit (table de travail)", `CREATE TEMP TABLE bench_events (LIKE audit_events INCLUDING DEFAULTS)`},
		{"journal d'audit (événements)", `INSERT INTO bench_events (id, at, actor, actor_name, action, batch_id, act_id, entry_id, purpose, reason, reason_sha256, data, seq)
			SELECT g * 10 + k + 1, now() - interval '400 days' + (g * 10 + k) * interval '3 seconds',
				CASE WHEN k >= 8 THEN 'tok_mairie_' || commune ELSE 'system' END,
				CASE WHEN k >= 8 THEN 'Mairie ' || commune ELSE 'etatcivil' END,
				(ARRAY['entry.state', 'entry.state', 'entry.state', 'entry.state', 'transmission.create', 'transmission.create',
				       'transmission.acknowledged', 'transmission.acknowledged', 'act.read_pdf', 'act.read_persons'])[k + 1],
				` + uuid("00000000", "g / 1000") + `, id, ` + uuid("20000000", "g") + `,
				CASE WHEN k >= 8 THEN 'delivrance_copie' END,
				CASE WHEN k >= 8 THEN 'Demande de copie intégrale n° ' || g END,
				CASE WHEN k >= 8 THEN encode(sha256(convert_to('Demande de copie intégrale n° ' || g, 'UTF8')), 'hex') END,
				CASE WHEN k < 4 THEN jsonb_build_object('state', (ARRAY['received', 'validated', 'sealed', 'archived'])[k + 1])
				     WHEN k < 8 THEN jsonb_build_object('registry', (ARRAY['archives', 'insee'])[1 + k % 2])
				     ELSE jsonb_build_object('channel', 'api') END,
				g * 10 + k + 1
			FROM bench_numbered, generate_series(0, 9) k ORDER BY g, k`},
	}
	for _, s := range steps {
		if err := step(s.what, s.q); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := chainLoaded(ctx, db); err != nil {
		return err
	}
	if log != nil {
		fmt.Fprintf(log, "  chaîne d'audit : %s\n", time.Since(t0).Round(100*time.Millisecond))
	}
	for _, s := range []struct{ what, q string }{
		{"journal d'audit", `INSERT INTO audit_events OVERRIDING SYSTEM VALUE SELECT e.id, e.at, e.xid, e.actor, e.actor_name, e.action,
				e.batch_id, e.act_id, e.entry_id, e.purpose, e.reason, e.reason_sha256, e.data, e.seq, c.hash
			FROM bench_events e JOIN bench_chain c ON c.seq = e.seq ORDER BY e.seq`},
		{"séquence du journal", `SELECT setval(pg_get_serial_sequence('audit_events', 'id'), (SELECT max(id) FROM audit_events))`},
		{"tables de travail", `DROP TABLE bench_chain, bench_events, bench_acts, bench_numbered, bench_communes`},
		{"rôle", `SET session_replication_role = origin`},
		{"VACUUM ANALYZE", `VACUUM ANALYZE`},
	} {
		if err := step(s.what, s.q); err != nil {
			return err
		}
	}
	if log != nil {
		fmt.Fprintf(log, "  %d actes chargés en %s\n", n, time.Since(start).Round(time.Second))
	}
	return nil
}

// chainLoaded computes the hash of every event of bench_events, as the
// chainer would have: h_n = SHA-256(h_{n-1} ‖ digest_n), the digests
// from PostgreSQL's audit_event_digest of the row as it will be stored.
// The digests are read in one pass (32 bytes each kept), the hashes
// written to the work table bench_chain (seq, hash).
func chainLoaded(ctx context.Context, db *pgx.Conn) error {
	rows, err := db.Query(ctx, `SELECT audit_event_digest(ROW(e.*)::audit_events) FROM bench_events e ORDER BY seq`)
	if err != nil {
		return err
	}
	var hashes []byte // 32 bytes per event, in seq order
	prev := make([]byte, sha256.Size)
	for rows.Next() {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return err
		}
		h := sha256.New()
		h.Write(prev)
		h.Write(d)
		prev = h.Sum(nil)
		hashes = append(hashes, prev...)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chaîne d'audit : %w", err)
	}
	if _, err := db.Exec(ctx, `CREATE TEMP TABLE bench_chain (seq bigint PRIMARY KEY, hash bytea NOT NULL)`); err != nil {
		return err
	}
	i := 0
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"bench_chain"}, []string{"seq", "hash"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(hashes)/sha256.Size {
				return nil, nil
			}
			i++
			return []any{int64(i), hashes[(i-1)*sha256.Size : i*sha256.Size]}, nil
		})); err != nil {
		return fmt.Errorf("chaîne d'audit : %w", err)
	}
	return nil
}
