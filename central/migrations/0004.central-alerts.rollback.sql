-- depends: 0003.central-mail
DROP TABLE maintenance_windows;
DROP TABLE alert_silences;
DROP TABLE alert_groups;
DROP TABLE alert_instances;
DROP TABLE alert_rules;
DROP TABLE meter_health;
DROP TABLE site_health;
DROP TABLE point_latest;

-- the placeholders of 0001, as they were
CREATE TABLE alert_rules (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   integer NOT NULL REFERENCES tenants (id),
    site_id     integer REFERENCES sites (id),
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
