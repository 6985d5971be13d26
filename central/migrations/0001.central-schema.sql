-- Central schema: tenants, operators, sites and keys, meters, readings, alerts, audit.
-- depends:

CREATE TABLE tenants (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      integer NOT NULL REFERENCES tenants (id),
    email          text NOT NULL UNIQUE,
    password_hash  text NOT NULL,            -- argon2id, never the password
    role           text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sites (
    id                 integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id          integer NOT NULL REFERENCES tenants (id),
    name               text NOT NULL,
    active             boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at  timestamptz,
    last_status        jsonb,               -- the latest heartbeat body
    UNIQUE (tenant_id, name)
);

-- Only a SHA-256 hash and a short lookup prefix of each key are stored; the key is shown once.
CREATE TABLE api_keys (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     integer NOT NULL REFERENCES sites (id),
    prefix      text NOT NULL,
    key_hash    bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,                -- set on rotation: the overlap window's end
    revoked_at  timestamptz
);
CREATE INDEX api_keys_prefix ON api_keys (prefix);

CREATE TABLE meters (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id          integer NOT NULL REFERENCES sites (id),
    external_id      text NOT NULL,
    name             text NOT NULL DEFAULT '',
    address          text,
    device_instance  integer CHECK (device_instance BETWEEN 0 AND 4194303),
    active           boolean NOT NULL DEFAULT true,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, external_id)
);

-- A data point of a meter. Its id stands for (meter, data point) in readings.
CREATE TABLE meter_points (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    meter_id         integer NOT NULL REFERENCES meters (id),
    name             text NOT NULL,
    object_type      text NOT NULL,
    object_instance  integer NOT NULL CHECK (object_instance BETWEEN 0 AND 4194303),
    property         text NOT NULL DEFAULT 'present-value',
    unit             text NOT NULL DEFAULT '',
    active           boolean NOT NULL DEFAULT true,
    UNIQUE (meter_id, name)
);

-- Readings, partitioned by month. The primary key is the natural key: point_id names the
-- meter and the data point together, so (point_id, ts) is (meter, data point, timestamp).
-- Four fixed-width columns keep COPY and the uniqueness check cheap.
CREATE TABLE readings (
    point_id  integer NOT NULL,
    ts        timestamptz NOT NULL,
    value     double precision NOT NULL,
    PRIMARY KEY (point_id, ts)
) PARTITION BY RANGE (ts);

-- Creates the month partitions covering [from_ts, to_ts]; ingest calls it before writing.
CREATE FUNCTION ensure_readings_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    month timestamptz := date_trunc('month', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name  text;
BEGIN
    WHILE month <= to_ts LOOP
        name := 'readings_' || to_char(month AT TIME ZONE 'UTC', 'YYYY_MM');
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE IF NOT EXISTS %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                name, month, month + interval '1 month');
        END IF;
        month := month + interval '1 month';
    END LOOP;
END $$;

-- Hourly rollup per data point, for dashboards over long ranges.
CREATE TABLE readings_hourly (
    point_id     integer NOT NULL,
    hour         timestamptz NOT NULL,
    n            integer NOT NULL,
    sum          double precision NOT NULL,
    min          double precision NOT NULL,
    max          double precision NOT NULL,
    first_ts     timestamptz NOT NULL,
    first_value  double precision NOT NULL,
    last_ts      timestamptz NOT NULL,
    last_value   double precision NOT NULL,
    PRIMARY KEY (point_id, hour)
);

-- Answers to readings batches by idempotency key: a replay gets the same answer, writes nothing.
CREATE TABLE sync_batches (
    site_id          integer NOT NULL REFERENCES sites (id),
    idempotency_key  text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    response         jsonb NOT NULL,
    PRIMARY KEY (site_id, idempotency_key)
);
CREATE INDEX sync_batches_received ON sync_batches (received_at);

CREATE TABLE heartbeats (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id      integer NOT NULL REFERENCES sites (id),
    received_at  timestamptz NOT NULL DEFAULT now(),
    body         jsonb NOT NULL
);
CREATE INDEX heartbeats_site_time ON heartbeats (site_id, received_at);

CREATE TABLE alert_rules (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   integer NOT NULL REFERENCES tenants (id),
    site_id     integer REFERENCES sites (id),          -- NULL = every site of the tenant
    kind        text NOT NULL
                CHECK (kind IN ('site_offline', 'meter_unreachable', 'backlog_age', 'value_above', 'value_below')),
    point_id    integer REFERENCES meter_points (id),
    threshold   double precision,
    recipients  text[] NOT NULL DEFAULT '{}',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alert_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id      integer NOT NULL REFERENCES alert_rules (id),
    site_id      integer REFERENCES sites (id),
    meter_id     integer REFERENCES meters (id),
    message      text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    notified_at  timestamptz
);
CREATE INDEX alert_events_open ON alert_events (rule_id) WHERE resolved_at IS NULL;

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    integer REFERENCES tenants (id),
    actor        text NOT NULL,              -- 'user:<email>' or 'cli'
    action       text NOT NULL,              -- e.g. 'site.create', 'key.rotate'
    target_type  text NOT NULL,
    target_id    text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_time ON audit_log (tenant_id, at);
