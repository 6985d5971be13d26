"""The per-site readings budget of the sync API: readings a site may send per minute.

It is counted in readings, not requests: a site catching up after a week offline sends its
backlog in a few large batches, and a request count would either throttle those (100 requests a
minute of 1,000-reading batches is a 10-minute catch-up for a week of 100 meters) or, raised far
enough, let a flood of large batches through. A batch costs the readings it carries, so a few
large batches and many small ones spend the same budget. The request count of the whole sync API
(``METERIT_RATE_LIMIT``, Flask-Limiter on the blueprint) stays beside it, for requests that carry
no readings.

The budget is a fixed window per minute in the limiter's Redis, like every limit of central.
When Redis is away, batches go through unlimited (Redis holds no data; /health reports it).
"""

from __future__ import annotations

import logging
import math
import time

from flask import current_app
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from redis.exceptions import RedisError

from central.errors import ApiError
from central.extensions import limiter

logger = logging.getLogger(__name__)

NAMESPACE = "meterit-sync-readings"


def _item() -> RateLimitItemPerMinute:
    return RateLimitItemPerMinute(int(current_app.config["SYNC_READINGS_PER_MINUTE"]), 1, NAMESPACE)


def _refuse(site_id: int, item: RateLimitItemPerMinute, readings: int) -> ApiError:
    reset = limiter.limiter.get_window_stats(item, f"site:{site_id}").reset_time
    wait = max(1, math.ceil(reset - time.time()))
    err = ApiError(
        429,
        f"rate limit exceeded: this site's budget of {item.amount} readings a minute "
        f"(METERIT_SYNC_READINGS_PER_MINUTE on central) has no room for {readings} more; "
        "retry after the Retry-After seconds",
    )
    err.headers["Retry-After"] = str(wait)
    return err


def check_room(site_id: int) -> None:
    """Refuse a batch before its body is read when the site's budget is already spent."""
    charge(site_id, 1, spend=False)


def charge(site_id: int, readings: int, *, spend: bool = True) -> None:
    """Spend ``readings`` of the site's budget, or raise a 429 with Retry-After.

    A batch larger than the whole budget costs the whole budget, so it passes in an empty
    window rather than never. Spending is one round trip: the count is raised first, and a
    batch it would take over the budget gives its cost back (a refused batch spends nothing;
    a batch arriving in that instant may be refused too, never let through over budget)."""
    item = _item()
    cost = max(1, min(readings, item.amount))
    ident = f"site:{site_id}"
    try:
        strategy = limiter.limiter
        if not spend:
            if not strategy.test(item, ident, cost=cost):
                raise _refuse(site_id, item, readings)
        elif not strategy.hit(item, ident, cost=cost):
            limiter.storage.incr(item.key_for(ident), item.get_expiry(), amount=-cost)
            raise _refuse(site_id, item, readings)
    except (RedisError, StorageError, OSError) as err:
        logger.warning("readings budget not checked, Redis unavailable: %s", err)
