-- 004: lots. Lot-based connectors (insee, archives) send several act
-- versions in one message. A lot's act set is committed before its first
-- send and never rebuilt; its id is the message's idempotency key.
-- Transmissions keep one row per (registry, act version), linked to their
-- lot, so each act still shows where it stands.

CREATE TABLE lots (
    id         uuid PRIMARY KEY,
    registry   text NOT NULL,
    connector  text NOT NULL,
    -- what groups the lot: the register (commune/year/kind) for archives,
    -- the commune, nature and period for insee
    group_key  text NOT NULL,
    commune    text NOT NULL,
    state      text NOT NULL DEFAULT 'pending'
               CHECK (state IN ('pending', 'sent', 'acknowledged', 'refused', 'retrying', 'overdue', 'dead')),
    attempts   integer NOT NULL DEFAULT 0,
    ack_id     text,
    reason     text,
    acts       integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lots_open ON lots (registry, state) WHERE state <> 'acknowledged';

ALTER TABLE transmissions ADD COLUMN lot_id uuid REFERENCES lots (id);
CREATE INDEX transmissions_unlotted ON transmissions (registry) WHERE lot_id IS NULL AND connector <> 'http';
