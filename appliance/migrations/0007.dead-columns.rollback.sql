-- depends: 0006.meter-cov
ALTER TABLE meter_status DROP CONSTRAINT meter_status_state_check;
ALTER TABLE meter_status ADD CONSTRAINT meter_status_state_check
    CHECK (state IN ('unknown', 'reachable', 'no-values', 'unreachable', 'stale'));

-- the old code writes a deadline with every claim; batches in flight get one from now
ALTER TABLE upload_batches ADD COLUMN leased_until timestamptz NOT NULL
    DEFAULT now() + interval '600 seconds';
ALTER TABLE upload_batches ALTER COLUMN leased_until DROP DEFAULT;
