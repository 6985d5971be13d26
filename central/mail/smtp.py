"""Sending over SMTP: the connection settings, the MIME message, and what a failure means.

A failure is either *temporary* (the server is down, busy, or refuses our login: retry later,
the message waits in the outbox) or *permanent* (the server refused this recipient or this
message with a 5xx answer: retrying would never help, so the delivery is marked failed and
shown until an operator queues it again).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from types import TracebackType

from central.settings import CentralSettings

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # starttls | tls | none
    user: str
    password: str | None
    sender: str
    timeout_s: float
    ca_file: str

    @classmethod
    def from_settings(cls, settings: CentralSettings) -> SmtpConfig:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port or DEFAULT_PORTS[settings.smtp_security],
            security=settings.smtp_security,
            user=settings.smtp_user,
            password=settings.smtp_password,
            sender=settings.smtp_sender,
            timeout_s=settings.smtp_timeout_s,
            ca_file=settings.smtp_ca_file,
        )

    def describe(self) -> str:
        return f"{self.host}:{self.port} ({self.security})"


class SendError(Exception):
    """Sending one delivery failed; ``permanent`` says whether a retry could ever succeed."""

    def __init__(self, reason: str, *, permanent: bool, connection_lost: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.connection_lost = connection_lost


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One delivery as the drain job hands it to the transport."""

    delivery_id: int
    recipient: str
    subject: str
    text: str
    html: str | None
    attachments: list[tuple[str, str, bytes]]
    created_at: datetime
    # names the e-mail in its Message-ID when it is not an outbox delivery (delivery_id 0)
    message_key: str | None = None


def build_message(sender: str, item: Outgoing) -> EmailMessage:
    """Plain text with an HTML alternative, then the attachments. The Message-ID names the
    delivery, so a copy sent twice (a worker killed right after the server accepted it, before
    it was marked sent) is recognisable as the same e-mail."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = item.recipient
    msg["Subject"] = item.subject
    msg["Date"] = format_datetime(item.created_at)
    msg["Message-ID"] = make_msgid(
        idstring=item.message_key or f"outbox-{item.delivery_id}", domain="meterit"
    )
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to alerts
    msg.set_content(item.text)
    if item.html:
        msg.add_alternative(item.html, subtype="html")
    for filename, mime, content in item.attachments:
        maintype, _, subtype = mime.partition("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def _code_error(code: int, text: bytes | str, what: str) -> SendError:
    reason = text.decode(errors="replace") if isinstance(text, bytes) else text
    return SendError(f"{what}: {code} {reason}".strip(), permanent=500 <= code < 600)


class SmtpTransport:
    """One SMTP session, opened on first send and reused for the rest of a drain run."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.ca_file or None)

    def _open(self) -> smtplib.SMTP:
        cfg = self.config
        if not cfg.host:
            raise SendError(
                "no SMTP server is configured (set METERIT_SMTP_HOST); e-mails wait in the outbox",
                permanent=False,
                connection_lost=True,
            )
        try:
            smtp: smtplib.SMTP
            if cfg.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout_s, context=self._context()
                )
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
                if cfg.security == "starttls":
                    smtp.starttls(context=self._context())
            if cfg.user:
                smtp.login(cfg.user, cfg.password or "")
        except smtplib.SMTPAuthenticationError as err:
            # our settings are wrong, not the message: keep it and retry once they are fixed
            raise SendError(
                f"SMTP server {cfg.describe()} refused the login of {cfg.user!r} "
                f"({err.smtp_code}); check METERIT_SMTP_USER and METERIT_SMTP_PASSWORD",
                permanent=False,
                connection_lost=True,
            ) from err
        except (OSError, smtplib.SMTPException) as err:
            raise SendError(
                f"cannot reach SMTP server {cfg.describe()}: {err}",
                permanent=False,
                connection_lost=True,
            ) from err
        return smtp

    def send(self, item: Outgoing) -> None:
        """Hand one delivery to the server; SendError says why not."""
        if self._smtp is None:
            self._smtp = self._open()
        msg = build_message(self.config.sender, item)
        try:
            refused = self._smtp.send_message(msg, to_addrs=[item.recipient])
        except smtplib.SMTPRecipientsRefused as err:
            code, text = err.recipients.get(item.recipient, (550, b"refused"))
            raise _code_error(code, text, f"recipient {item.recipient} refused") from err
        except smtplib.SMTPSenderRefused as err:
            raise _code_error(
                err.smtp_code, err.smtp_error, f"sender {err.sender} refused"
            ) from err
        except smtplib.SMTPDataError as err:
            raise _code_error(err.smtp_code, err.smtp_error, "message refused") from err
        except (OSError, smtplib.SMTPException) as err:
            self.close()
            raise SendError(
                f"SMTP server {self.config.describe()} dropped the connection: {err}",
                permanent=False,
                connection_lost=True,
            ) from err
        if refused:  # only one recipient per send, so this is that one
            code, text = next(iter(refused.values()))
            raise _code_error(code, text, f"recipient {item.recipient} refused")

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
            self._smtp = None
