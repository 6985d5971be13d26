-- Reports: what the hourly rollup must keep for energy figures, the reports and their files,
-- and the schedules that request them.
-- depends: 0005.meter-deactivation

-- Per hour and data point, at a 5-minute "slot" resolution (12 slots an hour):
--   present      bit i set when a reading falls in [hour + 5i min, hour + 5(i+1) min)
-- and for cumulative energy counters only (kWh, Wh, MWh; NULL for other points):
--   slot_energy  the counter's increase between consecutive readings of the hour, summed by the
--                slot the LATER reading ends in (slots closed on the right: (start, end]);
--                a drop (counter reset, meter replaced) counts 0
--   void         bit i set when slot i holds a drop or a step over more than 15 minutes: its
--                energy is real consumption but says nothing about demand
--   resets       drops within the hour, reset_ts the first one's timestamp
-- The step from the previous hour's last reading to this hour's first is left to the reader,
-- who has both ends (first_*, last_*) in adjacent rows.
ALTER TABLE readings_hourly
    ADD COLUMN present      integer NOT NULL DEFAULT 0,
    ADD COLUMN slot_energy  double precision[],
    ADD COLUMN void         integer NOT NULL DEFAULT 0,
    ADD COLUMN resets       integer NOT NULL DEFAULT 0,
    ADD COLUMN reset_ts     timestamptz;

-- Rows written before this migration lack the new columns: have the rollup job redo them.
INSERT INTO readings_hourly_dirty (site_id, hour)
SELECT DISTINCT m.site_id, h.hour
FROM readings_hourly h
JOIN meter_points p ON p.id = h.point_id
JOIN meters m ON m.id = p.meter_id
ON CONFLICT DO NOTHING;

CREATE TABLE report_schedules (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       integer NOT NULL REFERENCES tenants (id),
    cadence         text NOT NULL CHECK (cadence IN ('weekly', 'monthly')),
    scope           jsonb NOT NULL,             -- {"site_ids": [...] | null}
    time_zone       text NOT NULL,
    demand_minutes  smallint NOT NULL,
    recipients      text[] NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    next_run_at     timestamptz NOT NULL,       -- when the period just ended is due
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX report_schedules_due ON report_schedules (next_run_at) WHERE enabled;

-- One row per requested report. The row is the queue: an RQ job only makes it start sooner,
-- and the worker's periodic tick starts any row whose job Redis lost.
CREATE TABLE reports (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       integer NOT NULL REFERENCES tenants (id),
    schedule_id     integer REFERENCES report_schedules (id) ON DELETE SET NULL,
    requested_by    text NOT NULL,
    scope           jsonb NOT NULL,             -- {"site_ids": [...] | null}
    period_kind     text NOT NULL CHECK (period_kind IN ('day', 'week', 'month', 'custom')),
    first_day       date NOT NULL,              -- local dates, inclusive, in time_zone
    last_day        date NOT NULL,
    time_zone       text NOT NULL,
    demand_minutes  smallint NOT NULL,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress        smallint NOT NULL DEFAULT 0,
    stage           text NOT NULL DEFAULT '',
    error           text,
    attempts        smallint NOT NULL DEFAULT 0,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    heartbeat_at    timestamptz,
    finished_at     timestamptz,
    summary         jsonb,                      -- the headline figures (API, MCP, history)
    result          jsonb                       -- every figure the documents are made from
);
CREATE INDEX reports_tenant ON reports (tenant_id, id DESC);
CREATE INDEX reports_unfinished ON reports (requested_at) WHERE status IN ('queued', 'running');

CREATE TABLE report_files (
    report_id     bigint NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('pdf', 'csv')),
    content       bytea NOT NULL,
    PRIMARY KEY (report_id, kind)
);
