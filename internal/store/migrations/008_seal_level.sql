-- 008: PAdES levels. A hub's seals are made at its level, B-T by default
-- (a signature timestamp from the TSA); an act is never archived at a
-- lower level than its hub's: while the TSA is down it waits
-- (tsa_unavailable). Each version records the level it was sealed at.
ALTER TABLE hubs ADD COLUMN seal_level text NOT NULL DEFAULT 'B-T' CHECK (seal_level IN ('B-B', 'B-T'));
ALTER TABLE entries ADD COLUMN seal_level text CHECK (seal_level IN ('B-B', 'B-T'));
