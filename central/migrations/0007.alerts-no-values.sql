-- Meters that answer without values ('no-values' in the heartbeat since the BACnet work) are
-- in trouble too: the meter rule reads them through this index.
-- depends: 0006.reports
DROP INDEX meter_health_trouble;
CREATE INDEX meter_health_trouble ON meter_health (since)
    WHERE state IN ('unreachable', 'no-values', 'stale');
