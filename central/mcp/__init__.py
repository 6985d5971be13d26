"""The central MCP server: the fleet for AI assistants (see docs/mcp.md)."""
