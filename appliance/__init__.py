"""The edge appliance: BACnet collector, sync worker, MCP server, edge schema and CLI."""
