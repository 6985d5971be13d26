-- depends: 0004.central-alerts
DROP TRIGGER IF EXISTS meter_points_stamp_deactivation ON meter_points;
DROP TRIGGER IF EXISTS meters_stamp_deactivation ON meters;
DROP FUNCTION IF EXISTS stamp_deactivation();
ALTER TABLE meter_points DROP COLUMN IF EXISTS deactivated_at;
ALTER TABLE meters DROP COLUMN IF EXISTS deactivated_at;
