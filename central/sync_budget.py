"""The per-site budgets of the sync API: requests to the whole API, and readings sent.

Requests (``METERIT_RATE_LIMIT``, e.g. ``1000/minute``; several limits may be given, ``;``
between them) count every call to any sync endpoint together, per site, or per client address
for a call without a valid key. Readings (``METERIT_SYNC_READINGS_PER_MINUTE``) count what the
batches carry, not requests: a site catching up after a week offline sends its backlog in a few
large batches, and a request count would either throttle those (100 requests a minute of
1,000-reading batches is a 10-minute catch-up for a week of 100 meters) or, raised far enough,
let a flood of large batches through. A batch costs the readings it carries, so a few large
batches and many small ones spend the same budget.

Both are fixed windows in the limiter's Redis (the ``limits`` library's keys and windows, like
every limit of central). A request costs one round trip (``count_request``: count it, read each
window's time left and the readings spent so far, for the ``X-RateLimit-*`` headers and for
refusing a batch before its body is read, and the failed attempts of a valid key's prefix and
address, ``central.sync_auth``) and a batch one more (``charge``). When Redis is away, requests
go through unlimited (Redis holds no data; /health reports it).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, g, request
from limits import RateLimitItem, RateLimitItemPerMinute, parse_many
from limits.errors import StorageError
from limits.storage import RedisStorage
from redis.exceptions import RedisError

from central.errors import ApiError
from central.extensions import limiter
from central.sync_auth import key_account, try_current_site
from common.attempts import limiter as limiter_for

logger = logging.getLogger(__name__)

NAMESPACE = "meterit-sync-readings"
REQUESTS_NAMESPACE = "meterit-sync-requests"
EXTENSION = "meterit.sync_budget"

# KEYS: each request limit's counter, the readings counter, then any counters of failed key
# attempts; ARGV: the number of request limits, then each one's window (s). Counts the request
# in every window (a new window's counter expires with it, as ``limits`` does) and answers the
# count and seconds left of each, the readings spent in this minute and that minute's seconds
# left, then each failed-attempts count.
COUNT_SCRIPT = b"""
local requests = tonumber(ARGV[1])
local answer = {}
for i = 1, requests do
    local used = redis.call('INCR', KEYS[i])
    if used == 1 then
        redis.call('EXPIRE', KEYS[i], ARGV[i + 1])
    end
    answer[#answer + 1] = used
    answer[#answer + 1] = redis.call('TTL', KEYS[i])
end
local readings = KEYS[requests + 1]
answer[#answer + 1] = tonumber(redis.call('GET', readings) or '0')
answer[#answer + 1] = redis.call('TTL', readings)
for i = requests + 2, #KEYS do
    answer[#answer + 1] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
return answer
"""


@dataclass(frozen=True, slots=True)
class Window:
    """One request limit as this request left it."""

    item: RateLimitItem
    used: int
    reset_at: int  # epoch seconds the window ends

    @property
    def remaining(self) -> int:
        return max(0, self.item.amount - self.used)


@dataclass(frozen=True, slots=True)
class Counted:
    """What ``count_request`` read: the request limits, the readings spent this minute, and
    the failed attempts counted against the key's prefix and the address."""

    windows: list[Window]
    readings_spent: int
    readings_reset_at: int
    failed_attempts: list[int]


def _readings_item() -> RateLimitItemPerMinute:
    return RateLimitItemPerMinute(int(current_app.config["SYNC_READINGS_PER_MINUTE"]), 1, NAMESPACE)


@functools.lru_cache(maxsize=8)
def _parse_request_limits(text: str) -> tuple[RateLimitItem, ...]:
    return tuple(
        type(item)(item.amount, item.multiples, REQUESTS_NAMESPACE) for item in parse_many(text)
    )


def _request_items() -> tuple[RateLimitItem, ...]:
    return _parse_request_limits(str(current_app.config["RATE_LIMIT"]))


def _storage() -> RedisStorage:
    storage = limiter.storage
    assert isinstance(storage, RedisStorage)  # central's limits always live in Redis
    return storage


def _count(ident: str, attempt_keys: list[str]) -> Counted:
    """One round trip: count this request, read the windows, the readings spent and the
    failed key attempts."""
    storage = _storage()
    script = current_app.extensions.get(EXTENSION)
    if script is None:
        script = current_app.extensions[EXTENSION] = storage.get_connection().register_script(
            COUNT_SCRIPT
        )
    items = _request_items()
    readings = _readings_item()
    keys = [storage.prefixed_key(item.key_for(ident)) for item in items]
    keys.append(storage.prefixed_key(readings.key_for(ident)))
    answer = script(keys + attempt_keys, [len(items)] + [item.get_expiry() for item in items])
    now = time.time()
    windows = [
        Window(item, int(answer[2 * i]), _reset_at(now, answer[2 * i + 1], item))
        for i, item in enumerate(items)
    ]
    spent, left = answer[2 * len(items) : 2 * len(items) + 2]
    failed = [int(n) for n in answer[2 * len(items) + 2 :]]
    return Counted(windows, int(spent), _reset_at(now, left, readings), failed)


def _reset_at(now: float, ttl: int, item: RateLimitItem) -> int:
    """When a window ends, from its counter's TTL (none yet: a whole window from now)."""
    return math.ceil(now + (int(ttl) if int(ttl) >= 0 else item.get_expiry()))


def _retry_after(reset_at: float) -> str:
    return str(max(1, math.ceil(reset_at - time.time())))


def count_request() -> None:
    """Count the request against its site's limits (a call without a valid key: its client
    address's); 429 past any of them, or while the key's prefix or the address is locked out
    for failed key attempts (``central.sync_auth``)."""
    site = try_current_site()
    ident = f"site:{site.site_id}" if site is not None else f"addr:{request.remote_addr}"
    attempts = account = address = None
    attempt_keys: list[str] = []
    if site is not None:
        account, address = key_account()
        attempts = limiter_for("api-key")
        attempt_keys = attempts.redis_keys(account, address)
    try:
        counted: Counted | None = _count(ident, attempt_keys)
    except (RedisError, StorageError, OSError) as err:
        logger.warning("sync request limit not checked, Redis unavailable: %s", err)
        counted = None
    g.sync_counted = counted
    if counted is None:
        return
    for window in counted.windows:
        if window.used > window.item.amount:
            refused = ApiError(
                429,
                f"rate limit exceeded ({window.item}); retry after the Retry-After seconds",
            )
            refused.headers["Retry-After"] = _retry_after(window.reset_at)
            raise refused
    if attempts is None:
        return
    if not attempt_keys:  # the attempts are counted elsewhere than Redis: ask them there
        attempts.check(account, address)
        return
    try:
        attempts.judge(account, address, counted.failed_attempts)
    except (RedisError, StorageError, OSError) as err:  # its Retry-After needs one more read
        logger.warning("key attempts not checked, Redis unavailable: %s", err)


def rate_limit_headers(response: Response) -> Response:
    """The tightest request limit as ``X-RateLimit-*``, from what ``count_request`` read."""
    counted: Counted | None = g.get("sync_counted")
    if counted and counted.windows:
        tightest = min(counted.windows, key=lambda w: w.remaining)
        response.headers["X-RateLimit-Limit"] = str(tightest.item.amount)
        response.headers["X-RateLimit-Remaining"] = str(tightest.remaining)
        response.headers["X-RateLimit-Reset"] = str(tightest.reset_at)
    return response


def _is_sync_request() -> bool:
    return request.blueprint == "sync"


def init_blueprint(bp: Blueprint) -> None:
    bp.before_request(count_request)
    bp.after_request(rate_limit_headers)
    # Flask-Limiter's own check has no limit to apply to a sync route (they are counted here),
    # but would still resolve the route's limits on every request (~3 % of a worker's samples)
    limiter.request_filter(_is_sync_request)


def _refuse(item: RateLimitItemPerMinute, readings: int, reset_at: float) -> ApiError:
    err = ApiError(
        429,
        f"rate limit exceeded: this site's budget of {item.amount} readings a minute "
        f"(METERIT_SYNC_READINGS_PER_MINUTE on central) has no room for {readings} more; "
        "retry after the Retry-After seconds",
    )
    err.headers["Retry-After"] = _retry_after(reset_at)
    return err


def check_room() -> None:
    """Refuse the request's batch before its body is read when its site's budget is already
    spent (from what ``count_request`` read: no round trip of its own)."""
    counted: Counted | None = g.get("sync_counted")
    item = _readings_item()
    if counted is not None and counted.readings_spent >= item.amount:
        raise _refuse(item, 1, counted.readings_reset_at)


def charge(site_id: int, readings: int) -> None:
    """Spend ``readings`` of the site's budget, or raise a 429 with Retry-After.

    A batch larger than the whole budget costs the whole budget, so it passes in an empty
    window rather than never. Spending is one round trip: the count is raised first, and a
    batch it would take over the budget gives its cost back (a refused batch spends nothing;
    a batch arriving in that instant may be refused too, never let through over budget)."""
    item = _readings_item()
    cost = max(1, min(readings, item.amount))
    ident = f"site:{site_id}"
    try:
        if not limiter.limiter.hit(item, ident, cost=cost):
            limiter.storage.incr(item.key_for(ident), item.get_expiry(), amount=-cost)
            reset_at = limiter.limiter.get_window_stats(item, ident).reset_time
            raise _refuse(item, readings, reset_at)
    except (RedisError, StorageError, OSError) as err:
        logger.warning("readings budget not checked, Redis unavailable: %s", err)
