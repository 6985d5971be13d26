"""JSON for the UI's answers and embedded page data, through orjson.

The dashboard's data is ~1000 point values with timestamps on every refresh; the standard
encoder (after converting each datetime in Python) spent more time on it than the database.
orjson writes datetimes itself, as ISO 8601 with ``Z`` for UTC: the same text
``appliance.service.jsonable`` produces, so pages, scripts and MCP see one format.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS | orjson.OPT_NAIVE_UTC


class OrjsonProvider(DefaultJSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=OPTIONS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)
