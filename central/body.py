"""Reading a JSON request body that may be gzip-encoded, with the decompressed size capped.

The cap applies to the *decompressed* bytes: a few kB of gzip can expand to gigabytes, so the
decompressor is stopped one byte past the limit instead of trusting Content-Length.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from flask import Request

from central.errors import ApiError


def raw_body(request: Request, limit: int) -> bytes:
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    data = request.get_data(cache=False)
    if encoding == "identity":
        if len(data) > limit:
            # a chunked body is read only to one byte past the app's cap: say "over", not a size
            raise ApiError(413, f"body is over {limit} bytes; send smaller batches")
        return data
    if encoding != "gzip":
        raise ApiError(
            415, f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding"
        )
    if len(data) > limit:
        raise ApiError(413, f"body is over {limit} bytes; send smaller batches")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as err:
        raise ApiError(400, f"body is not valid gzip: {err}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ApiError(413, f"decompressed body exceeds {limit} bytes; send smaller batches")
    if not inflater.eof:
        raise ApiError(400, "body is not valid gzip: the stream is truncated")
    return out


def json_body(request: Request, limit: int) -> Any:
    content_type = request.mimetype
    if content_type and content_type != "application/json":
        raise ApiError(415, f"Content-Type {content_type!r}: send application/json")
    data = raw_body(request, limit)
    try:
        # orjson: ~4x the stdlib's speed on a batch, and it refuses NaN/Infinity as JSON should
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise ApiError(400, f"body is not valid JSON: {err}") from None


def json_object(request: Request, limit: int) -> dict[str, Any]:
    body = json_body(request, limit)
    if not isinstance(body, dict):
        raise ApiError(422, f"body: expected a JSON object, got {type(body).__name__}")
    return body
