-- 009: the audit chain. Events are chained in commit order by one chainer
-- at a time (an advisory lock), once their transaction is older than every
-- running one: h_n = SHA-256(h_{n-1} || d_n), d_n = audit_event_digest(row).
-- The digest is computed by PostgreSQL from the row as stored, field by
-- field (length-prefixed, NULL marked), so any change to a stored column
-- changes it. A read's free-text reason is left out (it may be pruned);
-- its SHA-256 is in.
CREATE FUNCTION audit_field(v text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v IS NULL THEN '-' ELSE length(v)::text || ':' || v END
$$;

CREATE FUNCTION audit_event_digest(e audit_events) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(
        'etatcivil-audit-v1|' ||
        audit_field(e.id::text) || audit_field((extract(epoch FROM e.at) * 1000000)::bigint::text) ||
        audit_field(e.xid::text) || audit_field(e.actor) || audit_field(e.actor_name) || audit_field(e.action) ||
        audit_field(e.batch_id::text) || audit_field(e.act_id::text) || audit_field(e.entry_id::text) ||
        audit_field(e.purpose) || audit_field(e.reason_sha256) || audit_field(e.data::text) || audit_field(e.seq::text),
        'UTF8'))
$$;

CREATE INDEX audit_events_unchained ON audit_events (xid, id) WHERE seq IS NULL;
