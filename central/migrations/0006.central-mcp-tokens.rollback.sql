-- depends: 0005.meter-deactivation
DROP TABLE IF EXISTS mcp_tokens;
