"""The ``migrate`` and ``config`` subcommands, identical on both sides but for the side's name."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import config, db
from common.config import EX_CONFIG, load_or_report
from common.logs import setup_logging


def migrate_main(
    side: str, load_settings: Callable[[], Any], migrations: Path, argv: list[str]
) -> int:
    parser = argparse.ArgumentParser(
        prog=f"meterit-{side} migrate", description=f"Apply or roll back the {side} schema."
    )
    parser.add_argument("--rollback", action="store_true", help="roll back instead of applying")
    parser.add_argument(
        "--steps", type=int, default=None, help="with --rollback: how many (default: all)"
    )
    parser.add_argument("--database-url", help="instead of METERIT_DATABASE_URL")
    args = parser.parse_args(argv)
    settings = load_or_report(load_settings, f"meterit-{side}")
    if settings is None:
        return EX_CONFIG
    setup_logging(f"meterit-{side}-migrate", settings.log_level)
    url = args.database_url or settings.database_url
    done = db.migrate(url, migrations, rollback=args.rollback, steps=args.steps)
    verb = "rolled back" if args.rollback else "applied"
    sys.stdout.write(
        f"{verb} {done} migration(s); schema is up to date\n"
        if not args.rollback
        else f"{verb} {done} migration(s)\n"
    )
    return 0


def config_main(
    side: str, settings_cls: type[Any], load_settings: Callable[[], Any], argv: list[str]
) -> int:
    parser = argparse.ArgumentParser(
        prog=f"meterit-{side} config", description="Check or document the configuration."
    )
    parser.add_argument("--doc", action="store_true", help="print every setting as Markdown")
    args = parser.parse_args(argv)
    if args.doc:
        sys.stdout.write(config.describe(settings_cls, side))
        return 0
    settings = load_or_report(load_settings, f"meterit-{side}")
    if settings is None:
        return EX_CONFIG
    sys.stdout.write(json.dumps(config.redacted(settings), indent=2, default=str) + "\n")
    return 0
