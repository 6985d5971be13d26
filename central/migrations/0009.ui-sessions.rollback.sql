-- depends: 0008.central-mcp-tokens
DROP TABLE ui_sessions;
