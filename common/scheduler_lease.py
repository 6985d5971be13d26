"""Which worker queues the periodic jobs: the one holding a lease in Redis.

Any number of workers, on any hosts, work a queue; if each also queued the periodic jobs, N
workers would queue every rollup and alert evaluation N times. So exactly one schedules: the
holder of a Redis key set with a TTL and renewed on every turn of its cron loop. A worker that
dies stops renewing, and another takes the lease over within ``ttl_s``. The jobs stay safe to
run twice (each re-derives its work from PostgreSQL, exclusive ones take an advisory lock):
the lease saves the work, it does not guard correctness.

A worker restarted on the same host after a crash (systemd's restart, the appliance's only
worker) need not wait out the TTL: a holder on this host whose process is gone is taken over
at once.
"""

from __future__ import annotations

import os
import socket
import uuid

import redis

DEFAULT_TTL_S = 30.0

# renew the lease if it is ours, else take it if free: one round trip, no race between the two
_HOLD = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

_TAKE_OVER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) and 1 or 0
end
return 0
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class SchedulerLease:
    def __init__(self, connection: redis.Redis, queue: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.connection = connection
        self.key = f"meterit:{queue}:scheduler"
        self.ttl_ms = int(ttl_s * 1000)
        self.host = socket.gethostname()
        self.holder = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def hold(self) -> bool:
        """Take or renew the lease; whether this worker holds it now."""
        if self.connection.eval(_HOLD, 1, self.key, self.holder, self.ttl_ms):
            return True
        current = self.current_holder()
        if current is None or not self._dead_here(current):
            return False
        return bool(
            self.connection.eval(_TAKE_OVER, 1, self.key, current, self.holder, self.ttl_ms)
        )

    def _dead_here(self, holder: str) -> bool:
        """Whether ``holder`` was a process of this host that no longer runs."""
        host, pid, _nonce = [*holder.rsplit(":", 2), "", ""][:3]
        if host != self.host or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    def release(self) -> None:
        """Give the lease up at once (a clean stop), so another worker need not wait out the TTL."""
        self.connection.eval(_RELEASE, 1, self.key, self.holder)

    def current_holder(self) -> str | None:
        value = self.connection.get(self.key)
        return value.decode() if isinstance(value, bytes) else value
