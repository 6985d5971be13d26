-- depends: 0001.edge-schema
DROP INDEX readings_unsynced_meter;
ALTER TABLE readings ADD COLUMN batch_id uuid;
UPDATE readings r SET batch_id = b.id
    FROM upload_batches b WHERE r.id = ANY(b.reading_ids) AND r.synced_at IS NULL;
ALTER TABLE upload_batches DROP COLUMN reading_ids;
