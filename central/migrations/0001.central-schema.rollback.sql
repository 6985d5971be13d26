DROP TABLE IF EXISTS audit_log, alert_events, alert_rules, heartbeats, sync_batches,
    readings_hourly, readings, meter_points, meters, api_keys, sites, users, tenants;
DROP FUNCTION IF EXISTS ensure_readings_partitions(timestamptz, timestamptz);
