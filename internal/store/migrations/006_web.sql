-- 006: what the web pages and their API need.
--
-- acts.state is the act's summary state (its newest non-rejected
-- version's, else "rejected"), and acts.surnames the folded surnames of
-- every version's persons: both kept by a trigger on entries, so that a
-- commune's dashboard, its registers and a filtered list read acts alone,
-- with indexes, at a million acts.
--
-- Web sessions and one-time sign-in links are stored by the SHA-256 of
-- their secret, like tokens: a database dump opens no session.

CREATE FUNCTION etatcivil_fold(s text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT upper(translate(s, 'àâäáãåçéèêëíìîïñóòôöõúùûüýÿÀÂÄÁÃÅÇÉÈÊËÍÌÎÏÑÓÒÔÖÕÚÙÛÜÝŸ',
                              'aaaaaaceeeeiiiinooooouuuuyyAAAAAACEEEEIIIINOOOOOUUUUYY'))
$$;

ALTER TABLE acts ADD COLUMN state text NOT NULL DEFAULT 'received';
ALTER TABLE acts ADD COLUMN surnames text[] NOT NULL DEFAULT '{}';

CREATE FUNCTION acts_refresh(act uuid) RETURNS void LANGUAGE sql AS $$
    UPDATE acts SET
        state = coalesce((SELECT e.state FROM entries e WHERE e.act_id = act AND e.is_version
                          ORDER BY (e.state <> 'rejected') DESC, e.version DESC, e.created_at DESC LIMIT 1), 'rejected'),
        surnames = coalesce((SELECT array_agg(DISTINCT etatcivil_fold(per->>'surname') ORDER BY etatcivil_fold(per->>'surname'))
                             FROM entries p, jsonb_array_elements(coalesce(p.index_data->'persons', '[]')) per
                             WHERE p.act_id = act AND p.is_version AND coalesce(per->>'surname', '') <> ''), '{}')
    WHERE id = act
$$;

CREATE FUNCTION entries_refresh_act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.act_id IS NOT NULL AND NEW.is_version THEN
        PERFORM acts_refresh(NEW.act_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER entries_refresh_act AFTER INSERT OR UPDATE OF state, is_version, act_id, index_data ON entries
    FOR EACH ROW EXECUTE FUNCTION entries_refresh_act();

SELECT acts_refresh(id) FROM acts;

CREATE INDEX acts_surnames ON acts USING gin (surnames);
CREATE INDEX acts_attention ON acts (commune) WHERE state IN ('rejected', 'stalled');
CREATE INDEX transmissions_act_state ON transmissions (act_id, state);

ALTER TABLE tokens ADD COLUMN email text;

CREATE TABLE web_sessions (
    id_hash    bytea PRIMARY KEY,
    token_id   text NOT NULL REFERENCES tokens (id),
    purpose    text NOT NULL,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX web_sessions_token ON web_sessions (token_id);

CREATE TABLE login_links (
    id_hash    bytea PRIMARY KEY,
    token_id   text NOT NULL REFERENCES tokens (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
