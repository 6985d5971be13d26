-- depends: 0010.heartbeat-summary
ALTER TABLE meters DROP COLUMN cov;
