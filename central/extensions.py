"""The Flask extensions of the central app, created unbound and attached in ``create_app``
(the connection pool is made per app there, from the app's own ``DATABASE_URL``)."""

from __future__ import annotations

from flask import current_app, request
from flask_limiter import Limiter

from central.ingest import Ingestor
from common import wire
from common.attempts import redis_storage_uri


def rate_limit_key() -> str:
    """Limits of the sync API count per site (the site behind the API key), every other limit
    (sign-in, operator API) per client address: only a sync route looks at ``X-API-Key``, so
    an operator's sign-in neither costs a key lookup nor logs a refused sync call."""
    if request.path.startswith(wire.SYNC_PREFIX + "/"):
        from central.sync_auth import try_current_site

        site = try_current_site()
        if site is not None:
            return f"site:{site.site_id}"
    return f"addr:{request.remote_addr}"


def rate_limit_value() -> str:
    return str(current_app.config["RATE_LIMIT"])


limiter_storage_uri = redis_storage_uri


ingestor = Ingestor()
# swallow_errors: when Redis is away ingest goes on unlimited (Redis holds no data); /health
# reports the outage.
limiter = Limiter(
    key_func=rate_limit_key, headers_enabled=True, swallow_errors=True, strategy="fixed-window"
)
