"""The central server's settings: one frozen object built at start (see ``common.config``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import limits

from central.mail.outbox import MailError, normalize_address
from common import config, metrics_settings
from common.config import PG_SCHEMES, REDIS_SCHEMES, setting


@dataclass(frozen=True)
class CentralSettings:
    database_url: str = setting(
        "postgresql:///meterit_central", help="central PostgreSQL database", url_schemes=PG_SCHEMES
    )
    read_database_url: str | None = setting(
        None,
        help="a read-only replica of the central database for the pages and tools that only "
        "read (the fleet dashboard, explorer, readings API, reports' figures, MCP reads); "
        "unset, they read the primary",
        url_schemes=PG_SCHEMES,
        secret=True,
    )
    redis_url: str = setting(
        "redis://127.0.0.1:6379/1",
        help="Redis for rate limits and background jobs",
        url_schemes=REDIS_SCHEMES,
    )
    bind: str = setting("127.0.0.1:8000", help="address:port gunicorn listens on")
    secret_key: str | None = setting(
        None, help="key signing operator sessions; generated at start if unset", secret=True
    )
    key_overlap_hours: float = setting(
        24,
        help="hours a rotated API key keeps working beside its successor",
        minimum=0,
        maximum=720,
    )
    rate_limit: str = setting(
        "1000/minute",
        help="requests each site may make to the sync API, all endpoints together (e.g. "
        "1000/minute; several limits separated by ';'); readings are counted by "
        "sync_readings_per_minute",
    )
    sync_readings_per_minute: int = setting(
        1_000_000,
        help="readings each site may send per minute; sized for catching up (a week of 100 "
        "meters x 10 points at one reading a minute in about a minute); past it, 429 with "
        "Retry-After",
        minimum=1,
    )
    max_batch_bytes: int = setting(
        32 * 1024 * 1024,
        help="largest decompressed readings batch accepted, in bytes",
        minimum=1024,
    )
    accept_past_days: int = setting(
        366,
        help="days back from now a reading's timestamp may be; older ones are rejected one by "
        "one with the reason (each month needs a partition: this bounds how many a batch makes)",
        minimum=1,
        maximum=3660,
    )
    accept_future_hours: float = setting(
        24,
        help="hours ahead of now a reading's timestamp may be (an appliance clock running fast)",
        minimum=0,
        maximum=720,
    )
    max_batch_readings: int = setting(
        50000, help="most readings in one batch", minimum=1, maximum=1_000_000
    )
    heartbeat_late_s: int = setting(
        600, help="seconds without a heartbeat before a site shows as late", minimum=30
    )
    heartbeat_offline_s: int = setting(
        1800, help="seconds without a heartbeat before a site shows as offline", minimum=60
    )
    gunicorn_workers: int = setting(
        0, help="gunicorn worker processes; 0 means one per CPU", minimum=0, maximum=64
    )
    gunicorn_threads: int = setting(
        4, help="threads per gunicorn worker (each holds one database connection)", minimum=1
    )
    operator_token_hours: float = setting(
        12, help="hours an operator API bearer token stays valid", minimum=0.01, maximum=720
    )
    batch_answer_days: int = setting(
        30,
        help="days a readings batch's stored answer is kept for replays; an older replay is "
        "still stored once, its readings are then answered as duplicates",
        minimum=1,
    )
    heartbeat_days: int = setting(
        90, help="days of heartbeat history kept (the latest is always on the site)", minimum=1
    )
    public_url: str = setting(
        "http://127.0.0.1:8000",
        help="the address operators open central at; e-mails link to pages under it",
        url_schemes=("http", "https"),
    )
    smtp_host: str = setting(
        "", help="SMTP server that sends alert and report e-mails; unset, e-mails wait queued"
    )
    smtp_port: int = setting(
        0,
        help="SMTP port; 0 means the usual one for smtp_security (587, 465 or 25)",
        minimum=0,
        maximum=65535,
    )
    smtp_security: str = setting(
        "starttls",
        help="how the SMTP connection is protected: starttls (upgrade after connecting), tls "
        "(TLS from the start) or none",
        choices=("starttls", "tls", "none"),
    )
    smtp_ca_file: str = setting(
        "", help="CA certificate file that verifies the SMTP server; unset, the system's CAs"
    )
    smtp_user: str = setting("", help="SMTP login user; unset, no login")
    smtp_password: str | None = setting(None, help="SMTP login password", secret=True)
    smtp_sender: str = setting(
        "MeterIT <meterit@localhost>", help="From: address of every e-mail central sends"
    )
    smtp_timeout_s: float = setting(
        30, help="seconds an SMTP connection or command may take", minimum=1, maximum=600
    )
    mail_hourly_cap: int = setting(
        20,
        help="e-mails one recipient gets per hour at most; the rest roll into one digest",
        minimum=1,
        maximum=10000,
    )
    alert_group_wait_s: int = setting(
        30,
        help="seconds a new alert waits for others of its site before its e-mail goes out",
        minimum=0,
        maximum=3600,
    )
    alert_group_interval_s: int = setting(
        300,
        help="seconds at least between two e-mails about the same site's alerts",
        minimum=0,
        maximum=86400,
    )
    alert_repeat_interval_s: int = setting(
        14400,
        help="seconds after which alerts still firing and unacknowledged are e-mailed again",
        minimum=60,
        maximum=7 * 86400,
    )
    alert_db_down_s: int = setting(
        120,
        help="seconds the central database may be unreachable before the worker e-mails "
        "alert_fallback_recipients directly over SMTP (the outbox lives in that database)",
        minimum=10,
        maximum=86400,
    )
    alert_fallback_recipients: str = setting(
        "",
        help="comma-separated operator addresses the worker e-mails when the central database "
        "is unreachable, and again when it answers; unset, nobody is told but the journal",
    )
    metrics_allow_from: str = metrics_settings.allow_from_setting()
    metrics_token: str | None = metrics_settings.token_setting()
    trusted_proxies: int = setting(
        0,
        help="reverse proxies in front of central whose X-Forwarded-For / -Proto / -Host are "
        "believed (0: none; 1: one TLS-terminating proxy). Client addresses (rate limits, "
        "/metrics) and https come from them",
        minimum=0,
        maximum=5,
    )
    ui_session_hours: float = setting(
        24,
        help="hours an operator UI sign-in lasts at most (signing out ends it at once)",
        minimum=0.1,
        maximum=720,
    )
    session_cookie_secure: bool = setting(
        False,
        help="send the operator UI's session cookie only over HTTPS (set it when central is "
        "served over TLS, directly or behind a proxy)",
    )
    alert_history_days: int = setting(
        180, help="days resolved alerts are kept (open ones always are)", minimum=1
    )
    mail_days: int = setting(
        30,
        help="days sent e-mails are kept in the outbox (queued or failed ones always are)",
        minimum=1,
    )
    log_level: str = setting(
        "info", help="least severe log level written", choices=("debug", "info", "warning", "error")
    )
    mcp_bind: str = setting(
        "127.0.0.1:8766",
        help="address:port the MCP server (meterit-central-mcp) listens on; clients send an "
        "operator's MCP token as 'Authorization: Bearer …'",
    )
    mcp_token: str | None = setting(
        None,
        help="the operator MCP token 'meterit-central mcp --stdio' acts with (over HTTP each "
        "client sends its own)",
        secret=True,
    )
    mcp_read_only: bool = setting(
        False, help="serve only the MCP tools that read (the --read-only profile) to every token"
    )
    mcp_auth_failures: str = setting(
        "10/minute",
        help="wrong MCP tokens one client address may present before it is refused for the rest "
        "of the window (limits syntax)",
    )
    mcp_mail_rate: str = setting(
        "10/hour", help="e-mails a tenant may send with the send_alert_email MCP tool"
    )


MAX_FALLBACK_RECIPIENTS = 20


def fallback_recipients(text: str) -> list[str]:
    """The addresses of ``alert_fallback_recipients``; ValueError names the one that is not."""
    addresses = [a for a in (e.strip() for e in text.split(",")) if a]
    if len(addresses) > MAX_FALLBACK_RECIPIENTS:
        raise ValueError(f"expected at most {MAX_FALLBACK_RECIPIENTS} addresses")
    try:
        return list(dict.fromkeys(normalize_address(a) for a in addresses))
    except MailError as err:
        raise ValueError(str(err)) from None


def load_settings(
    environ: Mapping[str, str] | None = None, config_dir: Path = Path("/etc/meterit")
) -> CentralSettings:
    settings = config.load(CentralSettings, "central", environ, config_dir)
    metrics_settings.check_setting(settings.metrics_allow_from)
    try:
        fallback_recipients(settings.alert_fallback_recipients)
    except ValueError as err:
        raise config.ConfigError(
            f"METERIT_ALERT_FALLBACK_RECIPIENTS={settings.alert_fallback_recipients!r}: {err}"
        ) from None
    # the sync API's request limit may be several (1000/minute;20000/hour), the others one
    for name, parse in (
        ("rate_limit", limits.parse_many),
        ("mcp_auth_failures", limits.parse),
        ("mcp_mail_rate", limits.parse),
    ):
        value = getattr(settings, name)
        try:
            parse(value)
        except ValueError:
            raise config.ConfigError(
                f"{config.env_name(name)}={value!r}: expected a rate such as 10/minute or 5/hour"
            ) from None
    return settings
