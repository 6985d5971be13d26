-- depends: 0007.dead-columns
DROP TABLE edge_counters;
ALTER TABLE meter_status
    DROP COLUMN points_read_total,
    DROP COLUMN points_failed_total;
