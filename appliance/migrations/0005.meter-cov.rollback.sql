-- depends: 0004.trend-backfill
ALTER TABLE meters DROP COLUMN cov;
