"""``meterit-central key rotate SITE_ID`` and ``key revoke SITE_ID [--prefix P]``."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

from central import keys
from central.commands import base
from central.settings import load_settings


def _rotate(argv: list[str]) -> int:
    p = base.parser(
        "key rotate", "Give a site a new API key; the old one works for an overlap window."
    )
    p.add_argument("site_id", type=int)
    p.add_argument(
        "--overlap-hours",
        type=float,
        default=None,
        help="how long the old key keeps working (default: METERIT_KEY_OVERLAP_HOURS)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    args = p.parse_args(argv)

    def rotate() -> int:
        hours = (
            args.overlap_hours
            if args.overlap_hours is not None
            else load_settings().key_overlap_hours
        )
        if not 0 <= hours <= 720:
            raise ValueError("--overlap-hours: expected hours from 0 to 720")
        with base.transaction(args.database_url) as conn:
            new = keys.rotate_key(conn, args.site_id, timedelta(hours=hours), "cli")
        if args.json:
            sys.stdout.write(
                json.dumps(
                    {
                        "site_id": args.site_id,
                        "api_key": new.plaintext,
                        "key_prefix": new.prefix,
                        "overlap_hours": hours,
                    }
                )
                + "\n"
            )
        else:
            sys.stdout.write(
                f"new API key for site {args.site_id} (shown only now); the old key keeps working "
                f"for {hours:g} h:\n{new.plaintext}\n"
            )
        return 0

    return base.run("key rotate", rotate)


def _revoke(argv: list[str]) -> int:
    p = base.parser("key revoke", "Revoke a site's API key now (all keys unless --prefix).")
    p.add_argument("site_id", type=int)
    p.add_argument("--prefix", help="only the key with this prefix (see 'site list')")
    args = p.parse_args(argv)

    def revoke() -> int:
        with base.transaction(args.database_url) as conn:
            revoked = keys.revoke_keys(conn, args.site_id, args.prefix, "cli")
        sys.stdout.write(f"revoked {', '.join(revoked)} of site {args.site_id}\n")
        return 0

    return base.run("key revoke", revoke)


def main(argv: list[str]) -> int:
    picked = base.subcommand(argv, ("rotate", "revoke"), "key")
    if picked is None:
        return base.EX_USAGE
    name, rest = picked
    return _rotate(rest) if name == "rotate" else _revoke(rest)
