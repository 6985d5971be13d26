-- depends: 0001.central-schema
DROP TABLE readings_hourly_dirty;
DROP INDEX api_keys_site;
DROP TABLE operator_tokens;
DROP TRIGGER meter_points_bump_config ON meter_points;
DROP TRIGGER meters_bump_config ON meters;
DROP FUNCTION bump_site_config_version();
ALTER TABLE sites DROP COLUMN config_version;
