"""The answer an MCP server over HTTP gives a request it refuses before the MCP app sees it
(no or a wrong bearer token, too many attempts): the HTTP status with a JSON-RPC error body,
because MCP clients show that message to the user where a bare 401 says nothing."""

from __future__ import annotations

import json

from starlette.types import Send

UNAUTHORIZED = -32001  # JSON-RPC code in the implementation-defined server-error range
TOO_MANY = -32029


async def refuse(
    send: Send,
    status: int,
    message: str,
    *,
    realm: str,
    retry_after_s: int | None = None,
) -> None:
    """Send ``status`` with ``message`` as a JSON-RPC error; a 401 names the Bearer scheme."""
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": UNAUTHORIZED if status == 401 else TOO_MANY, "message": message},
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append(
            (b"www-authenticate", f'Bearer realm="{realm}", error="invalid_token"'.encode())
        )
    if retry_after_s is not None:
        headers.append((b"retry-after", str(retry_after_s).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
