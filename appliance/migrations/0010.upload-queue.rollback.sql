-- depends: 0008.point-latest 0009.edge-metrics
-- Readings out of the queue were synced; when is not known, so now.
ALTER TABLE readings ADD COLUMN synced_at timestamptz;
UPDATE readings r SET synced_at = now()
    WHERE NOT EXISTS (SELECT 1 FROM upload_queue q WHERE q.id = r.id);
CREATE INDEX readings_unsynced ON readings (id) WHERE synced_at IS NULL;
CREATE INDEX readings_synced_at ON readings (synced_at) WHERE synced_at IS NOT NULL;
CREATE INDEX readings_unsynced_meter ON readings (meter_id) WHERE synced_at IS NULL;
DROP INDEX readings_ts_brin;
ALTER TABLE upload_batches ALTER COLUMN reading_ids SET STORAGE EXTENDED;

DROP TRIGGER readings_upload_queue_truncate ON readings;
DROP TRIGGER readings_upload_queue_delete ON readings;
DROP TRIGGER readings_upload_queue_insert ON readings;
DROP FUNCTION upload_queue_truncated();
DROP FUNCTION upload_queue_deleted();
DROP FUNCTION upload_queue_inserted();
DROP TABLE upload_queue;
