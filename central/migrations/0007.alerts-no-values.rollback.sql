-- depends: 0006.reports
DROP INDEX meter_health_trouble;
CREATE INDEX meter_health_trouble ON meter_health (since) WHERE state IN ('unreachable', 'stale');
