"""``meterit-central mcp-token create EMAIL [--name N] | list [EMAIL] | revoke ID``.

A token is printed once, when made; central keeps only its hash. It acts as its user (tenant and
role), so a viewer's token reads and an admin's may also configure alert rules.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import psycopg

from central import mcp_tokens
from central.commands import base
from central.domain_errors import NotFound


def _user(conn: psycopg.Connection[Any], email: str) -> tuple[int, int, str]:
    row = conn.execute(
        "SELECT id, tenant_id, role FROM users WHERE lower(email) = lower(%s) AND active", (email,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no active user {email!r}")
    return int(row[0]), int(row[1]), str(row[2])


def _create(argv: list[str]) -> int:
    p = base.parser("mcp-token create", "Make an MCP token for a user; printed only now.")
    p.add_argument("email")
    p.add_argument("--name", default="MCP client", help="what the token is for, e.g. 'laptop'")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    args = p.parse_args(argv)

    def create() -> int:
        with base.transaction(args.database_url) as conn:
            user_id, tenant_id, role = _user(conn, args.email)
            new = mcp_tokens.create_token(conn, user_id, tenant_id, args.name, "cli")
        if args.json:
            out = {"token_id": new.token_id, "token": new.plaintext, "prefix": new.prefix,
                   "role": role}  # fmt: skip
            sys.stdout.write(json.dumps(out) + "\n")
        else:
            sys.stdout.write(
                f"MCP token {new.token_id} for {args.email} ({role}), shown only now:\n"
                f"{new.plaintext}\n"
            )
        return 0

    return base.run("mcp-token create", create)


def _list(argv: list[str]) -> int:
    p = base.parser("mcp-token list", "List a user's MCP tokens (never the secrets).")
    p.add_argument("email")
    args = p.parse_args(argv)

    def show() -> int:
        with base.transaction(args.database_url) as conn:
            user_id, tenant_id, _ = _user(conn, args.email)
            found = mcp_tokens.list_tokens(conn, tenant_id, user_id)
        for t in found:
            state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "usable"
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
            sys.stdout.write(f"{t.id}\t{t.prefix}\t{t.name}\t{state}\tlast used {used}\n")
        return 0

    return base.run("mcp-token list", show)


def _revoke(argv: list[str]) -> int:
    p = base.parser("mcp-token revoke", "Revoke an MCP token now.")
    p.add_argument("token_id", type=int)
    args = p.parse_args(argv)

    def revoke() -> int:
        with base.transaction(args.database_url) as conn:
            row = conn.execute(
                """SELECT u.tenant_id FROM mcp_tokens t JOIN users u ON u.id = t.user_id
                   WHERE t.id = %s""",
                (args.token_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no MCP token {args.token_id}")
            prefix = mcp_tokens.revoke_token(conn, int(row[0]), args.token_id, "cli")
        sys.stdout.write(f"revoked MCP token {args.token_id} ({prefix})\n")
        return 0

    return base.run("mcp-token revoke", revoke)


def main(argv: list[str]) -> int:
    picked = base.subcommand(argv, ("create", "list", "revoke"), "mcp-token")
    if picked is None:
        return base.EX_USAGE
    name, rest = picked
    return {"create": _create, "list": _list, "revoke": _revoke}[name](rest)
