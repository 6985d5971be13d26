-- depends: 0007.alerts-no-values
DROP TABLE IF EXISTS mcp_tokens;
