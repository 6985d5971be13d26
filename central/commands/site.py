"""``meterit-central site create TENANT NAME`` (prints the API key once) and ``site list``."""

from __future__ import annotations

import json
import sys

from central import sites, tenants
from central.commands import base


def _create(argv: list[str]) -> int:
    p = base.parser("site create", "Create a site and its first API key (shown only now).")
    p.add_argument("tenant", help="the tenant's name")
    p.add_argument("name", help="the site's name, unique within the tenant")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    args = p.parse_args(argv)

    def create() -> int:
        with base.transaction(args.database_url) as conn:
            tenant_id = tenants.tenant_id_by_name(conn, args.tenant)
            created = sites.create_site(conn, tenant_id, args.name, "cli")
        if args.json:
            out = {
                "site_id": created.site_id,
                "name": created.name,
                "api_key": created.key.plaintext,
                "key_prefix": created.key.prefix,
            }
            sys.stdout.write(json.dumps(out) + "\n")
        else:
            sys.stdout.write(
                f"site {created.name!r} created (id {created.site_id})\n"
                f"API key (shown only now; put it in the appliance's METERIT_API_KEY):\n"
                f"{created.key.plaintext}\n"
            )
        return 0

    return base.run("site create", create)


def _list(argv: list[str]) -> int:
    p = base.parser("site list", "List sites with their usable key prefixes.")
    p.add_argument("--tenant", help="only this tenant's sites")
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)

    def show() -> int:
        with base.transaction(args.database_url) as conn:
            tenant_id = tenants.tenant_id_by_name(conn, args.tenant) if args.tenant else None
            rows = sites.list_sites(conn, tenant_id)
        if args.json:
            sys.stdout.write(json.dumps([r.as_json() for r in rows], indent=2) + "\n")
            return 0
        sys.stdout.write(
            f"{'id':>5}  {'tenant':<20} {'site':<30} {'active':<6} {'meters':>6}  last heartbeat / keys\n"
        )
        for r in rows:
            last = r.last_heartbeat_at.isoformat() if r.last_heartbeat_at else "never"
            sys.stdout.write(
                f"{r.id:>5}  {r.tenant:<20} {r.name:<30} {('yes' if r.active else 'no'):<6} "
                f"{r.meters:>6}  {last} / {', '.join(r.keys) or 'no usable key'}\n"
            )
        return 0

    return base.run("site list", show)


def main(argv: list[str]) -> int:
    picked = base.subcommand(argv, ("create", "list"), "site")
    if picked is None:
        return base.EX_USAGE
    name, rest = picked
    return _create(rest) if name == "create" else _list(rest)
