-- 012: re-timestamping campaigns. ts_expires_at is when the certificate of
-- the TSA that made an archived version's newest timestamp expires (NULL:
-- not looked at yet); the campaign extends the versions whose newest
-- timestamp nears that date as a new version, revision_reason
-- 'retimestamp', in a batch of the system per hub and day (system).
ALTER TABLE entries ADD COLUMN ts_expires_at timestamptz;
CREATE INDEX entries_retimestamp ON entries (ts_expires_at NULLS FIRST, id)
    WHERE is_version AND state = 'archived' AND seal_level IS DISTINCT FROM 'B-B';
ALTER TABLE batches ADD COLUMN system boolean NOT NULL DEFAULT false;
