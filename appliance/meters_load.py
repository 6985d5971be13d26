"""``meterit-appliance meters load FILE``: poll the meters a local file lists.

For an appliance not yet enrolled (or one an installer runs stand-alone): the file replaces the
local meter list in one transaction, exactly as a meter-config pull from central would, so the
collector picks it up at once. Every problem in the file is reported before anything is written.
"""

from __future__ import annotations

import argparse
import sys

from appliance import locks
from appliance.meter_store import replace_meters
from appliance.meters_file import MetersFileError, load_meters_file
from appliance.settings import load_settings
from common import db
from common.config import EX_CONFIG, load_or_report

EX_DATAERR = 65
EX_TEMPFAIL = 75


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance meters",
        description="Load the meters to poll from a local meters file (JSON).",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    load = sub.add_parser("load", help="replace the local meter list with the file's")
    load.add_argument("file", help="meters file, as 'meterit-appliance discover' writes it")
    load.add_argument("--check", action="store_true", help="only validate the file")
    args = parser.parse_args(argv)
    try:
        meters = load_meters_file(args.file)
    except MetersFileError as err:
        sys.stderr.write(f"{args.file}: nothing loaded, fix these first:\n")
        sys.stderr.writelines(f"  {problem}\n" for problem in err.problems)
        return EX_DATAERR
    points = sum(len(m.points) for m in meters)
    if args.check:
        sys.stdout.write(f"{args.file}: {len(meters)} meter(s), {points} point(s), all valid\n")
        return 0
    settings = load_or_report(load_settings, "meterit-appliance")
    if settings is None:
        return EX_CONFIG
    with db.connect(settings.database_url, application_name="meterit-meters-load") as conn:
        # the same lock as the meter-config sync: never two writers of the meter list at once
        if not locks.try_meter_list(conn, session=False):
            sys.stderr.write("a meter sync is running; try again when it has finished\n")
            return EX_TEMPFAIL
        inserted, updated, deactivated = replace_meters(conn, meters, source="file")
        conn.commit()
    sys.stdout.write(
        f"loaded {len(meters)} meter(s) with {points} point(s): {inserted} inserted, "
        f"{updated} updated, {deactivated} deactivated\n"
    )
    if settings.central_url:
        sys.stdout.write(
            "note: this appliance is enrolled; the next meter sync replaces this list with "
            "the one central holds for the site\n"
        )
    return 0
