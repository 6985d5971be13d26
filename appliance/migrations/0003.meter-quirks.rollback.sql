-- depends: 0002.upload-leases
ALTER TABLE meter_status DROP COLUMN rpm_refused_at;
UPDATE meter_status SET state = 'unreachable' WHERE state = 'no-values';
ALTER TABLE meter_status DROP CONSTRAINT meter_status_state_check;
ALTER TABLE meter_status ADD CONSTRAINT meter_status_state_check
    CHECK (state IN ('unknown', 'reachable', 'unreachable', 'stale'));
