-- 001: the foundation. Communes, hubs, tokens, batches, acts, entries
-- (manifest entries, some of which are versions of an act) and the
-- append-only audit log.

CREATE TABLE cog_snapshot (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    date        text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE communes (
    code   text NOT NULL,
    type   text NOT NULL CHECK (type IN ('COM', 'ARM', 'COMD', 'COMA', 'ANC')),
    name   text NOT NULL,
    parent text NOT NULL DEFAULT '',
    PRIMARY KEY (code, type)
);

CREATE TABLE hubs (
    id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hub_communes (
    hub_id  text NOT NULL REFERENCES hubs (id) ON DELETE CASCADE,
    commune text NOT NULL,
    PRIMARY KEY (hub_id, commune)
);
CREATE INDEX hub_communes_commune ON hub_communes (commune);

-- Tokens are "ec_<id>_<secret>"; only HMAC-SHA-256(pepper, secret) is kept.
CREATE TABLE tokens (
    id         text PRIMARY KEY,
    hash       bytea NOT NULL,
    role       text NOT NULL CHECK (role IN ('hub', 'townhall', 'auditor', 'admin')),
    name       text NOT NULL CHECK (name <> ''),
    hub_id     text REFERENCES hubs (id),
    communes   text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    CHECK ((role = 'hub') = (hub_id IS NOT NULL)),
    CHECK (role <> 'townhall' OR cardinality(communes) > 0)
);

CREATE TABLE batches (
    id              uuid PRIMARY KEY,
    hub_id          text NOT NULL REFERENCES hubs (id),
    idempotency_key text NOT NULL,
    format          text NOT NULL CHECK (format IN ('json', 'csv')),
    manifest_sha256 text NOT NULL,
    entry_count     integer NOT NULL,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    submitted_at    timestamptz,
    UNIQUE (hub_id, idempotency_key)
);

-- An act is its key. Its id is stable for that key; versions live in entries.
CREATE TABLE acts (
    id            uuid PRIMARY KEY,
    commune       text NOT NULL,
    year          integer NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('naissance', 'mariage', 'deces', 'reconnaissance')),
    number        integer NOT NULL CHECK (number > 0),
    -- the commune written on the register, then its COG ancestors: scopes
    -- match any of them, so a commune nouvelle sees its predecessors' acts.
    commune_chain text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (commune, year, kind, number)
);
CREATE INDEX acts_commune_chain ON acts USING gin (commune_chain);
CREATE INDEX acts_year_kind ON acts (year, kind);

-- One row per manifest entry, in manifest order. An entry with
-- is_version holds a version of its act; an entry that changed nothing
-- points at the version it matched (matched_entry); an entry rejected
-- before it named an act has no act_id.
CREATE TABLE entries (
    id              uuid PRIMARY KEY,
    batch_id        uuid NOT NULL REFERENCES batches (id),
    idx             integer NOT NULL,
    file            text NOT NULL,
    size            bigint,
    sha256          text,
    commune         text,
    kind            text,
    year            integer,
    number          integer,
    flow            text,
    index_data      jsonb,
    index_digest    text,
    replaces        text,
    revision_reason text,
    act_id          uuid REFERENCES acts (id),
    version         integer,
    is_version      boolean NOT NULL DEFAULT false,
    -- the version entry an unchanged resubmission matched
    matched_entry   uuid REFERENCES entries (id),
    state           text NOT NULL CHECK (state IN ('expected', 'received', 'validated', 'sealed', 'archived', 'rejected', 'stalled')),
    reason          text,
    message         text,
    waiting         text,
    infra_failures  integer NOT NULL DEFAULT 0,
    -- what arrived: the staging object and its measured hash and size
    staged_key      text,
    received_size   bigint,
    received_sha256 text,
    received_at     timestamptz,
    -- what validation found
    pages           integer,
    pdf_version     text,
    pdfa            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (batch_id, idx),
    CHECK ((state = 'rejected') = (reason IS NOT NULL)),
    CHECK (NOT is_version OR (act_id IS NOT NULL AND version IS NOT NULL))
);
-- Only a version in progress or archived holds its number (and the key).
CREATE UNIQUE INDEX entries_live_version ON entries (act_id, version) WHERE is_version AND state <> 'rejected';
CREATE INDEX entries_act ON entries (act_id);
CREATE INDEX entries_batch_file ON entries (batch_id, file);
CREATE INDEX entries_state ON entries (state) WHERE state IN ('stalled', 'received');

-- Every state an entry went through.
CREATE TABLE entry_history (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id uuid NOT NULL REFERENCES entries (id),
    state    text NOT NULL,
    reason   text,
    waiting  text,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entry_history_entry ON entry_history (entry_id, id);

-- The audit log: append-only, written in the transaction of the change or
-- read it records. xid lets the chainer of a later stage process events in
-- commit order; seq and hash are filled by that chainer, and reason (free
-- text of a read) may be pruned after its retention while reason_sha256
-- stays in the chain.
CREATE TABLE audit_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    actor         text NOT NULL,
    actor_name    text NOT NULL DEFAULT '',
    action        text NOT NULL,
    batch_id      uuid,
    act_id        uuid,
    entry_id      uuid,
    purpose       text,
    reason        text,
    reason_sha256 text,
    data          jsonb NOT NULL DEFAULT '{}',
    seq           bigint UNIQUE,
    hash          bytea
);
CREATE INDEX audit_events_act ON audit_events (act_id, at) WHERE act_id IS NOT NULL;
CREATE INDEX audit_events_actor ON audit_events (actor, at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit_events is append-only';
    END IF;
    -- Only the chainer's columns may be set once, and a read's free-text
    -- reason may be pruned (set to NULL); nothing else changes.
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.at IS DISTINCT FROM OLD.at
       OR NEW.xid IS DISTINCT FROM OLD.xid OR NEW.actor IS DISTINCT FROM OLD.actor
       OR NEW.actor_name IS DISTINCT FROM OLD.actor_name OR NEW.action IS DISTINCT FROM OLD.action
       OR NEW.batch_id IS DISTINCT FROM OLD.batch_id OR NEW.act_id IS DISTINCT FROM OLD.act_id
       OR NEW.entry_id IS DISTINCT FROM OLD.entry_id OR NEW.purpose IS DISTINCT FROM OLD.purpose
       OR NEW.reason_sha256 IS DISTINCT FROM OLD.reason_sha256 OR NEW.data IS DISTINCT FROM OLD.data
       OR (NEW.reason IS DISTINCT FROM OLD.reason AND NEW.reason IS NOT NULL)
       OR (OLD.seq IS NOT NULL AND NEW.seq IS DISTINCT FROM OLD.seq)
       OR (OLD.hash IS NOT NULL AND NEW.hash IS DISTINCT FROM OLD.hash) THEN
        RAISE EXCEPTION 'audit_events is append-only';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
