"""The appliance's settings: one frozen object built at start (see ``common.config``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common import config, metrics_settings
from common.config import PG_SCHEMES, REDIS_SCHEMES, setting


@dataclass(frozen=True)
class ApplianceSettings:
    database_url: str = setting(
        "postgresql:///meterit", help="edge PostgreSQL database", url_schemes=PG_SCHEMES
    )
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        help="Redis used for the job queue only",
        url_schemes=REDIS_SCHEMES,
    )
    central_url: str | None = setting(
        None,
        help="base URL of the central server; unset while the appliance is not enrolled",
        url_schemes=("https", "http"),
    )
    api_key: str | None = setting(None, help="this site's API key for central", secret=True)
    ca_bundle: str | None = setting(
        None, help="CA certificate file to verify central with, instead of the system CAs"
    )
    bacnet_address: str = setting(
        "0.0.0.0/24:47808",
        help="local BACnet/IP address the collector binds, as IP[/PREFIX][:PORT]",
    )
    bacnet_bbmd: str | None = setting(
        None,
        help="BBMD to register with as a foreign device, IP[:PORT], to reach meters on other "
        "IP subnets (unset: none)",
    )
    bacnet_bbmd_ttl_s: int = setting(
        900,
        help="seconds the BBMD keeps the registration; it is renewed when they run out",
        minimum=30,
        maximum=65535,
    )
    poll_interval_s: int = setting(
        60, help="seconds between poll cycles, aligned to the clock", minimum=1, maximum=3600
    )
    poll_concurrency: int = setting(
        32, help="meters polled at the same time", minimum=1, maximum=1000
    )
    request_timeout_s: float = setting(
        3.0, help="base timeout of one BACnet request in seconds", minimum=0.1, maximum=60
    )
    cov_lifetime_s: int = setting(
        300,
        help='lifetime asked for in SubscribeCOV of meters with "cov": true, in seconds; '
        "subscriptions are renewed at half of it",
        minimum=2,
        maximum=86400,
    )
    cov_confirmed: bool = setting(
        True,
        help="ask for confirmed COV notifications (the device retries until acknowledged) "
        "rather than unconfirmed ones",
    )
    backfill_max_days: int = setting(
        7,
        help="longest gap (collector stopped, meter unreachable) read back from the meters' "
        "trend logs, in days (0 = no backfill)",
        minimum=0,
        maximum=366,
    )
    upload_batch_size: int = setting(
        1000,
        help="readings in the first upload batch of a run; while full batches keep coming, each "
        "next one doubles, up to upload_batch_max",
        minimum=1,
        maximum=50000,
    )
    upload_batch_max: int = setting(
        50000,
        help="most readings in one upload batch while catching up a backlog; at most central's "
        "METERIT_MAX_BATCH_READINGS (a batch central refuses as too large is sent again halved)",
        minimum=1,
        maximum=50000,
    )
    upload_interval_s: int = setting(
        60, help="seconds between scheduled uploads", minimum=5, maximum=3600
    )
    upload_time_budget_s: int = setting(
        50, help="seconds one upload run may drain before it yields", minimum=1, maximum=3600
    )
    upload_retry_backoff_s: float = setting(
        2.0,
        help="first wait before retrying a failed upload; doubles on each of the 5 retries",
        minimum=0,
        maximum=60,
    )
    retention_days: int = setting(
        7,
        help="days a reading stays on the appliance after its timestamp, once synced",
        minimum=1,
        maximum=365,
    )
    buffer_budget_rows: int = setting(
        0,
        help="most unsynced readings kept; past it the oldest are dropped and counted (0 = no limit)",
        minimum=0,
    )
    heartbeat_interval_s: int = setting(
        300, help="seconds between heartbeats to central", minimum=10, maximum=3600
    )
    meter_sync_interval_s: int = setting(
        3600, help="seconds between meter-config pulls from central", minimum=60, maximum=86400
    )
    web_bind: str = setting("0.0.0.0:8080", help="address:port of the local web UI")
    web_secret_key: str | None = setting(
        None, help="key signing local UI sessions; generated at first start if unset", secret=True
    )
    web_password_hash_file: str = setting(
        "/var/lib/meterit/web-password.argon2",
        help="argon2 hash of the local web UI's admin password ('meterit-appliance web-password' sets it)",
    )
    web_initial_password_file: str = setting(
        "/var/lib/meterit/ui-password",
        help="first-boot plaintext password, hashed into web_password_hash_file when that is missing",
    )
    web_cookie_secure: bool = setting(
        False, help="send the session cookie over HTTPS only (turn on when the UI is behind TLS)"
    )
    web_session_hours: int = setting(
        12, help="hours a local web UI login lasts", minimum=1, maximum=720
    )
    web_refresh_s: int = setting(
        5, help="seconds between the local web UI pages' refreshes", minimum=1, maximum=300
    )
    banner_unreachable_minutes: int = setting(
        15,
        help="minutes central must be unreachable before the local UI shows a banner",
        minimum=1,
        maximum=10080,
    )
    banner_backlog_readings: int = setting(
        10000,
        help="unsent readings above which the local UI shows a backlog banner",
        minimum=1,
    )
    web_workers: int = setting(
        1,
        help="gunicorn worker processes of the local web UI (each has 4 threads; every one "
        "more costs about 50 MB of the appliance's memory)",
        minimum=1,
        maximum=16,
    )
    metrics_allow_from: str = metrics_settings.allow_from_setting()
    metrics_token: str | None = metrics_settings.token_setting()
    mcp_bind: str = setting("127.0.0.1:8765", help="address:port of the MCP server (HTTP mode)")
    mcp_token: str | None = setting(
        None, help="bearer token MCP clients must present over HTTP", secret=True
    )
    image_release_file: str = setting(
        "/etc/meterit-image-release",
        help="the appliance image's release file (its version is shown in the local UI and sent "
        "in the heartbeat); absent on a system installed from the packages",
    )
    log_level: str = setting(
        "info", help="least severe log level written", choices=("debug", "info", "warning", "error")
    )


def load_settings(
    environ: Mapping[str, str] | None = None, config_dir: Path = Path("/etc/meterit")
) -> ApplianceSettings:
    settings = config.load(ApplianceSettings, "appliance", environ, config_dir)
    metrics_settings.check_setting(settings.metrics_allow_from)
    return settings
