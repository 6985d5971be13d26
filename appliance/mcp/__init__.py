"""The appliance's MCP server (unit ``meterit-mcp``): AI assistants ask what is going on and act.

Every tool is a thin adapter over ``appliance.service`` and ``appliance.readings_query``, the
same functions the local web UI calls, so an assistant and a technician always see the same
answer. ``tools`` declares the tools, ``models`` their structured output, ``auth`` the bearer
token of the HTTP transport, ``transports`` how it is served and ``main`` the subcommand.
"""
