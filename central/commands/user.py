"""``meterit-central user create TENANT EMAIL --role R``: an operator of one tenant.

The password comes from ``--password-file`` or standard input, never from the command line
(where ``ps`` and shell history would keep it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from central import tenants, users
from central.commands import base


def main(argv: list[str]) -> int:
    picked = base.subcommand(argv, ("create",), "user")
    if picked is None:
        return base.EX_USAGE
    p = base.parser("user create", "Create an operator user.")
    p.add_argument("tenant")
    p.add_argument("email")
    p.add_argument("--role", choices=users.ROLES, default="viewer")
    p.add_argument("--password-file", help="file holding the password (default: read stdin)")
    args = p.parse_args(picked[1])

    def create() -> int:
        if args.password_file:
            password = Path(args.password_file).read_text(encoding="utf-8").strip()
        else:
            password = sys.stdin.readline().strip()
        with base.transaction(args.database_url) as conn:
            tenant_id = tenants.tenant_id_by_name(conn, args.tenant)
            user_id = users.create_user(
                conn, tenant_id, email=args.email, password=password, role=args.role, actor="cli"
            )
        sys.stdout.write(f"user {args.email} ({args.role}) created (id {user_id})\n")
        return 0

    return base.run("user create", create)
