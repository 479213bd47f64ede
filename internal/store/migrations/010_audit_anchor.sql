-- 010: anchoring the audit chain, fixity audits.
--
-- audit_event_encoding is the exact text whose SHA-256 is the event's
-- digest (009); an export carries it so that an auditor recomputes the
-- digest without the database. audit_event_digest is redefined on it,
-- with the same result.
CREATE FUNCTION audit_event_encoding(e audit_events) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT 'etatcivil-audit-v1|' ||
        audit_field(e.id::text) || audit_field((extract(epoch FROM e.at) * 1000000)::bigint::text) ||
        audit_field(e.xid::text) || audit_field(e.actor) || audit_field(e.actor_name) || audit_field(e.action) ||
        audit_field(e.batch_id::text) || audit_field(e.act_id::text) || audit_field(e.entry_id::text) ||
        audit_field(e.purpose) || audit_field(e.reason_sha256) || audit_field(e.data::text) || audit_field(e.seq::text)
$$;

CREATE OR REPLACE FUNCTION audit_event_digest(e audit_events) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(audit_event_encoding(e), 'UTF8'))
$$;

-- A checkpoint anchors the events chained since the previous one: a
-- Merkle tree (RFC 9162) over their digests, in seq order. Its document,
-- its detached seal (.p7s, timestamped) and its leaves are written once in
-- the archive bucket under object lock; the bucket is the evidence, this
-- table only an index of it.
CREATE TABLE audit_checkpoints (
    number      bigint PRIMARY KEY,
    first_seq   bigint NOT NULL,
    last_seq    bigint NOT NULL,
    root        bytea NOT NULL,
    chain_head  bytea NOT NULL,
    document    bytea NOT NULL,
    signature   bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (first_seq <= last_seq)
);

-- Every fixity check of an archived object version: the bytes re-read and
-- hashed, against the ledger's SHA-256.
CREATE TABLE fixity_checks (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id  uuid NOT NULL REFERENCES entries (id),
    at        timestamptz NOT NULL DEFAULT now(),
    outcome   text NOT NULL CHECK (outcome IN ('ok', 'missing', 'altered')),
    size      bigint,
    sha256    text,
    detail    text NOT NULL DEFAULT ''
);
CREATE INDEX fixity_checks_entry ON fixity_checks (entry_id, at DESC);

-- The last verdict on each archived version, for the pace (oldest checked
-- first) and the act's flag.
ALTER TABLE entries ADD COLUMN fixity_at timestamptz;
ALTER TABLE entries ADD COLUMN fixity_outcome text;
CREATE INDEX entries_fixity_due ON entries (fixity_at NULLS FIRST) WHERE is_version AND state = 'archived';
CREATE INDEX entries_fixity_bad ON entries (fixity_outcome) WHERE fixity_outcome IS NOT NULL AND fixity_outcome <> 'ok';
