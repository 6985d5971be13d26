"""``meterit-central``: the central server's daemons and admin tools, one subcommand each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from central.settings import CentralSettings, load_settings
from common import cli, commands

MIGRATIONS = Path(__file__).parent / "migrations"

COMMANDS: cli.Commands = {
    "migrate": ("central.cli:migrate", "apply (or --rollback) the central database schema"),
    "config": ("central.cli:show_config", "check the configuration, or --doc to list settings"),
    "doctor": (
        "central.doctor:main",
        "check database, Redis, disk and units; exit 0/1/2 for ok/warn/fail",
    ),
    "serve": ("central.commands.serve:main", "run the central server under gunicorn"),
    "worker": ("central.worker:main", "run the central worker (rollup, alerts, e-mail, pruning)"),
    "tenant": ("central.commands.tenant:main", "tenant create NAME"),
    "site": (
        "central.commands.site:main",
        "site create TENANT NAME (prints the API key once) | site list",
    ),
    "key": ("central.commands.key:main", "key rotate SITE_ID | key revoke SITE_ID [--prefix P]"),
    "meters": (
        "central.commands.meters:main",
        "meters load TENANT SITE FILE (the site's meter list from a meters file)",
    ),
    "user": ("central.commands.user:main", "user create TENANT EMAIL --role admin|operator|viewer"),
    "rollup": (
        "central.commands.rollup:main",
        "recompute the hourly rollup of the hours ingest wrote",
    ),
    "alerts": (
        "central.commands.alerts:main",
        "alerts evaluate [--at TIME]: evaluate every alert rule once",
    ),
    "mail": (
        "central.commands.alerts:mail_main",
        "mail send [--at TIME]: send the outbox's due e-mails once",
    ),
    "mcp": ("central.mcp.main:main", "serve the MCP tools to AI assistants (HTTP, or --stdio)"),
    "mcp-token": (
        "central.commands.mcp_token:main",
        "mcp-token create EMAIL [--name N] (prints it once) | list EMAIL | revoke ID",
    ),
    "prune": (
        "central.commands.prune:main",
        "drop batch answers and heartbeats past their retention",
    ),
}


def migrate(argv: list[str]) -> int:
    return commands.migrate_main("central", load_settings, MIGRATIONS, argv)


def show_config(argv: list[str]) -> int:
    return commands.config_main("central", CentralSettings, load_settings, argv)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("meterit-central", COMMANDS, argv)
