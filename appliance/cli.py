"""``meterit-appliance``: every appliance daemon and tool, one subcommand each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from appliance.settings import ApplianceSettings, load_settings
from common import cli, commands

MIGRATIONS = Path(__file__).parent / "migrations"

COMMANDS: cli.Commands = {
    "migrate": ("appliance.cli:migrate", "apply (or --rollback) the edge database schema"),
    "config": ("appliance.cli:show_config", "check the configuration, or --doc to list settings"),
    "doctor": (
        "appliance.doctor:main",
        "check everything a reading needs to reach central; exit 0/1/2",
    ),
    "worker": ("appliance.sync.worker:main", "run the sync worker (upload, meter sync, heartbeat)"),
    "sync-now": ("appliance.sync.commands:sync_now", "upload the unsynced backlog to central now"),
    "meter-sync": ("appliance.sync.commands:meter_sync", "pull the meter config from central now"),
    "collector": ("appliance.collector.daemon:main", "poll the BACnet meters (daemon)"),
    "meters": (
        "appliance.meters_load:main",
        "meters load FILE: poll the meters a local file lists",
    ),
    "boot-settings": (
        "appliance.boot_settings_apply:main",
        "apply the boot partition's meterit.toml (disk image, first boot)",
    ),
    "discover": ("appliance.discover:main", "find BACnet devices and propose a meters file"),
    "simulate": ("appliance.bacnet.simulator:main", "run simulated BACnet/IP energy meters"),
    "web": ("web.serve:main", "run the local web UI (gunicorn)"),
    "web-password": ("web.password:main", "set or generate the local web UI admin password"),
    "mcp": ("appliance.mcp.main:main", "serve the MCP tools to AI assistants (HTTP, or --stdio)"),
}


def migrate(argv: list[str]) -> int:
    return commands.migrate_main("appliance", load_settings, MIGRATIONS, argv)


def show_config(argv: list[str]) -> int:
    return commands.config_main("appliance", ApplianceSettings, load_settings, argv)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("meterit-appliance", COMMANDS, argv)
