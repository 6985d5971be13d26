-- depends: 0003.meter-quirks
DROP TABLE backfill_gaps;
ALTER TABLE readings DROP COLUMN backfilled;
