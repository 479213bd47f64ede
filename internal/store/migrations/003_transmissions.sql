-- 003: transmissions to the registries. One row per (registry, act
-- version), created in the transaction that archives the version (routing),
-- moving pending → sent → acknowledged, or refused / retrying / overdue /
-- dead. Its idempotency key derives from (registry, act, version), so a
-- resend can never be taken for a new message. Every attempt is kept.

CREATE TABLE transmissions (
    id              uuid PRIMARY KEY,
    registry        text NOT NULL,
    connector       text NOT NULL,
    act_id          uuid NOT NULL REFERENCES acts (id),
    entry_id        uuid NOT NULL REFERENCES entries (id),
    version         integer NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'acknowledged', 'refused', 'retrying', 'overdue', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    ack_id          text,
    reason          text,
    sent_at         timestamptz,
    acked_at        timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (registry, entry_id)
);
CREATE INDEX transmissions_act ON transmissions (act_id);
CREATE INDEX transmissions_open ON transmissions (registry, state, updated_at) WHERE state NOT IN ('acknowledged');

CREATE TABLE transmission_attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transmission_id uuid NOT NULL REFERENCES transmissions (id),
    at              timestamptz NOT NULL DEFAULT now(),
    outcome         text NOT NULL,
    http_status     integer,
    error           text,
    duration_ms     integer
);
CREATE INDEX transmission_attempts_tx ON transmission_attempts (transmission_id, id);
