-- depends: 0008.point-latest 0009.edge-metrics
-- Unsynced readings are the rows of a narrow queue, not a column of readings. Settling a batch
-- set readings.synced_at, a column in three partial-index predicates: every settled reading was
-- a non-HOT update (a new heap tuple plus an entry in every index of readings), 30 of the 43 s
-- the edge took to drain 1,000,000 readings (bench/drain.py). Now settling deletes the batch's
-- ids from upload_queue, and readings are written once and never updated.
--
-- Triggers on readings keep the queue, as 0008's keep point_latest: every writer (the
-- collector's cycles, trend-log backfill, COV) queues what it inserts, one statement per
-- writing statement over its rows (a transition table); every delete (retention, the buffer
-- budget, quarantine) takes its readings out of the queue. A reading is synced once it is in
-- readings and not in upload_queue.

CREATE TABLE upload_queue (
    id        bigint PRIMARY KEY,    -- readings.id
    meter_id  integer NOT NULL       -- for the per-meter backlog, without reading readings
);

CREATE FUNCTION upload_queue_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO upload_queue (id, meter_id) SELECT id, meter_id FROM inserted;
    RETURN NULL;
END $$;

CREATE FUNCTION upload_queue_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM upload_queue q USING deleted d WHERE q.id = d.id;
    RETURN NULL;
END $$;

CREATE FUNCTION upload_queue_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM upload_queue;
    RETURN NULL;
END $$;

CREATE TRIGGER readings_upload_queue_insert AFTER INSERT ON readings
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION upload_queue_inserted();
CREATE TRIGGER readings_upload_queue_delete AFTER DELETE ON readings
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION upload_queue_deleted();
CREATE TRIGGER readings_upload_queue_truncate AFTER TRUNCATE ON readings
    FOR EACH STATEMENT EXECUTE FUNCTION upload_queue_truncated();

INSERT INTO upload_queue (id, meter_id) SELECT id, meter_id FROM readings WHERE synced_at IS NULL;

-- A batch's ids (400 kB for 50,000) stored uncompressed: compressing them on every claim took
-- 0.2-0.3 s of the claim's 0.5 s (EXPLAIN ANALYZE, 1,000,000 queued), for a row that lives
-- only while its batch is in flight.
ALTER TABLE upload_batches ALTER COLUMN reading_ids SET STORAGE EXTERNAL;

-- Retention now goes by a reading's own time (ts) and skips queued readings: a small BRIN
-- index finds the old block ranges (readings arrive roughly in time order) at almost no cost
-- to the collector's inserts.
CREATE INDEX readings_ts_brin ON readings USING brin (ts);

DROP INDEX readings_unsynced;
DROP INDEX readings_synced_at;
DROP INDEX readings_unsynced_meter;
ALTER TABLE readings DROP COLUMN synced_at;
