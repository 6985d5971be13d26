-- depends: 0004.trend-backfill
DROP TABLE web_sessions;
