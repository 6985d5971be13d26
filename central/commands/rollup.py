"""``meterit-central rollup``: recompute the hourly rollup for the hours ingest marked."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

from central import rollup
from central.commands import base
from central.settings import load_settings
from common.db import connect
from common.logs import setup_logging


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="meterit-central rollup", description=__doc__)
    p.add_argument("--database-url", help="instead of METERIT_DATABASE_URL")
    p.add_argument(
        "--settle-minutes",
        type=float,
        default=5.0,
        help="recompute the current hour only after its mark is this old (0: at once)",
    )
    p.add_argument(
        "--every", type=float, default=0.0, help="repeat every N seconds instead of running once"
    )
    args = p.parse_args(argv)

    def work() -> int:
        settings = load_settings()
        setup_logging("meterit-central-rollup", settings.log_level)
        settle = timedelta(minutes=args.settle_minutes)
        with connect(args.database_url or settings.database_url) as conn:
            while True:
                done = rollup.run_all(conn, settle)
                if not args.every:
                    sys.stdout.write(f"recomputed {done} site-hour(s)\n")
                    return 0
                time.sleep(args.every)

    return base.run("rollup", work)
