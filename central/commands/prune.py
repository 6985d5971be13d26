"""``meterit-central prune``: drop batch answers and heartbeats past their retention."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from central import retention
from central.commands import base
from central.settings import load_settings
from common.db import connect
from common.logs import setup_logging


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="meterit-central prune", description=__doc__)
    p.add_argument("--database-url", help="instead of METERIT_DATABASE_URL")
    args = p.parse_args(argv)

    def work() -> int:
        settings = load_settings()
        setup_logging("meterit-central-prune", settings.log_level)
        with connect(args.database_url or settings.database_url) as conn:
            done = retention.prune(
                conn,
                timedelta(days=settings.batch_answer_days),
                timedelta(days=settings.heartbeat_days),
                alerts=timedelta(days=settings.alert_history_days),
                mail=timedelta(days=settings.mail_days),
            )
        sys.stdout.write(
            f"pruned {done['sync_batches']} batch answer(s) older than "
            f"{settings.batch_answer_days} d and {done['heartbeats']} heartbeat(s) older than "
            f"{settings.heartbeat_days} d\n"
        )
        return 0

    return base.run("prune", work)
