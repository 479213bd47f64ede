-- 002: sealing and archiving. A version is sealed into the staging bucket
-- (sealed_* committed before any archive write), then archived write-once
-- (object_key + version_id of the one object version).

ALTER TABLE entries
    ADD COLUMN sealed_key         text,
    ADD COLUMN sealed_sha256      text,
    ADD COLUMN sealed_size        bigint,
    ADD COLUMN seal_cert_sha256   text,
    ADD COLUMN seal_subject       text,
    ADD COLUMN sealed_at          timestamptz,
    ADD COLUMN object_key         text,
    ADD COLUMN version_id         text,
    ADD COLUMN archived_at        timestamptz,
    ADD COLUMN retain_until       timestamptz,
    ADD COLUMN staging_removed_at timestamptz,
    ADD CONSTRAINT entries_archived_has_object CHECK (state <> 'archived' OR (object_key IS NOT NULL AND version_id IS NOT NULL AND sealed_sha256 IS NOT NULL));

-- One archive object version per act version, ever.
CREATE UNIQUE INDEX entries_object ON entries (object_key) WHERE object_key IS NOT NULL;
-- Staging objects still to remove (archived, or rejected past retention).
CREATE INDEX entries_staging_cleanup ON entries (updated_at) WHERE staging_removed_at IS NULL AND state IN ('archived', 'rejected');

-- A hub's own seal: its certificate (PEM, chain) and where its key is (a
-- file path, PKCS#12 file or PKCS#11 URI): private keys never enter the
-- database. A hub without a row is sealed with the default seal.
CREATE TABLE hub_seals (
    hub_id   text PRIMARY KEY REFERENCES hubs (id),
    cert_pem text NOT NULL,
    key_ref  text NOT NULL,
    set_at   timestamptz NOT NULL DEFAULT now()
);
