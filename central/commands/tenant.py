"""``meterit-central tenant create NAME``: a tenant owns sites and operator users."""

from __future__ import annotations

import sys

from central import tenants
from central.commands import base


def main(argv: list[str]) -> int:
    picked = base.subcommand(argv, ("create",), "tenant")
    if picked is None:
        return base.EX_USAGE
    p = base.parser("tenant create", "Create a tenant.")
    p.add_argument("name")
    args = p.parse_args(picked[1])

    def create() -> int:
        with base.transaction(args.database_url) as conn:
            tenant_id = tenants.create_tenant(conn, args.name, "cli")
        sys.stdout.write(f"tenant {args.name!r} created (id {tenant_id})\n")
        return 0

    return base.run("tenant create", create)
