-- 013: entries waiting on infrastructure (waiting set) are counted by
-- every /metrics scrape: a partial index keeps that count off the table.
CREATE INDEX entries_waiting ON entries (waiting) WHERE waiting IS NOT NULL;
