"""What the local page warns technicians about, since a cut-off appliance cannot e-mail anyone:
central unreachable for longer than a grace period, and a backlog above its threshold.

Pure: it reads the sync status (``appliance.service.get_sync_status``) and a time, so tests move the
clock without waiting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from appliance.service import SyncStatus


@dataclass(frozen=True, slots=True)
class Banner:
    kind: str  # central_unreachable | backlog
    level: str  # error | warn (the local UI's flash classes)
    message: str


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 120 else f"{minutes} min"


def banners(
    sync: SyncStatus, now: datetime, unreachable_after: timedelta, backlog_limit: int
) -> list[Banner]:
    out: list[Banner] = []
    conn = sync["connectivity"]
    since = conn["since"]
    if sync["enrolled"] and conn["state"] == "offline" and since is not None:
        down = now - since
        if down >= unreachable_after:
            error = conn["last_error"] or "no answer"
            out.append(
                Banner(
                    "central_unreachable",
                    "error",
                    f"Central has been unreachable for {_minutes(down)} (since "
                    f"{since.strftime('%Y-%m-%d %H:%M')} UTC): {error}. Readings are kept here "
                    "and sent when it answers; central cannot alert anyone about this site "
                    "meanwhile — check the site's internet link.",
                )
            )
    backlog = int(sync["backlog"])
    if backlog > backlog_limit:
        out.append(
            Banner(
                "backlog",
                "warn",
                f"{backlog:,} readings are waiting to be sent (more than {backlog_limit:,}). "
                "They are safe on this appliance; see the Sync page for why they are not "
                "leaving.",
            )
        )
    return out
