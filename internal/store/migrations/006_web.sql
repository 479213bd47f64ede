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

-- Surnames, folded, one row per act and surname: a search is a btree
-- lookup within the scope's communes.
CREATE TABLE act_surnames (
    surname text NOT NULL,
    commune text NOT NULL,
    act_id  uuid NOT NULL REFERENCES acts (id),
    PRIMARY KEY (surname, commune, act_id)
);

CREATE FUNCTION acts_refresh_state(act uuid) RETURNS void LANGUAGE sql AS $$
    UPDATE acts SET
        state = coalesce((SELECT e.state FROM entries e WHERE e.act_id = act AND e.is_version
                          ORDER BY (e.state <> 'rejected') DESC, e.version DESC, e.created_at DESC LIMIT 1), 'rejected')
    WHERE id = act;
$$;

CREATE FUNCTION acts_refresh(act uuid) RETURNS void LANGUAGE sql AS $$
    SELECT acts_refresh_state(act);
    UPDATE acts SET
        surnames = coalesce((SELECT array_agg(DISTINCT etatcivil_fold(per->>'surname') ORDER BY etatcivil_fold(per->>'surname'))
                             FROM entries p, jsonb_array_elements(coalesce(p.index_data->'persons', '[]')) per
                             WHERE p.act_id = act AND p.is_version AND coalesce(per->>'surname', '') <> ''), '{}')
    WHERE id = act;
    DELETE FROM act_surnames WHERE act_id = act;
    INSERT INTO act_surnames (surname, commune, act_id)
        SELECT DISTINCT s, a.commune, a.id FROM acts a, unnest(a.surnames) s WHERE a.id = act;
$$;

CREATE FUNCTION entries_refresh_act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.act_id IS NULL OR NOT NEW.is_version THEN
        RETURN NULL;
    END IF;
    -- A version moving through its states changes only the act's state;
    -- its persons (surnames) change only with a new version or new data.
    IF TG_OP = 'UPDATE' AND NEW.index_data IS NOT DISTINCT FROM OLD.index_data
       AND NEW.act_id IS NOT DISTINCT FROM OLD.act_id AND OLD.is_version THEN
        PERFORM acts_refresh_state(NEW.act_id);
    ELSE
        PERFORM acts_refresh(NEW.act_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER entries_refresh_act AFTER INSERT OR UPDATE OF state, is_version, act_id, index_data ON entries
    FOR EACH ROW EXECUTE FUNCTION entries_refresh_act();

-- Scopes at a million acts. commune_chain && scope needs a GIN bitmap
-- and a heap visit per act; a commune's pages must not read 100,000 rows
-- of the heap. commune_chains keeps, per commune written on a register,
-- the union of its acts' chains (one row per commune, a few tens of
-- thousands at most); etatcivil_scope() turns a scope into the communes
-- whose acts it sees, and queries select acts by acts.commune = ANY(...)
-- on btree indexes, index-only where they can.
CREATE TABLE commune_chains (
    commune text PRIMARY KEY,
    chain   text[] NOT NULL
);
CREATE INDEX commune_chains_chain ON commune_chains USING gin (chain);
INSERT INTO commune_chains (commune, chain)
    SELECT commune, array_agg(DISTINCT x) FROM acts, unnest(commune_chain) x GROUP BY commune;

CREATE FUNCTION acts_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO commune_chains (commune, chain) VALUES (NEW.commune, NEW.commune_chain)
    ON CONFLICT (commune) DO UPDATE SET chain = (SELECT array_agg(DISTINCT x) FROM unnest(commune_chains.chain || EXCLUDED.chain) x)
        WHERE NOT commune_chains.chain @> EXCLUDED.chain;
    RETURN NULL;
END
$$;
CREATE TRIGGER acts_chain AFTER INSERT ON acts FOR EACH ROW EXECUTE FUNCTION acts_chain();

-- The communes whose acts a scope sees (scope NULL: every commune), of
-- commune one when set.
CREATE FUNCTION etatcivil_scope(scope text[], one text) RETURNS text[] LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(commune), '{}') FROM commune_chains
    WHERE (scope IS NULL OR chain && scope) AND (one = '' OR one = ANY(chain))
$$;

-- A register's acts in number order with their state: registers, the
-- dashboard's counts and the lists read this index alone.
CREATE INDEX acts_register ON acts (commune, year, kind, number) INCLUDE (state);
CREATE INDEX acts_attention ON acts (commune) WHERE state IN ('rejected', 'stalled');

CREATE INDEX act_surnames_act ON act_surnames (act_id);
SELECT acts_refresh(id) FROM acts;

-- Transmissions carry their act's commune, for the same reason.
ALTER TABLE transmissions ADD COLUMN commune text;
UPDATE transmissions t SET commune = a.commune FROM acts a WHERE a.id = t.act_id;
ALTER TABLE transmissions ALTER COLUMN commune SET NOT NULL;
CREATE FUNCTION transmissions_commune() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.commune := (SELECT commune FROM acts WHERE id = NEW.act_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER transmissions_commune BEFORE INSERT ON transmissions FOR EACH ROW EXECUTE FUNCTION transmissions_commune();
CREATE INDEX transmissions_commune_state ON transmissions (commune, state, registry) INCLUDE (act_id);
CREATE INDEX transmissions_attention ON transmissions (commune, updated_at) WHERE state IN ('refused', 'dead', 'overdue');

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
