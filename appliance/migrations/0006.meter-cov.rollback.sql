-- depends: 0005.web-sessions
ALTER TABLE meters DROP COLUMN cov;
