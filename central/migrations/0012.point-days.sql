-- Each data point's first and last reading of each UTC day, kept by ingest (central.point_days)
-- in the statement that writes the readings, beside point_latest. The fleet dashboard's energy
-- today and this month read a few of these rows per point, never the readings table.
-- depends: 0011.meter-cov

CREATE TABLE point_days (
    point_id     integer NOT NULL REFERENCES meter_points (id) ON DELETE CASCADE,
    day          date NOT NULL,
    first_ts     timestamptz NOT NULL,
    first_value  double precision NOT NULL,
    last_ts      timestamptz NOT NULL,
    last_value   double precision NOT NULL,
    PRIMARY KEY (point_id, day)
) WITH (fillfactor = 50);  -- today's rows are rewritten by every batch: room for HOT updates

-- Recomputes point_days and point_latest of the given points from their readings: the backfill
-- below, and for anything that writes readings without ingest (the benchmarks' generators).
-- Two index probes per point and day (its first and last reading), never a scan of a point's
-- readings: a year of one-a-minute readings costs 730 probes, not 525,600 rows.
CREATE FUNCTION point_summaries_rebuild(points integer[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM point_days WHERE point_id = ANY (points);
    INSERT INTO point_days (point_id, day, first_ts, first_value, last_ts, last_value)
    SELECT p.id, d.day::date, f.ts, f.value, l.ts, l.value
    FROM unnest(points) AS p (id)
    CROSS JOIN LATERAL (SELECT min(r.ts) AS lo, max(r.ts) AS hi
                        FROM readings r WHERE r.point_id = p.id) b
    CROSS JOIN LATERAL generate_series(date_trunc('day', b.lo AT TIME ZONE 'UTC'),
                                       b.hi AT TIME ZONE 'UTC', interval '1 day') AS d (day)
    CROSS JOIN LATERAL (SELECT r.ts, r.value FROM readings r
                        WHERE r.point_id = p.id AND r.ts >= d.day AT TIME ZONE 'UTC'
                          AND r.ts < (d.day + interval '1 day') AT TIME ZONE 'UTC'
                        ORDER BY r.ts LIMIT 1) f
    CROSS JOIN LATERAL (SELECT r.ts, r.value FROM readings r
                        WHERE r.point_id = p.id AND r.ts >= d.day AT TIME ZONE 'UTC'
                          AND r.ts < (d.day + interval '1 day') AT TIME ZONE 'UTC'
                        ORDER BY r.ts DESC LIMIT 1) l
    ORDER BY 1, 2;
    DELETE FROM point_latest WHERE point_id = ANY (points);
    INSERT INTO point_latest (point_id, ts, value)
    SELECT p.id, l.ts, l.value
    FROM unnest(points) AS p (id)
    CROSS JOIN LATERAL (SELECT r.ts, r.value FROM readings r
                        WHERE r.point_id = p.id ORDER BY r.ts DESC LIMIT 1) l
    ORDER BY 1;
$$;

-- point_latest was kept only from migration 0004 on: both summaries start exact.
DO $$ BEGIN PERFORM point_summaries_rebuild(ARRAY(SELECT id FROM meter_points ORDER BY id)); END $$;
