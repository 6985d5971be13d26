"""The central server: sync API, operator UI and API, alerts, central schema and CLI."""
