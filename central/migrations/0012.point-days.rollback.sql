-- depends: 0011.meter-cov
DROP FUNCTION point_summaries_rebuild(integer[]);
DROP TABLE point_days;
