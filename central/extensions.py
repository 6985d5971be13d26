"""The Flask extensions of the central app, created unbound and attached in ``create_app``
(the connection pool is made per app there, from the app's own ``DATABASE_URL``)."""

from __future__ import annotations

from flask import request
from flask_limiter import Limiter

from central.ingest import Ingestor
from common.attempts import redis_storage_uri


def rate_limit_key() -> str:
    """The operator UI's limits count per client address. The sync API counts per site, in
    ``central.sync_budget`` on this limiter's storage: only a sync route looks at
    ``X-API-Key``, so an operator's sign-in neither costs a key lookup nor logs a refused
    sync call."""
    return f"addr:{request.remote_addr}"


limiter_storage_uri = redis_storage_uri


ingestor = Ingestor()
# swallow_errors: when Redis is away ingest goes on unlimited (Redis holds no data); /health
# reports the outage.
limiter = Limiter(
    key_func=rate_limit_key, headers_enabled=True, swallow_errors=True, strategy="fixed-window"
)
