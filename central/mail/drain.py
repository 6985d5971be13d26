"""The outbox drain: the worker's job that sends queued deliveries, oldest first.

Each delivery is sent and then marked in its own transaction, so a worker killed in between
sends it again rather than never (same Message-ID; see ``central.mail.smtp``). A temporary
failure keeps it queued with a growing delay (1 min, 2, 4 … at most 1 h) and its reason; a
permanent refusal marks it failed, visible, until an operator queues it again.

The hourly cap: a recipient gets at most ``cap`` capped e-mails in any hour. When more are due
than fit, all but one of the free places go out one by one and the rest go out together as one
digest in the last place; with no place free they wait until the oldest send of the hour ages
out. Nothing is dropped: a held-back message is inside its digest.

``now`` is passed in (the job passes the wall clock), so tests drive hours in milliseconds.
"""

from __future__ import annotations

import html
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg

from central.mail import outbox
from central.mail.smtp import Outgoing, SendError

logger = logging.getLogger(__name__)

CAP_WINDOW = timedelta(hours=1)
FIRST_RETRY_S = 60
MAX_RETRY_S = 3600
PLAN_LIMIT = 5000  # due deliveries looked at per run (cheap ids); sends are limited separately
SEND_LIMIT = 500  # deliveries sent per run; the rest go next run


class _OutageLog:
    """Remembers the SMTP outage this process last logged: an outage is one warning (and one
    line when it ends), not one per run every 15 s."""

    reason: str | None = None

    def failing(self, reason: str) -> bool:
        """Whether ``reason`` is news worth a warning."""
        news = reason != self.reason
        self.reason = reason
        return news

    def recovered(self) -> None:
        if self.reason is not None:
            logger.info("SMTP server answers again; queued e-mails are being sent")
            self.reason = None


_outage = _OutageLog()


class Transport(Protocol):
    def send(self, item: Outgoing) -> None: ...


def retry_delay(attempts: int) -> timedelta:
    """Delay after the ``attempts``-th failed try."""
    return timedelta(seconds=min(FIRST_RETRY_S * 2 ** max(attempts - 1, 0), MAX_RETRY_S))


@dataclass
class DrainResult:
    sent: int = 0
    failed: int = 0  # refused for good
    retrying: int = 0
    digests: int = 0
    waiting: int = 0  # over the hourly cap, waiting for a free place
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "retrying": self.retrying,
            "digests": self.digests,
            "waiting": self.waiting,
        }


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    message_id: int
    recipient: str
    capped: bool
    tenant_id: int | None


def _due(conn: psycopg.Connection[Any], now: datetime) -> list[_Due]:
    rows = conn.execute(
        """SELECT o.id, o.message_id, o.recipient, m.capped, m.tenant_id
           FROM mail_outbox o JOIN mail_messages m ON m.id = o.message_id
           WHERE o.status = 'queued' AND o.next_attempt_at <= %s
           ORDER BY o.id LIMIT %s""",
        (now, PLAN_LIMIT),
    ).fetchall()
    return [_Due(*r) for r in rows]


def _sent_in_window(
    conn: psycopg.Connection[Any], recipients: list[str], now: datetime
) -> dict[str, tuple[int, datetime]]:
    """recipient -> (sends in the hour before ``now``, the oldest of them)."""
    rows = conn.execute(
        """SELECT recipient, count(*), min(sent_at) FROM mail_outbox
           WHERE status = 'sent' AND recipient = ANY(%s) AND sent_at > %s AND sent_at <= %s
           GROUP BY recipient""",
        (recipients, now - CAP_WINDOW, now),
    ).fetchall()
    return {r[0]: (int(r[1]), r[2]) for r in rows}


def _plan(
    conn: psycopg.Connection[Any], due: list[_Due], cap: int, now: datetime
) -> tuple[list[int], dict[str, list[_Due]], dict[int, datetime]]:
    """(delivery ids to send as they are, recipient -> deliveries to roll into a digest,
    delivery id -> when to look again because the recipient's hour is full)."""
    send: list[int] = []
    by_recipient: dict[str, list[_Due]] = defaultdict(list)
    for item in due:
        if item.capped:
            by_recipient[item.recipient].append(item)
        else:
            send.append(item.id)
    window = _sent_in_window(conn, list(by_recipient), now)
    digest: dict[str, list[_Due]] = {}
    later: dict[int, datetime] = {}
    for recipient, items in by_recipient.items():
        count, oldest = window.get(recipient, (0, now))
        free = cap - count
        if len(items) <= free:
            send.extend(i.id for i in items)
        elif free >= 1:
            send.extend(i.id for i in items[: free - 1])
            digest[recipient] = items[free - 1 :]
        else:
            for i in items:
                later[i.id] = oldest + CAP_WINDOW
    return sorted(send), digest, later


def _digest_text(cap: int, parts: list[tuple[str, str, str | None, datetime]]) -> tuple[str, str]:
    intro = (
        f"You received the most e-mails MeterIT sends anyone in an hour ({cap}). "
        f"The {len(parts)} held back since are all below, oldest first."
    )
    text = [intro, ""]
    markup = [f"<p>{html.escape(intro)}</p>"]
    budget = outbox.MAX_BODY_BYTES // 2
    for n, (subject, body, body_html, created) in enumerate(parts, 1):
        head = f"{n}. {subject} ({created.isoformat(timespec='seconds')})"
        text += ["=" * 8, head, "", body, ""]
        markup.append(f"<hr><h3>{html.escape(head)}</h3>")
        markup.append(body_html or f"<pre>{html.escape(body)}</pre>")
        budget -= len(body) + len(body_html or "")
        if budget < 0 and n < len(parts):
            rest = f"… and {len(parts) - n} more, shown on MeterIT's Mail page."
            text.append(rest)
            markup.append(f"<p>{html.escape(rest)}</p>")
            break
    return "\n".join(text), "\n".join(markup)


def _make_digest(
    conn: psycopg.Connection[Any], recipient: str, items: list[_Due], cap: int, now: datetime
) -> int:
    """One uncapped message carrying ``items``, which are marked digested; returns the new
    delivery's id. One transaction: a crash leaves either the originals or the digest queued."""
    ids = [i.id for i in items]
    rows = conn.execute(
        """SELECT m.subject, m.text_body, m.html_body, m.created_at FROM mail_outbox o
           JOIN mail_messages m ON m.id = o.message_id WHERE o.id = ANY(%s) ORDER BY o.id""",
        (ids,),
    ).fetchall()
    text, markup = _digest_text(cap, [(r[0], r[1], r[2], r[3]) for r in rows])
    files = conn.execute(
        """SELECT a.filename, a.mime, a.content FROM mail_outbox o
           JOIN mail_attachments a ON a.message_id = o.message_id
           WHERE o.id = ANY(%s) ORDER BY o.id, a.position""",
        (ids,),
    ).fetchall()
    tenants = {i.tenant_id for i in items}
    message_id = outbox.enqueue(
        conn,
        [recipient],
        f"MeterIT digest: {len(items)} e-mails held back by the hourly limit",
        text,
        html=markup,
        attachments=[(f[0], f[1], bytes(f[2])) for f in files],
        tenant_id=tenants.pop() if len(tenants) == 1 else None,
        capped=False,
        now=now,
    )
    row = conn.execute("SELECT id FROM mail_outbox WHERE message_id = %s", (message_id,)).fetchone()
    assert row is not None
    conn.execute(
        "UPDATE mail_outbox SET status = 'digested', digest_id = %s WHERE id = ANY(%s)",
        (row[0], ids),
    )
    return int(row[0])


def _outgoing(conn: psycopg.Connection[Any], delivery_id: int) -> Outgoing | None:
    row = conn.execute(
        """SELECT o.recipient, m.subject, m.text_body, m.html_body, m.created_at, m.id
           FROM mail_outbox o JOIN mail_messages m ON m.id = o.message_id
           WHERE o.id = %s AND o.status = 'queued'""",
        (delivery_id,),
    ).fetchone()
    if row is None:  # requeued or handled meanwhile
        return None
    files = conn.execute(
        """SELECT filename, mime, content FROM mail_attachments
           WHERE message_id = %s ORDER BY position""",
        (row[5],),
    ).fetchall()
    return Outgoing(
        delivery_id,
        row[0],
        row[1],
        row[2],
        row[3],
        [(f[0], f[1], bytes(f[2])) for f in files],
        row[4],
    )


def run(
    conn: psycopg.Connection[Any], transport: Transport, now: datetime, cap: int
) -> DrainResult:
    """Send what is due. The caller holds ``central.locks.MAIL_DRAIN``."""
    result = DrainResult()
    due = _due(conn, now)
    send, digests, later = _plan(conn, due, cap, now)
    for delivery_id, when in later.items():
        conn.execute(
            "UPDATE mail_outbox SET next_attempt_at = %s WHERE id = %s AND status = 'queued'",
            (when, delivery_id),
        )
    result.waiting = len(later)
    for recipient, items in digests.items():
        send.append(_make_digest(conn, recipient, items, cap, now))
        result.digests += 1
    conn.commit()

    for delivery_id in send[:SEND_LIMIT]:
        item = _outgoing(conn, delivery_id)
        if item is None:
            continue
        try:
            transport.send(item)
        except SendError as err:
            _failed(conn, delivery_id, err, now, result)
            conn.commit()
            if err.connection_lost:
                break  # the server is gone: the rest keep their place for the next run
            continue
        conn.execute(
            """UPDATE mail_outbox SET status = 'sent', sent_at = %s, attempts = attempts + 1,
                      last_error = NULL WHERE id = %s""",
            (now, delivery_id),
        )
        conn.commit()
        result.sent += 1
        _outage.recovered()
        logger.info("e-mail %d sent to %s: %s", delivery_id, item.recipient, item.subject)
    return result


def _failed(
    conn: psycopg.Connection[Any],
    delivery_id: int,
    err: SendError,
    now: datetime,
    result: DrainResult,
) -> None:
    result.errors.append(err.reason)
    if err.permanent:
        conn.execute(
            """UPDATE mail_outbox SET status = 'failed', attempts = attempts + 1, last_error = %s
               WHERE id = %s""",
            (err.reason, delivery_id),
        )
        result.failed += 1
        logger.error(
            "e-mail %d refused for good: %s; fix the address or server, then queue it again "
            "from the Mail page",
            delivery_id,
            err.reason,
        )
        return
    row = conn.execute(
        """UPDATE mail_outbox SET attempts = attempts + 1, last_error = %s
           WHERE id = %s RETURNING attempts""",
        (err.reason, delivery_id),
    ).fetchone()
    attempts = int(row[0]) if row else 1
    conn.execute(
        "UPDATE mail_outbox SET next_attempt_at = %s WHERE id = %s",
        (now + retry_delay(attempts), delivery_id),
    )
    result.retrying += 1
    news = _outage.failing(err.reason) if err.connection_lost else True
    (logger.warning if news else logger.debug)(
        "e-mail %d not sent (try %d, again in %d s), it waits in the outbox: %s",
        delivery_id,
        attempts,
        retry_delay(attempts).total_seconds(),
        err.reason,
    )
