"""The central database's own alarm: e-mail sent straight over SMTP when it stops answering.

Everything else about alerting lives in the central database — rules, alert state, the outbox —
so with the database down nothing can be evaluated or queued. This watchdog runs as a thread in
each central worker, with its state in the worker's memory (the database is what is missing):
it probes the database every ``PROBE_INTERVAL_S``; once the database has been unreachable for
``alert_db_down_s`` it sends ONE e-mail to ``alert_fallback_recipients`` through
``central.mail.smtp`` (the outbox's own transport), and ONE "resolved" e-mail once the database
answers again. A send that fails for a reason a retry can fix (SMTP server unreachable) is
retried on the next probe, to the recipients that did not get it yet. With no fallback
recipients nothing is sent, and the journal says so once per outage.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.conninfo import conninfo_to_dict

from central.mail.smtp import Outgoing, SendError, SmtpConfig, SmtpTransport
from central.settings import CentralSettings, fallback_recipients
from common import db

logger = logging.getLogger(__name__)

PROBE_INTERVAL_S = 10.0
PROBE_TIMEOUT_S = 5  # seconds a connection attempt may take (a dropped network hangs)


def describe_database(url: str) -> str:
    """``dbname on host:port``, never the password (it goes into logs and e-mails)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "the central database"
    host = info.get("host") or "localhost"
    port = info.get("port") or 5432
    return f"{info.get('dbname') or 'the central database'} on {host}:{port}"


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


class DbWatchdog:
    """One worker's watch on the central database; ``check()`` is one probe and its
    consequences (the thread calls it every ``PROBE_INTERVAL_S``, tests call it directly)."""

    def __init__(
        self,
        settings: CentralSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database_url = settings.database_url
        self.database = describe_database(settings.database_url)
        self.threshold = timedelta(seconds=settings.alert_db_down_s)
        self.recipients = fallback_recipients(settings.alert_fallback_recipients)
        self.smtp = SmtpConfig.from_settings(settings)
        self.clock = clock
        self.host = socket.gethostname()
        self.down_since: datetime | None = None  # start of the current run of failed probes
        self.last_error = ""
        self.alarm_for: datetime | None = None  # the outage whose alarm went out: resolved owed
        self._said_nobody = False
        self._sent_to: dict[str, set[str]] = {}  # message key -> recipients that have it

    def probe(self) -> str | None:
        """None when the database answers, else why not (one line)."""
        try:
            with db.connect(
                self.database_url,
                connect_timeout=PROBE_TIMEOUT_S,
                application_name="meterit-central-db-watchdog",
            ) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as err:
            lines = str(err).strip().splitlines()
            return lines[0] if lines else type(err).__name__
        return None

    def check(self) -> None:
        error = self.probe()
        now = self.clock()
        if error is None:
            self._answering(now)
        else:
            self._unreachable(now, error)

    def run(self, stop: threading.Event) -> None:
        """Probe until ``stop`` is set (the worker's background thread)."""
        logger.info(
            "database watchdog: %s; e-mail to %s after %d s unreachable",
            self.database,
            ", ".join(self.recipients) or "nobody (METERIT_ALERT_FALLBACK_RECIPIENTS unset)",
            self.threshold.total_seconds(),
        )
        while True:
            try:
                self.check()
            except Exception:  # a watchdog that dies silently watches nothing
                logger.exception("database watchdog: probe failed unexpectedly; probing on")
            if stop.wait(PROBE_INTERVAL_S):
                return

    def _unreachable(self, now: datetime, error: str) -> None:
        if self.down_since is None:
            self.down_since = now
            logger.error(
                "central database %s unreachable: %s; nothing can be alerted meanwhile",
                self.database,
                error,
            )
        self.last_error = error
        if self.alarm_for is not None or now - self.down_since < self.threshold:
            return
        if not self.recipients:
            if not self._said_nobody:
                logger.error(
                    "central database %s unreachable for %s and no e-mail sent: "
                    "METERIT_ALERT_FALLBACK_RECIPIENTS is empty",
                    self.database,
                    _duration(now - self.down_since),
                )
                self._said_nobody = True
            return
        since = self.down_since
        subject = f"[MeterIT] CRITICAL central: database unreachable since {since:%H:%M} UTC"
        text = (
            f"The central database {self.database} has not answered since "
            f"{since:%Y-%m-%d %H:%M:%S} UTC ({_duration(now - since)}), as seen by the "
            f"central worker on {self.host}.\n\nLast error: {error}\n\n"
            "While it is down no alert can be evaluated or e-mailed and appliances keep their "
            "readings. A second e-mail follows when it answers again.\n"
            "Check: systemctl status postgresql; journalctl -u meterit-central-worker\n"
        )
        if self._send(f"db-down-{since:%Y%m%dT%H%M%S}", subject, text, now):
            self.alarm_for = since
            logger.warning("central database unreachable: alert e-mailed to %s", self.recipients)

    def _answering(self, now: datetime) -> None:
        if self.down_since is not None:
            logger.info(
                "central database %s answers again after %s",
                self.database,
                _duration(now - self.down_since),
            )
            self.down_since = None
            self._said_nobody = False
        since = self.alarm_for
        if since is None:
            return
        subject = "[MeterIT] RESOLVED central: database answers again"
        text = (
            f"The central database {self.database} answers again (checked "
            f"{now:%Y-%m-%d %H:%M:%S} UTC by the central worker on {self.host}); it was "
            f"unreachable from {since:%Y-%m-%d %H:%M:%S} UTC ({_duration(now - since)}).\n\n"
            "Alert evaluation and e-mail resume on their own; appliances upload what they "
            "buffered.\n"
        )
        if self._send(f"db-up-{since:%Y%m%dT%H%M%S}", subject, text, now):
            self.alarm_for = None
            logger.info("central database answers again: resolved e-mailed to %s", self.recipients)

    def _send(self, key: str, subject: str, text: str, now: datetime) -> bool:
        """Send to every recipient that does not have it yet; False when the SMTP server could
        not be reached (the next probe tries again), True once each has it or refused it."""
        done = self._sent_to.setdefault(key, set())
        with SmtpTransport(self.smtp) as transport:
            for recipient in self.recipients:
                if recipient in done:
                    continue
                item = Outgoing(0, recipient, subject, text, None, [], now, message_key=key)
                try:
                    transport.send(item)
                except SendError as err:
                    if not err.permanent:
                        logger.error(
                            "database watchdog: e-mail not sent, retried in %.0f s: %s",
                            PROBE_INTERVAL_S,
                            err.reason,
                        )
                        return False
                    logger.error("database watchdog: e-mail refused: %s", err.reason)
                done.add(recipient)
        del self._sent_to[key]
        return True


def start(settings: CentralSettings, stop: threading.Event) -> threading.Thread:
    """The watchdog's thread in a worker; it ends when ``stop`` is set."""
    watchdog = DbWatchdog(settings)
    thread = threading.Thread(target=watchdog.run, args=(stop,), name="db-watchdog", daemon=True)
    thread.start()
    return thread
