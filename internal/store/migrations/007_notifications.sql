-- 007: notifications. Webhooks and daily e-mail digests, scoped to a hub
-- and/or a commune, about acts rejected, stalled, refused or abandoned by
-- a registry, or whose acknowledgement is overdue.
--
-- A collector (a periodic job) turns new audit events into
-- notification_events, exactly once: it reads audit events by xid, up to
-- the oldest transaction still running (so an event committed late, with
-- a lower id, is never skipped), and remembers where it stopped in
-- notify_cursor. Overdue acknowledgements leave no audit event: they are
-- found in transmissions, once per transmission. In the same transaction
-- it creates one delivery per (webhook, ≤ 100 events) and its job. Every
-- delivery, webhook or e-mail, stays in notification_deliveries with its
-- attempts, last error and outcome: nothing disappears silently.

CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    hub_id      text REFERENCES hubs (id),
    commune     text,
    url         text NOT NULL CHECK (url ~ '^https?://'),
    -- the HMAC key the receiver also holds: kept as given, never shown
    secret      text NOT NULL CHECK (secret <> ''),
    created_by  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    CHECK (hub_id IS NOT NULL OR commune IS NOT NULL)
);

CREATE TABLE email_subscriptions (
    id             uuid PRIMARY KEY,
    hub_id         text REFERENCES hubs (id),
    commune        text,
    address        text NOT NULL CHECK (address LIKE '%_@_%'),
    created_by     text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz,
    -- the digest cursor: events up to this id were digested (or predate
    -- the subscription), the last digest covered up to digested_at
    last_event_id  bigint NOT NULL DEFAULT 0,
    digested_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (hub_id IS NOT NULL OR commune IS NOT NULL)
);

-- One row: where the collector stopped. xid_from is the oldest
-- transaction not yet read (every older one had ended when it was read);
-- overdue_since bounds the scan of transmissions for overdue ones.
CREATE TABLE notify_cursor (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    xid_from      xid8 NOT NULL,
    overdue_since timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Starts now: the audit log's past is not notified.
INSERT INTO notify_cursor (xid_from, overdue_since)
    VALUES (pg_snapshot_xmin(pg_current_snapshot()), now());

-- What the collector read, as facts (the French wording is the notify
-- package's): one row per audit event, or per act of a lot event, or per
-- overdue transmission.
CREATE TABLE notification_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('rejected', 'stalled', 'refused', 'dead', 'overdue')),
    audit_event_id  bigint REFERENCES audit_events (id),
    transmission_id uuid REFERENCES transmissions (id),
    lot_id          uuid,
    act_id          uuid,
    entry_id        uuid,
    batch_id        uuid,
    hub_id          text,
    commune         text,
    commune_chain   text[] NOT NULL DEFAULT '{}',
    registry        text,
    reason          text,
    -- the rejection's French message, or what a stalled entry waits for
    detail          text,
    file            text,
    act_kind        text,
    act_year        integer,
    act_number      integer,
    at              timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX notification_events_audit ON notification_events
    (audit_event_id, coalesce(transmission_id, '00000000-0000-0000-0000-000000000000')) WHERE audit_event_id IS NOT NULL;
CREATE UNIQUE INDEX notification_events_overdue ON notification_events (transmission_id) WHERE kind = 'overdue';
CREATE INDEX notification_events_chain ON notification_events USING gin (commune_chain);
CREATE INDEX notification_events_created ON notification_events (created_at);

CREATE TABLE notification_deliveries (
    id              uuid PRIMARY KEY,
    channel         text NOT NULL CHECK (channel IN ('webhook', 'email')),
    webhook_id      uuid REFERENCES webhooks (id),
    subscription_id uuid REFERENCES email_subscriptions (id),
    events          bigint[] NOT NULL,
    -- exactly what is sent, the same bytes at every attempt: the JSON
    -- body of a webhook, the text of an e-mail (with its subject)
    payload         bytea NOT NULL,
    subject         text,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    CHECK ((channel = 'webhook') = (webhook_id IS NOT NULL)),
    CHECK ((channel = 'email') = (subscription_id IS NOT NULL))
);
CREATE INDEX notification_deliveries_open ON notification_deliveries (state, created_at) WHERE state <> 'delivered';

-- The collector reads audit events of these actions by xid.
CREATE INDEX audit_events_notify ON audit_events (xid)
    WHERE action IN ('entry.state', 'transmission.create', 'transmission.refused', 'transmission.dead', 'lot.refused', 'lot.dead');
-- and transmissions changed lately, for overdue acknowledgements.
CREATE INDEX transmissions_updated ON transmissions (updated_at);
