DROP TABLE IF EXISTS appliance_state, dropped_readings, meter_sync_log, sync_log, meter_status,
    quarantine, upload_batches, readings, meter_points, meters;
DROP FUNCTION IF EXISTS notify_meters_changed(), notify_state_changed();
