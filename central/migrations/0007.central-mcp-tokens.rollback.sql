-- depends: 0006.reports
DROP TABLE IF EXISTS mcp_tokens;
