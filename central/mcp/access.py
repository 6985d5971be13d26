"""Who calls the central MCP server, and which tools they see.

Over HTTP every request carries an operator's MCP token (``central.mcp_tokens``), checked by
``TokenMiddleware`` before the MCP app sees the request: unknown, revoked or a deactivated
user's token -> 401 with a JSON-RPC error saying what to send. Wrong tokens are counted per
client address by the one credential limiter (``common.attempts``, in central's Redis); past
``METERIT_MCP_AUTH_FAILURES`` the address gets 429 until the window ends, whatever it sends. Over stdio the token is given once at start and checked again on every request, so a
revoked token stops working there too.

``ToolVisibility`` (SDK middleware) then lists and lets through only the tools the caller's role
may use (a viewer: the read-only ones), and none that write under the read-only profile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import CallToolResult, ListToolsResult, TextContent
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from central.mcp_tokens import TokenOwner, authenticate
from central.users import can
from common.attempts import AttemptLimiter, TooManyAttempts, redis_storage_uri
from common.mcp_refusal import refuse

logger = logging.getLogger(__name__)

OWNER_KEY = "meterit.mcp_owner"
REALM = "meterit-central-mcp"


@dataclass(frozen=True, slots=True)
class ToolRule:
    role: str  # the least role that may call it
    writes: bool


class TokenCheck:
    """Looks a presented token up (one index probe) behind the credential limiter every
    secret check of MeterIT uses (``common.attempts``), counting failures per address."""

    def __init__(
        self, db: ConnectionPool[psycopg.Connection[Any]], redis_url: str, failures: str
    ) -> None:
        self._db = db
        self._attempts = AttemptLimiter(
            redis_storage_uri(redis_url), "mcp-token", per_address=failures
        )

    def blocked(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it may try now. When Redis
        does not answer, checks go on unlimited (as central's other limits do)."""
        try:
            self._attempts.check(None, address)
        except TooManyAttempts as err:
            return err.retry_after
        return None

    def failed(self, address: str) -> None:
        self._attempts.failed(None, address)

    def owner(self, token: str) -> TokenOwner | None:
        with self._db.connection() as conn:
            return authenticate(conn, token)


class TokenMiddleware:
    """Let a request through only with ``Authorization: Bearer <an operator's MCP token>``."""

    def __init__(self, app: ASGIApp, check: TokenCheck) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: not a request
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        wait = await run_in_threadpool(self.check.blocked, address)
        if wait is not None:
            logger.warning("MCP request from %s refused: too many wrong tokens", address)
            await refuse(
                send,
                429,
                f"too many wrong MCP tokens from this address; try again in {wait} s",
                realm=REALM,
                retry_after_s=wait,
            )
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.strip().partition(" ")
        owner = None
        if scheme.lower() == "bearer" and token.strip():
            owner = await run_in_threadpool(self.check.owner, token.strip())
        if owner is None:
            reason = "missing bearer token" if not header else "unknown or revoked MCP token"
            await run_in_threadpool(self.check.failed, address)
            logger.warning("MCP request refused (%s) from %s", reason, address)
            await refuse(
                send,
                401,
                f"{reason}: send 'Authorization: Bearer <token>' with an MCP token made in "
                "central's UI (Account -> MCP tokens) or by 'meterit-central mcp-token create'",
                realm=REALM,
            )
            return
        scope[OWNER_KEY] = owner
        await self.app(scope, receive, send)


Resolver = Callable[[ServerRequestContext[Any, Any]], TokenOwner]


def http_owner(ctx: ServerRequestContext[Any, Any]) -> TokenOwner:
    """The owner ``TokenMiddleware`` found for this HTTP request."""
    request = ctx.request
    owner = getattr(request, "scope", {}).get(OWNER_KEY) if request is not None else None
    if not isinstance(owner, TokenOwner):
        raise PermissionError("no authenticated MCP token on this request")
    return owner


class ToolVisibility:
    """SDK middleware: each caller sees and calls only the tools its role and the profile allow."""

    def __init__(self, rules: dict[str, ToolRule], resolve: Resolver, *, read_only: bool) -> None:
        self.rules = rules
        self.resolve = resolve
        self.read_only = read_only

    def allowed(self, tool: str, owner: TokenOwner) -> bool:
        rule = self.rules.get(tool)
        if rule is None:
            return False
        if rule.writes and self.read_only:
            return False
        return can(owner.role, rule.role)

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method not in ("tools/list", "tools/call"):
            return await call_next(ctx)
        try:
            owner = await run_in_threadpool(self.resolve, ctx)
        except PermissionError as err:
            if ctx.method == "tools/list":  # a revoked token lists nothing
                return ListToolsResult(tools=[])
            return CallToolResult(content=[TextContent(type="text", text=str(err))], is_error=True)
        if ctx.method == "tools/call":
            name = str((ctx.params or {}).get("name", ""))
            if not self.allowed(name, owner):
                why = (
                    "this server serves read-only tools only"
                    if self.read_only and name in self.rules
                    else f"{owner.email} ({owner.role}) has no tool named {name!r}"
                )
                return CallToolResult(
                    content=[TextContent(type="text", text=f"unknown tool {name!r}: {why}")],
                    is_error=True,
                )
            return await call_next(ctx)
        result = await call_next(ctx)
        if isinstance(result, ListToolsResult):
            result.tools = [t for t in result.tools if self.allowed(t.name, owner)]
        elif isinstance(result, dict) and isinstance(result.get("tools"), list):
            # the SDK hands the serialised result to middleware: tools are dicts there
            result["tools"] = [
                t
                for t in result["tools"]
                if isinstance(t, dict) and self.allowed(str(t.get("name")), owner)
            ]
        return result
