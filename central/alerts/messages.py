"""The words of alert e-mails: one e-mail per notification group (tenant + site), plain text
and HTML, each alert linking to its page."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Line:
    """One alert as an e-mail lists it."""

    id: int
    severity: str
    rule_name: str
    summary: str
    since: datetime
    resolved_at: datetime | None


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def compose(
    *,
    tenant: str,
    site: str | None,
    firing: list[Line],
    resolved: list[Line],
    still_firing: list[Line],
    public_url: str,
    escalation_after_s: int | None = None,
) -> tuple[str, str, str]:
    """(subject, text, html) for one group's e-mail."""
    where = f"{tenant} / {site}" if site else f"{tenant} / central"
    counts = []
    if firing:
        counts.append(f"{len(firing)} firing")
    if resolved:
        counts.append(f"{len(resolved)} resolved")
    if still_firing and not firing:
        counts.append(f"{len(still_firing)} still firing")
    if escalation_after_s is not None:
        subject = f"[MeterIT] ESCALATED {where}: {len(still_firing)} unacknowledged"
    else:
        worst = "CRITICAL " if any(x.severity == "critical" for x in firing) else ""
        subject = f"[MeterIT] {worst}{where}: {', '.join(counts)}"
    base = public_url.rstrip("/")
    sections = [
        ("FIRING", firing),
        ("RESOLVED", resolved),
        ("UNACKNOWLEDGED" if escalation_after_s is not None else "STILL FIRING", still_firing),
    ]
    text: list[str] = []
    markup: list[str] = [f"<h2>{html.escape(where)}</h2>"]
    if escalation_after_s is not None:
        intro = (
            f"These alerts have fired for more than {escalation_after_s // 60} min and nobody "
            "acknowledged them; you are the escalation contact."
        )
        text += [intro, ""]
        markup.append(f"<p>{html.escape(intro)}</p>")
    for title, lines in sections:
        if not lines:
            continue
        text.append(f"{title} ({len(lines)})")
        markup.append(f"<h3>{title} ({len(lines)})</h3><ul>")
        for line in lines:
            link = f"{base}/ui/alerts/{line.id}"
            when = f"since {_ts(line.since)}"
            if line.resolved_at is not None:
                when += f", resolved {_ts(line.resolved_at)}"
            text.append(f"- [{line.severity}] {line.rule_name}: {line.summary}")
            text.append(f"  {when} · {link}")
            markup.append(
                f"<li><b>[{html.escape(line.severity)}] {html.escape(line.rule_name)}</b>: "
                f"{html.escape(line.summary)}<br><small>{html.escape(when)} · "
                f'<a href="{html.escape(link)}">open</a></small></li>'
            )
        text.append("")
        markup.append("</ul>")
    footer = f"Acknowledge or silence: {base}/ui/alerts"
    text.append(footer)
    markup.append(f'<p><a href="{html.escape(base)}/ui/alerts">Acknowledge or silence</a></p>')
    return subject, "\n".join(text) + "\n", "\n".join(markup)
