"""The appliance's local web UI: technicians on the site LAN check meters and sync, and act.

Served by gunicorn (``meterit-appliance web``, unit ``meterit-web``). Every status and action
goes through ``appliance.service`` so the UI, the MCP server and the CLI always agree.
"""
