-- A meter that answers but yields no value has its own state ('no-values'), instead of showing
-- as reachable; and what the collector learned about a device that refuses ReadPropertyMultiple
-- survives a restart, so it is not learned again (one refused request per point) every start.
-- depends: 0002.upload-leases

ALTER TABLE meter_status DROP CONSTRAINT meter_status_state_check;
ALTER TABLE meter_status ADD CONSTRAINT meter_status_state_check
    CHECK (state IN ('unknown', 'reachable', 'no-values', 'unreachable', 'stale'));
ALTER TABLE meter_status ADD COLUMN rpm_refused_at timestamptz;
