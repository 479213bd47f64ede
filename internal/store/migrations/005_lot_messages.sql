-- 005: what each lot is and what was sent.
-- lot_acts is a lot's act set as committed before its first send: it never
-- changes, even when a transmission later leaves the lot (released after a
-- refusal that named other acts, or re-driven after a refusal) and goes
-- into a new lot with a new key. transmissions.lot_id is the current lot.
-- lots.message keeps the exact message sent (the INSEE lot XML), so that a
-- resend is byte-identical and what was sent can be shown. Attempts name
-- the lot they were about.

CREATE TABLE lot_acts (
    lot_id          uuid NOT NULL REFERENCES lots (id),
    transmission_id uuid NOT NULL REFERENCES transmissions (id),
    PRIMARY KEY (lot_id, transmission_id)
);
CREATE INDEX lot_acts_transmission ON lot_acts (transmission_id);

ALTER TABLE lots ADD COLUMN idempotency_key text UNIQUE;
ALTER TABLE lots ADD COLUMN message bytea;
ALTER TABLE lots ADD COLUMN message_sha256 text;
ALTER TABLE transmission_attempts ADD COLUMN lot_id uuid REFERENCES lots (id);

-- Existing lots keep their id as their key (what they were sent under).
UPDATE lots SET idempotency_key = id::text WHERE idempotency_key IS NULL;
INSERT INTO lot_acts (lot_id, transmission_id) SELECT lot_id, id FROM transmissions WHERE lot_id IS NOT NULL;
ALTER TABLE lots ALTER COLUMN idempotency_key SET NOT NULL;
