-- depends: 0007.dead-columns
DROP TRIGGER readings_point_latest_truncate ON readings;
DROP TRIGGER readings_point_latest_delete ON readings;
DROP TRIGGER readings_point_latest_insert ON readings;
DROP FUNCTION point_latest_truncated();
DROP FUNCTION point_latest_deleted();
DROP FUNCTION point_latest_inserted();
DROP TABLE point_latest;
