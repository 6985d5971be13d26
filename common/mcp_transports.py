"""How an MCP server (the appliance's, central's) is served: stdio for an assistant on the same
machine, streamable HTTP for one elsewhere (behind the caller's bearer-token middleware, on
``METERIT_MCP_BIND``, localhost by default). Shared so both daemons stop, announce READY and
report a busy port the same way."""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType
from typing import TYPE_CHECKING

import anyio
import uvicorn
from starlette.types import ASGIApp

from common.systemd import Notifier

if TYPE_CHECKING:  # the SDK takes seconds to import; a refused start should not wait for it
    from mcp.server.mcpserver import MCPServer

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"


class BindError(ValueError):
    """METERIT_MCP_BIND is not ``host:port``."""


def parse_bind(bind: str) -> tuple[str, int]:
    """``127.0.0.1:8765``, ``[::1]:8765`` or ``0.0.0.0:8765`` into (host, port)."""
    host, sep, port_text = bind.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BindError(
            f"METERIT_MCP_BIND={bind!r}: expected address:port, e.g. 127.0.0.1:8765 "
            "(localhost only) or 0.0.0.0:8765 (every interface)"
        )
    return host, int(port_text)


class _Uvicorn(uvicorn.Server):
    """Stops gracefully on SIGTERM and exits 0 like the other daemons; stock uvicorn re-raises
    the signal after shutting down, so the process would die by it and skip STOPPING."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        elif not self.should_exit:
            logger.info("MCP server stopping (%s)", signal.Signals(sig).name)
            self.should_exit = True


def run_stdio(server: MCPServer) -> None:
    """Serve one assistant over stdin/stdout until it closes stdin."""
    logger.info("MCP server ready on stdio")
    anyio.run(server.run_stdio_async)


def run_http(app: ASGIApp, bind: str, *, auth_note: str = "bearer token required") -> int:
    """Serve ``app`` (the MCP app wrapped in its token check) at ``http://<bind>/mcp`` until
    SIGTERM; the exit status."""
    host, port = parse_bind(bind)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # our logging setup (journald) handles uvicorn's loggers too
        access_log=False,
        lifespan="on",
    )
    web = _Uvicorn(config)
    notifier = Notifier()
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}{MCP_PATH}"

    async def announce_ready() -> None:
        """READY only once the socket is bound and the app has started, as systemd expects."""
        while not web.started:
            if web.should_exit:
                return
            await asyncio.sleep(0.05)
        logger.info("MCP server listening on %s (%s)", url, auth_note)
        notifier.ready(f"listening on {url}")

    async def serve() -> None:
        ready = asyncio.create_task(announce_ready())
        try:
            await web.serve()
        finally:
            ready.cancel()

    try:
        asyncio.run(serve())
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        logger.error(
            "MCP server cannot listen on %s:%d; is another process using it? "
            "Change METERIT_MCP_BIND or stop the other process",
            host,
            port,
        )
        return int(exc.code) if isinstance(exc.code, int) else 1
    finally:
        notifier.stopping()
    return 0
