-- depends: 0008.central-mcp-tokens
ALTER TABLE meters DROP COLUMN cov;
