-- 011: PAdES B-LT and B-LTA. A B-LT seal embeds, after its signature
-- timestamp, the validation material (certificates, OCSP answers, CRLs)
-- of the seal's and the TSA's chains; a B-LTA seal adds a document
-- timestamp over the whole file. New hubs seal at B-LT; existing hubs
-- keep their level (hub set-level changes it).
ALTER TABLE hubs DROP CONSTRAINT hubs_seal_level_check;
ALTER TABLE hubs ADD CONSTRAINT hubs_seal_level_check CHECK (seal_level IN ('B-B', 'B-T', 'B-LT', 'B-LTA'));
ALTER TABLE hubs ALTER COLUMN seal_level SET DEFAULT 'B-LT';
ALTER TABLE entries DROP CONSTRAINT entries_seal_level_check;
ALTER TABLE entries ADD CONSTRAINT entries_seal_level_check CHECK (seal_level IN ('B-B', 'B-T', 'B-LT', 'B-LTA'));
