"""``meterit-central alerts evaluate [--at TIME]`` and ``meterit-central mail send [--at TIME]``:
one alert evaluation, or one outbox drain, now or as if at TIME (to replay or test a rule's
timing); the worker does both by itself every 30 s and 15 s."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from central import locks
from central.alerts import evaluate
from central.commands import base
from central.mail import drain
from central.mail.smtp import SmtpConfig, SmtpTransport
from central.settings import load_settings
from common.db import connect
from common.logs import setup_logging


def _at(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r}: give a zone, e.g. {value}Z")
    return parsed.astimezone(UTC)


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = base.parser(prog, description)
    p.add_argument("--at", type=_at, help="as if the time were this ISO 8601 instant")
    return p


def main(argv: list[str]) -> int:
    picked = base.subcommand(argv, ("evaluate",), "alerts")
    if picked is None:
        return base.EX_USAGE
    args = _parser("alerts evaluate", "Evaluate every alert rule once.").parse_args(picked[1])

    def work() -> int:
        settings = load_settings()
        setup_logging("meterit-central-alerts", settings.log_level)
        with connect(args.database_url or settings.database_url) as conn:
            outcome = evaluate.run(conn, settings, args.at or datetime.now(UTC))
        sys.stdout.write(json.dumps(outcome.as_dict()) + "\n")
        return 0 if outcome.ran else 75  # EX_TEMPFAIL: another evaluation holds the lock

    return base.run("alerts evaluate", work)


def mail_main(argv: list[str]) -> int:
    picked = base.subcommand(argv, ("send",), "mail")
    if picked is None:
        return base.EX_USAGE
    args = _parser("mail send", "Send the outbox's due e-mails once.").parse_args(picked[1])

    def work() -> int:
        settings = load_settings()
        setup_logging("meterit-central-mail", settings.log_level)
        with (
            connect(args.database_url or settings.database_url) as conn,
            locks.held(conn, locks.MAIL_DRAIN) as got,
        ):
            if not got:
                sys.stderr.write("meterit-central mail send: another drain is running\n")
                return 75
            with SmtpTransport(SmtpConfig.from_settings(settings)) as transport:
                result = drain.run(
                    conn, transport, args.at or datetime.now(UTC), settings.mail_hourly_cap
                )
        sys.stdout.write(json.dumps(result.as_dict()) + "\n")
        return 0

    return base.run("mail send", work)
