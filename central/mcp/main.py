"""``meterit-central mcp``: the central MCP server for AI assistants (unit meterit-central-mcp).

Streamable HTTP (the default, as the unit runs it) serves every operator with an MCP token: each
request carries one. ``--stdio`` serves one local assistant as the operator whose token is in
METERIT_MCP_TOKEN (checked at start and on every request). ``--read-only`` (or
METERIT_MCP_READ_ONLY) hides every tool that writes, whoever calls.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from central.settings import load_settings
from common.config import EX_CONFIG, ConfigError
from common.logs import setup_logging
from common.mcp_transports import BindError, parse_bind, run_http, run_stdio

logger = logging.getLogger(__name__)

POOL_SIZE = 8  # tool calls run in threads; each holds one connection while it runs


def _logs_to_stderr() -> None:
    """In stdio mode stdout is the protocol channel: one log line there breaks the client."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


def _refuse(message: str) -> int:
    sys.stderr.write(f"meterit-central mcp: {message}\n")
    return EX_CONFIG


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-central mcp",
        description="Serve central's MCP tools to AI assistants: streamable HTTP on "
        "METERIT_MCP_BIND (each client sends an operator's MCP token), or stdio with --stdio "
        "as the operator whose token is METERIT_MCP_TOKEN.",
    )
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="talk MCP over stdin/stdout")
    transport.add_argument(
        "--http", action="store_true", help="serve http://METERIT_MCP_BIND/mcp (the default)"
    )
    parser.add_argument("--read-only", action="store_true", help="serve only the tools that read")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as err:
        return _refuse(f"configuration error: {err}")
    read_only = args.read_only or settings.mcp_read_only
    if args.stdio and not settings.mcp_token:
        return _refuse(
            "METERIT_MCP_TOKEN is not set: --stdio acts as the operator whose MCP token it is; "
            "make one with 'meterit-central mcp-token create EMAIL' or in the UI"
        )
    if not args.stdio:
        try:
            parse_bind(settings.mcp_bind)
        except BindError as err:
            return _refuse(str(err))
    setup_logging("meterit-central-mcp", settings.log_level)
    # imported here: the SDK takes seconds to load, a refused start answers at once
    from central.database import standalone_pool
    from central.mcp.access import TokenCheck, TokenMiddleware, http_owner
    from central.mcp.tools import build_server

    db = standalone_pool(settings.database_url, "meterit-central-mcp", POOL_SIZE)
    db.open(wait=False)
    reader = None
    if settings.read_database_url:
        reader = standalone_pool(
            settings.read_database_url, "meterit-central-mcp-read", POOL_SIZE, read_only=True
        )
        reader.open(wait=False)
    try:
        check = TokenCheck(db, settings.redis_url, settings.mcp_auth_failures)
        if args.stdio:
            _logs_to_stderr()
            token = settings.mcp_token or ""
            if check.owner(token) is None:
                return _refuse("METERIT_MCP_TOKEN is unknown or revoked, or its user deactivated")

            def stdio_owner(_ctx: Any) -> Any:
                owner = check.owner(token)
                if owner is None:
                    raise PermissionError("the MCP token was revoked or its user deactivated")
                return owner

            run_stdio(build_server(settings, db, stdio_owner, read_only=read_only, reader=reader))
            return 0
        host, _ = parse_bind(settings.mcp_bind)
        server = build_server(settings, db, http_owner, read_only=read_only, reader=reader)
        app = TokenMiddleware(server.streamable_http_app(host=host), check)
        note = "operator MCP tokens required" + (", read-only profile" if read_only else "")
        return run_http(app, settings.mcp_bind, auth_note=note)
    finally:
        db.close()
        if reader is not None:
            reader.close()
