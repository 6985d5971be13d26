-- depends: 0006.meter-cov
-- Two things nothing reads or writes:
-- * upload_batches.leased_until: a batch's lease is its claimer's advisory lock
--   (appliance/locks.py); the deadline was written and never read.
-- * the meter state 'stale': the collector writes unknown, reachable, no-values or unreachable,
--   never 'stale'; a state nobody sets must not be offered to the UIs, MCP or the heartbeat.
ALTER TABLE upload_batches DROP COLUMN leased_until;

ALTER TABLE meter_status DROP CONSTRAINT meter_status_state_check;
ALTER TABLE meter_status ADD CONSTRAINT meter_status_state_check
    CHECK (state IN ('unknown', 'reachable', 'no-values', 'unreachable'));
