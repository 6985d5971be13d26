-- depends: 0007.dead-columns
-- The newest reading of each data point, for the local dashboard: one row per point, read
-- instead of probing the readings table once per point. Triggers on readings keep it, so every
-- writer (the collector's cycles, trend-log backfill, COV) and every delete (retention, the
-- buffer budget, quarantine) leaves it equal to what a scan of readings gives: one statement
-- per writing statement, over its rows (a transition table), never one per row. No foreign
-- key, as readings has none: a reading of a point being removed must still be writable.

CREATE TABLE point_latest (
    point_id    integer PRIMARY KEY,
    reading_id  bigint NOT NULL,   -- of two readings stamped alike, the later written wins
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL
) WITH (fillfactor = 30);  -- every cycle rewrites every row: room on the page for HOT updates

CREATE FUNCTION point_latest_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO point_latest AS l (point_id, reading_id, ts, value)
    SELECT DISTINCT ON (point_id) point_id, id, ts, value
    FROM inserted ORDER BY point_id, ts DESC, id DESC
    ON CONFLICT (point_id) DO UPDATE
        SET reading_id = excluded.reading_id, ts = excluded.ts, value = excluded.value
        WHERE (l.ts, l.reading_id) < (excluded.ts, excluded.reading_id);
    RETURN NULL;
END $$;

-- A deleted reading that was a point's newest hands over to the newest one left (one index
-- probe per such point); retention deletes old readings, so this is rare and small.
CREATE FUNCTION point_latest_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH gone AS (
        DELETE FROM point_latest l USING deleted d
        WHERE l.reading_id = d.id
        RETURNING l.point_id
    )
    INSERT INTO point_latest (point_id, reading_id, ts, value)
    SELECT g.point_id, r.id, r.ts, r.value
    FROM gone g
    CROSS JOIN LATERAL (SELECT id, ts, value FROM readings
                        WHERE point_id = g.point_id ORDER BY ts DESC, id DESC LIMIT 1) r
    ON CONFLICT (point_id) DO UPDATE
        SET reading_id = excluded.reading_id, ts = excluded.ts, value = excluded.value
        WHERE (point_latest.ts, point_latest.reading_id) < (excluded.ts, excluded.reading_id);
    RETURN NULL;
END $$;

CREATE FUNCTION point_latest_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM point_latest;
    RETURN NULL;
END $$;

CREATE TRIGGER readings_point_latest_insert AFTER INSERT ON readings
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION point_latest_inserted();
CREATE TRIGGER readings_point_latest_delete AFTER DELETE ON readings
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION point_latest_deleted();
CREATE TRIGGER readings_point_latest_truncate AFTER TRUNCATE ON readings
    FOR EACH STATEMENT EXECUTE FUNCTION point_latest_truncated();

INSERT INTO point_latest (point_id, reading_id, ts, value)
SELECT p.id, r.id, r.ts, r.value
FROM meter_points p
CROSS JOIN LATERAL (SELECT id, ts, value FROM readings
                    WHERE point_id = p.id ORDER BY ts DESC, id DESC LIMIT 1) r;
