"""``meterit-appliance doctor``: everything that can keep a reading from reaching central, one
line each (``common.doctor`` holds the result type, the renderers and the shared checks).

The local UI's Health page runs the same ``checks`` (``web/pages.py``).
"""

from __future__ import annotations

import socket
import ssl
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import requests

from appliance import service, udp_owner
from appliance.bacnet.address import parse_local_address
from appliance.cli import MIGRATIONS
from appliance.settings import ApplianceSettings, load_settings
from appliance.sync import failures
from appliance.sync.central import CentralClient
from common import doctor, wire
from common.doctor import Check, CheckFn

UNITS = (
    "meterit-collector.service",
    "meterit-worker.service",
    "meterit-web.service",
    "meterit-mcp.service",
)
SKEW_WARN_S = failures.SKEW_WARN_S  # the worker's journal line warns at the same skew
SKEW_FAIL_S = 300
CERT_WARN_DAYS = 14
BUFFER_WARN_DAYS = 7  # a week offline should never lose a reading
BUFFER_FAIL_DAYS = 1
BYTES_PER_READING = 150  # row + indexes, measured on the edge schema; used until there is data


def checks(settings: ApplianceSettings) -> list[tuple[str, CheckFn]]:
    probe = _CentralProbe(settings)
    return [
        ("database", lambda: doctor.database(settings.database_url, MIGRATIONS, "appliance")),
        ("redis", lambda: doctor.redis_check(settings.redis_url, "job queue")),
        ("buffer disk", lambda: buffer_disk(settings)),
        ("central", probe.reachable),
        ("tls certificate", lambda: tls_certificate(settings)),
        ("api key", probe.api_key),
        ("clock", probe.clock),
        ("bacnet port", lambda: bacnet_port(settings)),
        ("meters", lambda: meters(settings)),
        ("backlog", lambda: backlog(settings)),
        ("units", lambda: doctor.units(UNITS)),
    ]


def main(argv: list[str]) -> int:
    return doctor.main("appliance", load_settings, checks, argv)


def _days(n: float) -> str:
    return f"{n:.1f} days" if n < 10 else f"{n:.0f} days"


def buffer_disk(settings: ApplianceSettings) -> Check:
    """Free space where PostgreSQL keeps the edge database, in days of readings at the rate
    the active points and the poll interval give."""
    with doctor_connect(settings) as conn:
        points = conn.execute(
            "SELECT count(*) FROM meter_points p JOIN meters m ON m.id = p.meter_id"
            " WHERE p.active AND m.active"
        ).fetchone()
        size = conn.execute(
            "SELECT pg_total_relation_size('readings'), greatest(reltuples, 0)"
            " FROM pg_class WHERE relname = 'readings'"
        ).fetchone()
        try:
            row = conn.execute("SHOW data_directory").fetchone()
            data_dir = str(row[0]) if row else "/var/lib/postgresql"
        except psycopg.Error:  # only superusers and pg_read_all_settings may ask
            data_dir = "/var/lib/postgresql"
    free, _ = doctor.disk_free(data_dir)
    per_day = (points[0] if points else 0) * 86400 / settings.poll_interval_s
    rel_bytes, tuples = size if size else (0, 0)
    per_reading = rel_bytes / tuples if tuples and tuples > 1000 else BYTES_PER_READING
    where = f"{doctor.human_bytes(free)} free at {data_dir}"
    if per_day == 0:
        return Check("buffer disk", "ok", f"{where}; no active points, nothing to buffer")
    days = free / (per_day * per_reading)
    detail = f"{where}: {_days(days)} of readings at {per_day:,.0f} a day"
    fix = "free disk space or grow the volume holding PostgreSQL's data"
    if days < BUFFER_FAIL_DAYS:
        return Check("buffer disk", "fail", detail, fix)
    if days < BUFFER_WARN_DAYS:
        return Check("buffer disk", "warn", detail, fix)
    return Check("buffer disk", "ok", detail)


def doctor_connect(settings: ApplianceSettings) -> psycopg.Connection[Any]:
    return psycopg.connect(
        settings.database_url,
        connect_timeout=doctor.TIMEOUT_S,
        autocommit=True,
        application_name="meterit-doctor",
    )


class _CentralProbe:
    """One ``POST /sync/auth`` answers three checks: reachable, key accepted, clock skew."""

    def __init__(self, settings: ApplianceSettings) -> None:
        self.settings = settings
        self._answer: requests.Response | Exception | None = None
        self._at = 0.0

    def _ask(self) -> requests.Response | Exception:
        if self._answer is None:
            try:
                with CentralClient(self.settings, retries=0) as client:
                    self._answer = client.session.post(
                        client.base + wire.SYNC_AUTH,
                        timeout=(doctor.TIMEOUT_S, doctor.TIMEOUT_S * 2),
                        verify=client.verify,
                    )
                    self._at = time.time()
            except requests.RequestException as err:
                self._answer = err
        return self._answer

    def _enrolled(self, name: str) -> Check | None:
        if self.settings.central_url and self.settings.api_key:
            return None
        return Check(
            name,
            "warn",
            "not enrolled: METERIT_CENTRAL_URL or METERIT_API_KEY is not set",
            "put both in /etc/meterit/appliance.env, then systemctl restart meterit.target",
        )

    def reachable(self) -> Check:
        if (skip := self._enrolled("central")) is not None:
            return skip
        answer = self._ask()
        url = self.settings.central_url
        if isinstance(answer, requests.exceptions.SSLError):
            return Check(
                "central",
                "fail",
                f"{url}: TLS handshake failed ({_short(answer)})",
                "see the tls certificate line",
            )
        if isinstance(answer, Exception):
            return Check(
                "central",
                "fail",
                f"{url} unreachable ({_short(answer)})",
                failures.UNREACHABLE.fix,
            )
        if answer.status_code >= 500:
            return Check(
                "central",
                "fail",
                f"{url} answers {answer.status_code}",
                failures.CENTRAL_FAILING.fix,
            )
        return Check("central", "ok", f"{url} answers")

    def api_key(self) -> Check:
        if (skip := self._enrolled("api key")) is not None:
            return skip
        answer = self._ask()
        if isinstance(answer, Exception) or answer.status_code >= 500:
            return Check("api key", "skip", "central did not answer; key not checked")
        if answer.status_code in (401, 403):
            return Check(
                "api key",
                "fail",
                f"refused by central ({answer.status_code})",
                failures.KEY_REFUSED.fix,
            )
        if answer.status_code == 429:
            return Check(
                "api key",
                "warn",
                "central rate-limits this site (429)",
                "wait a minute; a second appliance may share this key",
            )
        if answer.status_code != 200:
            return Check("api key", "fail", f"central answered {answer.status_code}")
        body = answer.json()
        return Check(
            "api key",
            "ok",
            f"accepted: site {body.get('site_name')!r} (id {body.get('site_id')}), "
            f"key {body.get('key_prefix')}",
        )

    def clock(self) -> Check:
        if (skip := self._enrolled("clock")) is not None:
            return skip
        answer = self._ask()
        date = None if isinstance(answer, Exception) else answer.headers.get("Date")
        if not date:
            return Check("clock", "skip", "no answer from central to compare with")
        central = parsedate_to_datetime(date)
        skew = self._at - central.timestamp()
        detail = f"{skew:+.0f} s against central ({date})"
        fix = failures.CLOCK_SKEW.fix
        if abs(skew) >= SKEW_FAIL_S:
            return Check("clock", "fail", detail, fix)
        if abs(skew) >= SKEW_WARN_S:
            return Check("clock", "warn", detail, fix)
        return Check("clock", "ok", detail)


def _short(err: Exception) -> str:
    text = str(err)
    if "Caused by " in text:
        text = text.split("Caused by ", 1)[1].rstrip(")")
    return text[:200]


def tls_certificate(settings: ApplianceSettings) -> Check:
    url = settings.central_url
    if not url:
        return Check("tls certificate", "skip", "not enrolled")
    parts = urlsplit(url)
    if parts.scheme != "https":
        return Check(
            "tls certificate",
            "warn",
            f"{url} is plain http: the API key and readings travel unencrypted",
            "use central's https:// address in METERIT_CENTRAL_URL",
        )
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context(cafile=settings.ca_bundle)
    fix = failures.TLS.fix
    try:
        with (
            socket.create_connection((host, port), timeout=doctor.TIMEOUT_S) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as err:
        return Check("tls certificate", "fail", f"not valid: {err.verify_message}", fix)
    except (OSError, ssl.SSLError) as err:
        return Check("tls certificate", "skip", f"could not connect to {host}:{port} ({err})")
    not_after = str((cert or {}).get("notAfter", ""))
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    days = (expires - datetime.now(UTC)).total_seconds() / 86400
    detail = f"valid, expires {expires:%Y-%m-%d} (in {days:.0f} days)"
    if days < CERT_WARN_DAYS:
        return Check("tls certificate", "warn", detail, fix)
    return Check("tls certificate", "ok", detail)


def bacnet_port(settings: ApplianceSettings, proc: Path = udp_owner.PROC) -> Check:
    """Is the collector's UDP port bound, and by this host's collector? Another BACnet tool
    holding it (a second collector, a discovery run, a building-management client) keeps the
    collector from starting; nothing holding it means the collector is not running."""
    ip, _, port = parse_local_address(settings.bacnet_address)
    where = f"UDP {ip}:{port}"
    found = udp_owner.holders(port, proc)
    if found is None:
        return Check("bacnet port", "skip", f"{where}: this host has no /proc/net/udp to ask")
    if not found:
        return Check(
            "bacnet port",
            "fail",
            f"{where} is not bound: the collector is not running or could not bind it",
            "systemctl status meterit-collector; journalctl -u meterit-collector -b says why",
        )
    others = [h for h in found if h.pid is not None and not _is_collector(h.argv)]
    if others:
        return Check(
            "bacnet port",
            "fail",
            f"{where} is held by {', '.join(h.describe() for h in others)}, not the collector",
            "stop that program, or give the collector another METERIT_BACNET_ADDRESS",
        )
    mine = [h for h in found if h.pid is not None]
    if not mine:
        return Check("bacnet port", "ok", f"{where} bound (its owner is visible to root only)")
    return Check("bacnet port", "ok", f"{where} bound by the collector (pid {mine[0].pid})")


def _is_collector(argv: tuple[str, ...]) -> bool:
    """``meterit-appliance collector`` however it was started (script, ``python -m``)."""
    return "collector" in argv and any("appliance" in arg for arg in argv)


def meters(settings: ApplianceSettings) -> list[Check]:
    """One line per active meter, from the collector's meter status."""
    found = service.get_meter_status(settings)
    if not found:
        return [
            Check(
                "meters",
                "warn",
                "no active meters",
                "configure them on central (then meterit-appliance meter-sync), or "
                "meterit-appliance meters load FILE",
            )
        ]
    results = []
    for m in found:
        name = f"meter {m['external_id']}"
        where = f"{m['address'] or 'broadcast'} device {m['device_instance'] or '?'}"
        if m["state"] == "reachable":
            results.append(Check(name, "ok", f"answering ({m['points']} points, {where})"))
        elif m["state"] == "unknown":
            results.append(
                Check(
                    name,
                    "warn",
                    f"not polled yet ({where})",
                    "start the collector: systemctl start meterit-collector",
                )
            )
        elif m["state"] == "no-values":
            results.append(
                Check(
                    name,
                    "warn",
                    f"answers without values ({where}): {m['last_error'] or ''}",
                    "check the meter's data points (object types and instances)",
                )
            )
        else:
            results.append(
                Check(
                    name,
                    "fail",
                    f"not answering ({where}) for {m['consecutive_failures']} polls: "
                    f"{m['last_error'] or 'no answer'}",
                    "check the meter's power, cabling and address; meterit-appliance discover "
                    "lists the devices that answer",
                )
            )
    return results


def backlog(settings: ApplianceSettings) -> Check:
    st = service.get_sync_status(settings, recent_errors=0)
    age = st["oldest_unsynced_age_s"]
    count = st["backlog"]
    if age is None:
        return Check("backlog", "ok", "nothing waiting to be sent")
    detail = f"{count:,} readings waiting, oldest {_age(age)} old"
    warn_after = max(900, 3 * settings.upload_interval_s)
    fix = (
        "upload is paused: resume it on the local UI's Sync page"
        if st["upload_paused"]
        else "see the central and api key lines; meterit-appliance sync-now sends it now"
    )
    if age >= 86400:
        return Check("backlog", "fail", detail, fix)
    if age >= warn_after or st["upload_paused"]:
        return Check("backlog", "warn", detail, fix)
    return Check("backlog", "ok", detail)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
