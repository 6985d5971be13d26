"""The e-mail outbox: put a message in it and the worker sends it.

Call :func:`enqueue` inside the transaction that decides to send (an alert's state change, a
finished report), so the e-mail is queued exactly when that decision commits and never lost
afterwards. Each recipient gets its own delivery row, retried on its own, counted against its
own hourly cap (see ``central.mail.drain``) and shown with its last error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

MAX_RECIPIENTS = 100
MAX_SUBJECT = 300
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_ATTACHMENTS_BYTES = 20 * 1024 * 1024  # what most SMTP servers take in one message
MAX_FILENAME = 200
STATUSES = ("queued", "sent", "failed", "digested")

# deliberately plain: an address with a local part, an @ and a dotless-or-dotted domain; no
# display names, spaces or line breaks, which could inject headers
_ADDRESS = re.compile(r"^[^@\s<>,;:\"()\[\]\\]{1,64}@[A-Za-z0-9.-]{1,253}$")
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")


class MailError(ValueError):
    """A message that cannot be queued as given; the text says which part and why."""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    mime: str
    content: bytes


def normalize_address(address: str) -> str:
    """The address as the outbox keeps it (lower case, trimmed); MailError if it is not one."""
    value = address.strip().lower()
    if not _ADDRESS.match(value):
        raise MailError(
            f"recipient {address!r}: expected an e-mail address such as ops@example.com"
        )
    return value


def _attachments(items: list[tuple[str, str, bytes]] | list[Attachment]) -> list[Attachment]:
    out: list[Attachment] = []
    total = 0
    for item in items:
        att = item if isinstance(item, Attachment) else Attachment(*item)
        name = att.filename.strip()
        if not name or len(name) > MAX_FILENAME or any(c in name for c in "\r\n/\\\0"):
            raise MailError(f"attachment {att.filename!r}: expected a plain file name")
        if not _MIME.match(att.mime.lower()):
            raise MailError(f"attachment {name}: {att.mime!r} is not a MIME type like text/csv")
        total += len(att.content)
        out.append(Attachment(name, att.mime.lower(), bytes(att.content)))
    if total > MAX_ATTACHMENTS_BYTES:
        raise MailError(
            f"attachments: {total} bytes; at most {MAX_ATTACHMENTS_BYTES} fit in one e-mail"
        )
    return out


def enqueue(
    conn: psycopg.Connection[Any],
    recipients: list[str],
    subject: str,
    text: str,
    *,
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] | list[Attachment] | None = None,
    tenant_id: int | None = None,
    capped: bool = True,
    now: datetime | None = None,
) -> int:
    """Queue one message to ``recipients`` in the caller's transaction; returns its id.

    ``attachments`` are ``(filename, mime type, bytes)``. ``capped=False`` exempts it from the
    per-recipient hourly cap (a digest, or mail the recipient asked for explicitly).
    Duplicate recipients are sent once. MailError names what is wrong.
    """
    addresses = list(dict.fromkeys(normalize_address(r) for r in recipients))
    if not addresses:
        raise MailError("recipients: expected at least one e-mail address")
    if len(addresses) > MAX_RECIPIENTS:
        raise MailError(f"recipients: {len(addresses)} addresses; at most {MAX_RECIPIENTS}")
    subject = " ".join(subject.split())  # a line break in a subject would start a new header
    if not subject or len(subject) > MAX_SUBJECT:
        raise MailError(f"subject: expected 1 to {MAX_SUBJECT} characters")
    for name, body in (("text", text), ("html", html or "")):
        if len(body.encode()) > MAX_BODY_BYTES:
            raise MailError(f"{name}: longer than {MAX_BODY_BYTES} bytes")
    files = _attachments(attachments or [])
    row = conn.execute(
        """INSERT INTO mail_messages (tenant_id, created_at, subject, text_body, html_body, capped)
           VALUES (%s, coalesce(%s, now()), %s, %s, %s, %s) RETURNING id""",
        (tenant_id, now, subject, text, html, capped),
    ).fetchone()
    assert row is not None
    message_id = int(row[0])
    if files:
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO mail_attachments (message_id, position, filename, mime, content)
                   VALUES (%s, %s, %s, %s, %s)""",
                [(message_id, i, a.filename, a.mime, a.content) for i, a in enumerate(files)],
            )
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO mail_outbox (message_id, recipient, next_attempt_at)
               VALUES (%s, %s, coalesce(%s, now()))""",
            [(message_id, address, now) for address in addresses],
        )
    return message_id


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    message_id: int
    recipient: str
    subject: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    digest_id: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message_id": self.message_id,
            "recipient": self.recipient,
            "subject": self.subject,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "last_error": self.last_error,
            "digest_id": self.digest_id,
        }


def deliveries(
    conn: psycopg.Connection[Any],
    tenant_id: int | None,
    *,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[Delivery]:
    """The newest deliveries of a tenant (all tenants' and system mail when None), newest
    first; page on with ``before_id``."""
    rows = conn.execute(
        """SELECT o.id, o.message_id, o.recipient, m.subject, o.status, o.attempts,
                  m.created_at, o.next_attempt_at, o.sent_at, o.last_error, o.digest_id
           FROM mail_outbox o JOIN mail_messages m ON m.id = o.message_id
           WHERE (%(tenant)s::int IS NULL OR m.tenant_id = %(tenant)s)
             AND (%(status)s::text IS NULL OR o.status = %(status)s)
             AND (%(before)s::bigint IS NULL OR o.id < %(before)s)
           ORDER BY o.id DESC LIMIT %(limit)s""",
        {"tenant": tenant_id, "status": status, "before": before_id, "limit": limit},
    ).fetchall()
    return [Delivery(*r) for r in rows]


def requeue(conn: psycopg.Connection[Any], delivery_id: int, tenant_id: int | None) -> bool:
    """Send a failed delivery again (after fixing the address or the server); False when there
    is no failed delivery of that id visible to the tenant."""
    row = conn.execute(
        """UPDATE mail_outbox o SET status = 'queued', next_attempt_at = now(), attempts = 0
           FROM mail_messages m
           WHERE o.id = %s AND o.status = 'failed' AND m.id = o.message_id
             AND (%s::int IS NULL OR m.tenant_id = %s)
           RETURNING o.id""",
        (delivery_id, tenant_id, tenant_id),
    ).fetchone()
    return row is not None


@dataclass(frozen=True, slots=True)
class Health:
    """What the UI's banner and the central-health alert rule say about e-mail."""

    queued: int
    failed: int
    oldest_queued_at: datetime | None
    last_error: str | None


def health(conn: psycopg.Connection[Any], tenant_id: int | None = None) -> Health:
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE o.status = 'queued'),
                  count(*) FILTER (WHERE o.status = 'failed'),
                  min(m.created_at) FILTER (WHERE o.status = 'queued'),
                  (array_agg(o.last_error ORDER BY o.id DESC)
                     FILTER (WHERE o.status IN ('queued', 'failed') AND o.last_error IS NOT NULL))[1]
           FROM mail_outbox o JOIN mail_messages m ON m.id = o.message_id
           WHERE o.status IN ('queued', 'failed')
             AND (%s::int IS NULL OR m.tenant_id = %s)""",
        (tenant_id, tenant_id),
    ).fetchone()
    assert row is not None
    return Health(int(row[0]), int(row[1]), row[2], row[3])
