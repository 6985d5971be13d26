"""Whether a site is online, late or offline, from the age of its last heartbeat.

The one place that decides it: the operator API, the dashboard, the site page (and alerts)
all call ``connectivity``. ``now`` is a parameter, never read inside, so callers that judge
many sites use one instant for all and tests pass the instant they need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# every state a site can be in, as the dashboard's filter lists them
STATES = ("online", "late", "offline", "never", "inactive")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Heartbeat ages (seconds) from which a site counts as late, then offline."""

    late_s: float
    offline_s: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Thresholds:
        """From the app's config (``HEARTBEAT_LATE_S`` / ``HEARTBEAT_OFFLINE_S``)."""
        return cls(float(config["HEARTBEAT_LATE_S"]), float(config["HEARTBEAT_OFFLINE_S"]))


def connectivity(
    last: datetime | None, now: datetime, limits: Thresholds, *, active: bool = True
) -> str:
    """online / late / offline from the age of the last heartbeat at ``now``; "never" for a
    site that has not sent one, "inactive" for a deactivated site."""
    if not active:
        return "inactive"
    if last is None:
        return "never"
    age = (now - last).total_seconds()
    if age < limits.late_s:
        return "online"
    if age < limits.offline_s:
        return "late"
    return "offline"
