"""The bearer token of the MCP server's HTTP transport.

The appliance has one shared secret (``METERIT_MCP_TOKEN``), not an OAuth server, so the SDK's
OAuth resource-server machinery does not fit; this small ASGI wrapper checks the token on every
request before the MCP app sees it. A wrong or missing token gets 401 with a JSON-RPC error that says
what to send, and one log line (without the token) for whoever troubleshoots.
"""

from __future__ import annotations

import hmac
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from common.attempts import AttemptLimiter, TooManyAttempts
from common.mcp_refusal import refuse

logger = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16


def check_token(token: str | None) -> str | None:
    """Why ``token`` cannot protect the HTTP transport, or None when it can."""
    if not token:
        return (
            "METERIT_MCP_TOKEN is not set: the MCP server over HTTP requires a bearer token. "
            "Set METERIT_MCP_TOKEN (or METERIT_MCP_TOKEN_FILE) to a random secret, e.g. "
            "'openssl rand -hex 32', or run 'meterit-appliance mcp --stdio' for a local assistant"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"METERIT_MCP_TOKEN is {len(token)} characters long; use at least "
            f"{MIN_TOKEN_LENGTH} random characters, e.g. 'openssl rand -hex 32'"
        )
    return None


class BearerTokenMiddleware:
    """Let a request through only with ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = token.encode()
        # one process serves MCP: its memory holds the whole count (``common.attempts``)
        self._attempts = AttemptLimiter("memory://", "mcp-token")

    def _valid(self, header: bytes | None) -> bool:
        if header is None:
            return False
        scheme, _, given = header.strip().partition(b" ")
        # the scheme is case-insensitive (RFC 9110); the token is compared in constant time
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: not a request
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization")
        client = scope.get("client")
        address = client[0] if client else None
        try:
            self._attempts.check(None, address)
        except TooManyAttempts as err:
            await refuse(send, 429, str(err), realm="meterit-mcp", retry_after_s=err.retry_after)
            return
        if self._valid(given):
            await self.app(scope, receive, send)
            return
        if given is not None:
            self._attempts.failed(None, address)
        reason = "missing bearer token" if given is None else "wrong bearer token"
        logger.warning(
            "MCP request refused (%s) from %s; the client must send the token of "
            "METERIT_MCP_TOKEN as 'Authorization: Bearer <token>'",
            reason,
            address or "unknown",
        )
        await refuse(
            send,
            401,
            f"{reason}: send 'Authorization: Bearer <token>' with the token "
            "configured on the appliance as METERIT_MCP_TOKEN",
            realm="meterit-mcp",
        )
