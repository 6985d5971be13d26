"""``meterit-appliance mcp``: the MCP server for AI assistants (unit ``meterit-mcp``)."""

from __future__ import annotations

import argparse
import logging
import sys

from appliance.mcp.auth import BearerTokenMiddleware, check_token
from appliance.settings import load_settings
from common.config import EX_CONFIG, ConfigError
from common.logs import setup_logging
from common.mcp_transports import BindError, parse_bind, run_http, run_stdio

logger = logging.getLogger(__name__)


def _logs_to_stderr() -> None:
    """In stdio mode stdout is the protocol channel: one log line there breaks the client."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


def _refuse(message: str) -> int:
    sys.stderr.write(f"meterit-appliance mcp: {message}\n")
    return EX_CONFIG


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance mcp",
        description="Serve the appliance's MCP tools to an AI assistant: streamable HTTP on "
        "METERIT_MCP_BIND with the bearer token METERIT_MCP_TOKEN, or stdio with --stdio.",
    )
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument(
        "--stdio",
        action="store_true",
        help="talk MCP over stdin/stdout (for an assistant started on the appliance)",
    )
    transport.add_argument(
        "--http",
        action="store_true",
        help="serve streamable HTTP at http://METERIT_MCP_BIND/mcp (the default)",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as err:
        return _refuse(f"configuration error: {err}")
    if not args.stdio:
        problem = check_token(settings.mcp_token)
        if problem is not None:
            return _refuse(problem)
        try:
            parse_bind(settings.mcp_bind)
        except BindError as err:
            return _refuse(str(err))
    setup_logging("meterit-mcp", settings.log_level)
    # imported here: the SDK takes seconds to load, a refused start answers at once
    from appliance.mcp.tools import build_server

    if args.stdio:
        _logs_to_stderr()
        run_stdio(build_server(settings))
        return 0
    assert settings.mcp_token is not None
    host, _ = parse_bind(settings.mcp_bind)
    app = build_server(settings).streamable_http_app(host=host)
    return run_http(BearerTokenMiddleware(app, settings.mcp_token), settings.mcp_bind)
