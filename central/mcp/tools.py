"""The central MCP tools: thin adapters over the domain functions the UI and operator API call.

Every tool works inside the caller's tenant (the MCP token's user), checks the caller's role the
way ``central.access.require`` does for the other faces, bounds every answer (a page size, a
point budget), and raises ``ToolError`` with a message an assistant can act on. Tools that write
are audited here (tool, operator, token prefix, a digest of the arguments, outcome) on top of
the domain function's own audit entry; failures are audited too, in a transaction of their own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import limits
import limits.storage
import limits.strategies
import psycopg
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from psycopg_pool import ConnectionPool
from pydantic import Field

from central import audit, meter_search, series
from central.alerts import muting, rules, views
from central.connectivity import STATES, Thresholds
from central.domain_errors import NotFound
from central.fleet import site_figures, totals
from central.mail import outbox
from central.mcp import models
from central.mcp.access import Resolver, ToolRule, ToolVisibility
from central.mcp.compact import CompactText
from central.mcp_tokens import TokenOwner
from central.reports import service as reports
from central.settings import CentralSettings
from central.users import can
from common.heartbeat import MeterState

logger = logging.getLogger(__name__)

T = TypeVar("T")
Db = ConnectionPool[psycopg.Connection[Any]]

INSTRUCTIONS = """\
This is MeterIT central: the energy meters of every site of your organisation, their readings,
the sites' appliances and the alerts about them. Workflow: get_site_status for the fleet at a
glance; query_meters to find meters (never guess meter ids or data point names: take them from
query_meters); then query_readings for their values. Alerts: list_alerts; silence_alerts while
someone works on a site; configure_alert_rules to change what alerts. Reports: generate_report,
then get_report for its status, figures and link. Answers are bounded: when
truncated is true, call again with next_cursor. Times are ISO 8601 with an offset."""

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
CONFIGURE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)
MAIL = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)

RULES: dict[str, ToolRule] = {
    "query_meters": ToolRule("viewer", writes=False),
    "query_readings": ToolRule("viewer", writes=False),
    "get_site_status": ToolRule("viewer", writes=False),
    "list_alerts": ToolRule("viewer", writes=False),
    "configure_alert_rules": ToolRule("admin", writes=True),
    "silence_alerts": ToolRule("operator", writes=True),
    "send_alert_email": ToolRule("operator", writes=True),
    "generate_report": ToolRule("operator", writes=True),
    "get_report": ToolRule("viewer", writes=False),
}

MAX_METERS = 100
DEFAULT_POINTS = 500
MAX_POINTS = 2000
MAX_SERIES = 20
MAX_SPAN = timedelta(days=3660)
MAX_DETAIL_SITES = 20
TOP_PROBLEMS = 10
MAX_UNREACHABLE_SHOWN = 50
MAX_ALERTS = 100
MAX_CURSOR = 200
MAX_TEXT = 20_000

SiteId = Annotated[
    int, Field(ge=1, le=2**31 - 1, description="a site id (query_meters lists them)")
]


def _encode(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _decode(cursor: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """A cursor this server made, or a ToolError telling the assistant to pass it unchanged."""
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(data, dict) or set(data) != set(keys):
            raise ValueError
        return data
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ToolError(
            "cursor: not a cursor of this tool; pass next_cursor of the previous answer unchanged"
        ) from None


def _zone(name: str) -> ZoneInfo:
    try:
        if len(name) > 64:
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"tz: {name[:64]!r} is not a time zone; give e.g. UTC or Europe/Paris"
        ) from None


def _digest(args: dict[str, Any]) -> str:
    """What the audit log keeps of a call's arguments: a digest to match calls by, never the
    text (an e-mail body, addresses)."""
    return hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()[:16]


@contextmanager
def _answerable() -> Iterator[None]:
    """Turn the failures an assistant can act on into tool errors that say what to change."""
    try:
        yield
    except (rules.RuleError, muting.MutingError) as err:
        raise ToolError(str(err)) from err
    except (outbox.MailError, NotFound, rules.NotFound, reports.TooMany, ValueError) as err:
        raise ToolError(str(err)) from err
    except psycopg.OperationalError as err:
        logger.error("MCP tool cannot reach the central database: %s", " ".join(str(err).split()))
        raise ToolError(
            "central's database does not answer; try again shortly, or ask the operator to "
            "check PostgreSQL on the central server"
        ) from err


class Tools:
    """The state the tools share: settings, the pools, who is calling, the e-mail limiter."""

    def __init__(
        self, settings: CentralSettings, db: Db, resolve: Resolver, reader: Db | None = None
    ) -> None:
        from central.extensions import limiter_storage_uri

        self.settings = settings
        self.db = db
        self.reader = reader or db  # the read replica's pool, when there is one
        self.resolve = resolve
        self.limits = Thresholds(settings.heartbeat_late_s, settings.heartbeat_offline_s)
        self.mail_limit = limits.parse(settings.mcp_mail_rate)
        storage = limits.storage.storage_from_string(limiter_storage_uri(settings.redis_url))
        self.mail_limiter = limits.strategies.FixedWindowRateLimiter(storage)

    def owner(self, ctx: Context, tool: str) -> TokenOwner:
        """The caller, once more checked against the tool's role (ToolVisibility hides the tool
        already; this guards a server built without it)."""
        try:
            owner = self.resolve(ctx.request_context)
        except PermissionError as err:
            raise ToolError(str(err)) from None
        if not can(owner.role, RULES[tool].role):
            raise ToolError(f"{tool} needs the {RULES[tool].role} role; you are {owner.role}")
        return owner

    def read(self, fn: Callable[[psycopg.Connection[Any]], T], *, fresh: bool = False) -> T:
        """``fresh``: the answer must include writes made a moment ago (a report just asked
        for, the rules being edited), which a replica may not have replayed yet."""
        with _answerable(), (self.db if fresh else self.reader).connection() as conn:
            return fn(conn)

    def write(
        self,
        owner: TokenOwner,
        tool: str,
        args: dict[str, Any],
        fn: Callable[[psycopg.Connection[Any]], T],
    ) -> T:
        details = {"tool": tool, "token": owner.prefix, "args_sha256": _digest(args)}
        target = ("mcp_tool", tool)
        try:
            with _answerable(), self.db.connection() as conn, conn.transaction():
                result = fn(conn)
                audit.record(
                    conn,
                    owner.tenant_id,
                    owner.actor,
                    f"mcp.{tool}",
                    target,
                    details=details | {"outcome": "ok"},
                )
            return result
        except Exception as err:
            outcome = "refused" if isinstance(err, ToolError) else "failed"
            with self.db.connection() as conn, conn.transaction():
                audit.record(
                    conn,
                    owner.tenant_id,
                    owner.actor,
                    f"mcp.{tool}",
                    target,
                    details=details | {"outcome": outcome, "reason": str(err)[:300]},
                )
            raise


def build_server(
    settings: CentralSettings,
    db: Db,
    resolve: Resolver,
    *,
    read_only: bool,
    reader: Db | None = None,
) -> MCPServer:
    """The MCP server with every central tool, each caller seeing only those it may use;
    ``reader`` is the read replica's pool, if any."""
    tools = Tools(settings, db, resolve, reader)
    server: MCPServer = MCPServer(
        "meterit-central",
        title="MeterIT central",
        instructions=INSTRUCTIONS,
        version=_version(),
        log_level=settings.log_level.upper(),  # type: ignore[arg-type]
        middleware=[ToolVisibility(RULES, resolve, read_only=read_only), CompactText()],
    )

    @server.tool(annotations=READ)
    def query_meters(
        ctx: Context,
        *,
        site_id: Annotated[SiteId | None, Field(description="only this site's meters")] = None,
        name: Annotated[
            str | None,
            Field(max_length=100, description="part of the meter's external id or name"),
        ] = None,
        point: Annotated[
            str | None,
            Field(max_length=100, description="only meters with this data point, e.g. power_kw"),
        ] = None,
        state: Annotated[
            MeterState | None,
            Field(description="only meters in this state (as their appliance last reported)"),
        ] = None,
        include_inactive: Annotated[bool, Field(description="also deactivated meters")] = False,
        limit: Annotated[int, Field(ge=1, le=MAX_METERS, description="meters per page")] = 50,
        cursor: Annotated[
            str | None, Field(max_length=MAX_CURSOR, description="next_cursor of the last page")
        ] = None,
    ) -> models.MeterPage:
        """Find meters across your organisation's sites, with their data points and state.
        Call this first: query_readings needs a site_id, the meter's external_id and data point
        names exactly as listed here; never guess them. Filters combine; results are by meter
        id, one page at a time (truncated + next_cursor when more match)."""
        owner = tools.owner(ctx, "query_meters")
        after = int(_decode(cursor, ("m",))["m"]) if cursor else 0
        found, more = tools.read(
            lambda conn: meter_search.search(
                conn,
                owner.tenant_id,
                site_id=site_id,
                name=name.strip() if name else None,
                point=point,
                state=state,
                active=None if include_inactive else True,
                after=after,
                limit=limit,
            )
        )
        meters = [
            models.Meter(
                meter_id=m.id,
                site_id=m.site_id,
                site_name=m.site_name,
                external_id=m.external_id,
                name=m.name,
                active=m.active,
                state=m.state,
                state_since=m.state_since,
                last_error=m.last_error,
                point_count=m.point_count,
                points=[
                    models.Point(name=n, unit=u) for n, _, u in (p.partition("|") for p in m.points)
                ],
            )
            for m in found
        ]
        return models.MeterPage(
            meters=meters,
            returned=len(meters),
            truncated=more,
            next_cursor=_encode({"m": found[-1].id}) if more else None,
        )

    @server.tool(annotations=READ)
    def query_readings(
        ctx: Context,
        *,
        site_id: SiteId,
        meter: Annotated[
            str,
            Field(
                min_length=1,
                max_length=200,
                description="the meter's external_id from query_meters",
            ),
        ],
        start: Annotated[datetime, Field(description="start, inclusive; ISO 8601 with an offset")],
        end: Annotated[
            datetime | None,
            Field(description="end, exclusive; ISO 8601 with an offset; default now"),
        ] = None,
        points: Annotated[
            list[Annotated[str, Field(max_length=100)]] | None,
            Field(
                max_length=MAX_SERIES, description="data point names from query_meters; default all"
            ),
        ] = None,
        resolution: Annotated[
            Literal["auto", "raw", "15min", "hour", "day", "month"],
            Field(description="auto picks the finest that fits max_points"),
        ] = "auto",
        max_points: Annotated[
            int,
            Field(
                ge=1,
                le=MAX_POINTS,
                description=f"values in the answer, all series together (default {DEFAULT_POINTS})",
            ),
        ] = DEFAULT_POINTS,
        tz: Annotated[
            str,
            Field(max_length=64, description="IANA time zone for day/month buckets and the answer"),
        ] = "UTC",
        aggregates: Annotated[
            list[Literal["min", "max", "last", "n"]] | None,
            Field(
                max_length=4,
                description="columns besides value (the mean): min, max, last (counters: "
                "energy of a bucket = its last - the previous bucket's last), n (readings); "
                "each one counts against max_points",
            ),
        ] = None,
        cursor: Annotated[
            str | None, Field(max_length=MAX_CURSOR, description="next_cursor of the last answer")
        ] = None,
    ) -> models.ReadingsAnswer:
        """Values of one meter's data points over a time range. With resolution auto (the
        default) the server picks raw readings, or 15min / hour / day / month aggregates (mean,
        min, max, count, last) so the whole answer stays within max_points; each answer says
        resolution_used. Energy counters: consumption of a bucket = its last minus the previous
        bucket's last. Take site_id, meter and point names from query_meters. When truncated,
        call again with the same arguments and next_cursor (or ask for a coarser resolution)."""
        owner = tools.owner(ctx, "query_readings")
        zone = _zone(tz)
        now = datetime.now(UTC)
        end_at = end or now
        if start.tzinfo is None or end_at.tzinfo is None:
            raise ToolError("start and end need a time zone offset, e.g. 2026-11-01T00:00:00Z")
        if not end_at > start:
            raise ToolError("end must be after start")
        if end_at - start > MAX_SPAN:
            raise ToolError(f"the range is at most {MAX_SPAN.days} days")
        state = _decode(cursor, ("r", "p", "t")) if cursor else None
        # the budget counts values: each aggregate asked for is a column of its own
        rows = max_points // (1 + len(aggregates or []))
        if rows < 1:
            raise ToolError("max_points: too small for the aggregates asked; raise it")

        def run(conn: psycopg.Connection[Any]) -> models.ReadingsAnswer:
            every = meter_search.meter_points(conn, owner.tenant_id, site_id, meter)
            if not every:
                raise ToolError(
                    f"no meter {meter!r} on site {site_id} in your organisation; call "
                    "query_meters to get the exact site_id and external_id"
                )
            if points:
                missing = sorted(set(points) - {p.name for p in every})
                if missing:
                    known = ", ".join(sorted(p.name for p in every if p.active))
                    raise ToolError(f"meter {meter!r} has no point {missing}; it has: {known}")
            found = [p for p in every if (p.name in points if points else p.active)]
            if not found:
                raise ToolError(f"meter {meter!r} has no active data point; name one in points")
            by_id = {p.point_id: p for p in found}
            chosen: str = resolution
            after = None
            if state is not None:
                chosen = str(state["r"])
                after = (int(state["p"]), datetime.fromisoformat(str(state["t"])))
            elif chosen == "auto":
                chosen = series.choose_resolution(conn, list(by_id), start, end_at, rows)
            page = series.read(
                conn,
                list(by_id),
                start,
                end_at,
                resolution=chosen,
                tz=tz,
                limit=rows,
                after=after,
                now=now,
            )
            grouped: dict[int, list[series.Bucket]] = {}
            for bucket in page.buckets:
                grouped.setdefault(bucket.point_id, []).append(bucket)
            last = page.buckets[-1] if page.buckets else None
            return models.ReadingsAnswer(
                site_id=site_id,
                start=start.astimezone(zone),
                end=end_at.astimezone(zone),
                tz=tz,
                resolution_used=chosen,
                series=[
                    _series(by_id[pid], rows, zone, aggregates or [])
                    for pid, rows in grouped.items()
                ],
                returned=len(page.buckets),
                truncated=page.truncated,
                next_cursor=_encode({"r": chosen, "p": last.point_id, "t": last.bucket.isoformat()})
                if page.truncated and last is not None
                else None,
            )

        return tools.read(run)

    @server.tool(annotations=READ)
    def get_site_status(
        ctx: Context,
        *,
        site_ids: Annotated[
            list[SiteId] | None,
            Field(
                max_length=MAX_DETAIL_SITES,
                description="sites to detail (heartbeat age, backlog, unreachable meters, firing alerts)",
            ),
        ] = None,
    ) -> models.SiteStatus:
        """The fleet at a glance, the same size however many sites: sites per state (online,
        late, offline, never, inactive), totals, firing alerts by severity and the 10 worst
        sites with why. Pass site_ids (up to 20) for each one's detail. Start here."""
        owner = tools.owner(ctx, "get_site_status")
        now = datetime.now(UTC)

        def run(conn: psycopg.Connection[Any]) -> models.SiteStatus:
            every = site_figures(conn, owner.tenant_id, now, tools.limits)
            firing = views.firing_by_site(conn, owner.tenant_id)
            return _site_status(every, firing, site_ids or [])

        return tools.read(run)

    @server.tool(annotations=READ)
    def list_alerts(
        ctx: Context,
        *,
        state: Annotated[
            Literal["open", "firing", "pending", "resolved", "all"],
            Field(description="open = pending or firing"),
        ] = "open",
        site_id: Annotated[SiteId | None, Field(description="only this site's alerts")] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_ALERTS, description="alerts per page")] = 50,
        cursor: Annotated[
            str | None, Field(max_length=MAX_CURSOR, description="next_cursor of the last page")
        ] = None,
    ) -> models.AlertPage:
        """Alerts of your organisation, newest first: what fires, since when, on which site and
        meter, whether acknowledged or muted by a silence or maintenance window."""
        owner = tools.owner(ctx, "list_alerts")
        before = int(_decode(cursor, ("a",))["a"]) if cursor else None
        items = tools.read(
            lambda conn: views.alerts(
                conn, owner.tenant_id, state, site_id=site_id, before_id=before, limit=limit + 1
            )
        )
        more = len(items) > limit
        items = items[:limit]
        return models.AlertPage(
            alerts=[models.Alert.model_validate(i) for i in items],
            returned=len(items),
            truncated=more,
            next_cursor=_encode({"a": items[-1]["id"]}) if more else None,
        )

    @server.tool(annotations=CONFIGURE)
    def configure_alert_rules(
        ctx: Context,
        *,
        action: Annotated[
            Literal["list", "create", "update", "delete"], Field(description="what to do")
        ],
        name: Annotated[
            str | None,
            Field(
                max_length=rules.MAX_NAME,
                description="the rule's key (unique name); create/update/delete",
            ),
        ] = None,
        rule: Annotated[
            dict[str, Any] | None,
            Field(
                description="create/update: {kind, severity, site_id, meter_id, params, for_s, recipients, escalation_recipients, escalate_after_s, enabled}; list shows the kinds and their params"
            ),
        ] = None,
    ) -> models.RulesAnswer:
        """List, create, update or delete alert rules (admins). Idempotent by the rule's name:
        create of an identical existing rule answers unchanged, update replaces the rule of
        that name, delete of an absent rule answers absent. Call with action list first to see
        the rules and the kinds with their parameters."""
        owner = tools.owner(ctx, "configure_alert_rules")
        if action == "list":
            found = tools.read(lambda conn: rules.list_rules(conn, owner.tenant_id), fresh=True)
            return _rules_answer("list", "listed", found, kinds=True)
        key = (name or "").strip()
        args = {"action": action, "name": key, "rule": rule}

        def run(conn: psycopg.Connection[Any]) -> models.RulesAnswer:
            if not key:
                raise ToolError(f"name: {action} needs the rule's name (its key)")
            if action != "delete" and not isinstance(rule, dict):
                raise ToolError(f"rule: {action} needs the rule as an object; list shows kinds")
            existing = {r["name"]: r for r in rules.list_rules(conn, owner.tenant_id)}
            current = existing.get(key)
            if action == "delete":
                if current is None:
                    return _rules_answer(action, "absent", [])
                rules.delete_rule(conn, owner.tenant_id, current["id"], owner.actor)
                return _rules_answer(action, "deleted", [current])
            spec = rules.parse_rule((rule or {}) | {"name": key})
            if current is None:
                if action == "update":
                    raise ToolError(f"no alert rule named {key!r}; create it, or list the rules")
                rule_id = rules.create_rule(conn, owner.tenant_id, spec, owner.actor)
                return _rules_answer(
                    action, "created", [rules.get_rule(conn, owner.tenant_id, rule_id)]
                )
            if _same(current, spec):
                return _rules_answer(action, "unchanged", [current])
            if action == "create":
                raise ToolError(
                    f"a different rule named {key!r} exists; use action update to replace it"
                )
            rules.update_rule(conn, owner.tenant_id, current["id"], spec, owner.actor)
            return _rules_answer(
                action, "updated", [rules.get_rule(conn, owner.tenant_id, current["id"])]
            )

        return tools.write(owner, "configure_alert_rules", args, run)

    @server.tool(annotations=WRITE)
    def silence_alerts(
        ctx: Context,
        *,
        action: Annotated[
            Literal["create", "end"], Field(description="start a silence, or end one")
        ] = "create",
        minutes: Annotated[
            int | None, Field(ge=1, le=90 * 24 * 60, description="create: how long, from now")
        ] = None,
        site_id: Annotated[
            SiteId | None, Field(description="create: only this site's alerts")
        ] = None,
        meter_id: Annotated[
            int | None,
            Field(
                ge=1,
                le=2**31 - 1,
                description="create: only this meter's (meter_id from query_meters)",
            ),
        ] = None,
        rule_id: Annotated[
            int | None, Field(ge=1, le=2**31 - 1, description="create: only this rule's")
        ] = None,
        comment: Annotated[str, Field(max_length=500, description="why, shown to everyone")] = "",
        silence_id: Annotated[
            int | None, Field(ge=1, le=2**31 - 1, description="end: the silence")
        ] = None,
    ) -> models.SilenceAnswer:
        """Mute alert e-mails for a while (operators): a silence on a site, a meter, a rule or
        all of them, e.g. while an electrician works on a site. Alerts still show, marked muted.
        action end stops a silence early."""
        owner = tools.owner(ctx, "silence_alerts")
        now = datetime.now(UTC)
        args = {
            "action": action,
            "minutes": minutes,
            "site_id": site_id,
            "meter_id": meter_id,
            "rule_id": rule_id,
            "silence_id": silence_id,
        }

        def run(conn: psycopg.Connection[Any]) -> models.SilenceAnswer:
            if action == "end":
                if silence_id is None:
                    raise ToolError("silence_id: end needs the silence's id")
                if not muting.end_silence(conn, owner.tenant_id, silence_id, owner.actor, now):
                    raise ToolError(f"no running silence with id {silence_id}")
                return models.SilenceAnswer(
                    action=action,
                    silence_id=silence_id,
                    starts_at=None,
                    ends_at=now,
                    message="silence ended",
                )
            if minutes is None:
                raise ToolError("minutes: create needs how long the silence lasts")
            ends = now + timedelta(minutes=minutes)
            body = {
                "site_id": site_id,
                "meter_id": meter_id,
                "rule_id": rule_id,
                "ends_at": ends.isoformat(),
                "comment": comment,
            }
            made = muting.create_silence(conn, owner.tenant_id, body, owner.actor, now)
            return models.SilenceAnswer(
                action=action,
                silence_id=made,
                starts_at=now,
                ends_at=ends,
                message=f"silenced until {ends.isoformat()}",
            )

        return tools.write(owner, "silence_alerts", args, run)

    @server.tool(annotations=MAIL)
    def send_alert_email(
        ctx: Context,
        *,
        recipients: Annotated[
            list[Annotated[str, Field(max_length=254)]],
            Field(
                min_length=1,
                max_length=20,
                description="addresses of your organisation's users or alert recipients",
            ),
        ],
        subject: Annotated[str, Field(min_length=1, max_length=200)],
        text: Annotated[
            str, Field(min_length=1, max_length=MAX_TEXT, description="plain-text body")
        ],
        alert_id: Annotated[
            int | None,
            Field(ge=1, le=2**63 - 1, description="an alert (list_alerts) whose summary to append"),
        ] = None,
    ) -> models.MailAnswer:
        """E-mail people about alerts (operators). Only to your organisation's users and the
        addresses its alert rules send to; rate-limited per organisation. The e-mail is queued
        and sent by central's mail worker within a minute."""
        owner = tools.owner(ctx, "send_alert_email")
        args = {
            "recipients": recipients,
            "subject": subject,
            "alert_id": alert_id,
            "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
        }

        def send(conn: psycopg.Connection[Any]) -> models.MailAnswer:
            allowed = _allowed_recipients(conn, owner.tenant_id)
            wanted = [outbox.normalize_address(r) for r in recipients]
            refused = [r for r in wanted if r not in allowed]
            if refused:
                raise ToolError(
                    f"not a recipient of your organisation: {', '.join(refused)}; send only to "
                    "its users or the addresses its alert rules send to"
                )
            body = text
            if alert_id is not None:
                item = views.alert(conn, owner.tenant_id, alert_id)
                if item is None:
                    raise ToolError(f"no alert with id {alert_id} in your organisation")
                body += (
                    f"\n\nAlert {alert_id} ({item['severity']}, {item['state']}): {item['summary']}"
                )
            body += f"\n\nSent by {owner.email} through MeterIT central's assistant tools."
            if not tools.mail_limiter.hit(tools.mail_limit, "mcp-mail", str(owner.tenant_id)):
                raise ToolError(
                    f"e-mail rate limit reached ({tools.settings.mcp_mail_rate} per organisation); "
                    "try again later"
                )
            message_id = outbox.enqueue(conn, wanted, subject, body, tenant_id=owner.tenant_id)
            return models.MailAnswer(
                message_id=message_id,
                recipients=wanted,
                message="queued; central's mail worker sends it",
            )

        return tools.write(owner, "send_alert_email", args, send)

    @server.tool(annotations=WRITE)
    def generate_report(
        ctx: Context,
        *,
        period: Annotated[
            Literal["day", "week", "month", "custom"], Field(description="the report's period")
        ],
        day: Annotated[
            str,
            Field(
                pattern=r"^\d{4}-\d{2}-\d{2}$",
                description="YYYY-MM-DD: the day, a day of the week or month, or a custom start",
            ),
        ],
        last_day: Annotated[
            str | None,
            Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="custom: the last day, YYYY-MM-DD"),
        ] = None,
        site_ids: Annotated[
            list[SiteId] | None,
            Field(max_length=1000, description="the sites to cover; default every site"),
        ] = None,
        tz: Annotated[str, Field(max_length=64, description="IANA time zone of the days")] = "UTC",
    ) -> models.ReportAnswer:
        """Start an energy report (consumption, peak demand, load factor per site and for the
        fleet; PDF and CSV) and return its id and status at once: central's worker makes it in
        seconds to minutes. Then call get_report with the id for its status, summary figures and
        download link. The file itself is never returned here."""
        owner = tools.owner(ctx, "generate_report")
        body = {"kind": period, "day": day} | ({"last_day": last_day} if last_day else {})
        args = {"period": body, "site_ids": site_ids, "tz": tz}

        def run(conn: psycopg.Connection[Any]) -> models.ReportAnswer:
            report_id = reports.request_report(
                conn, owner.tenant_id, {"site_ids": site_ids}, body, tz, actor=owner.actor
            )
            status = reports.get_report(conn, owner.tenant_id, report_id)
            assert status is not None
            return _report_answer(tools.settings, status)

        return tools.write(owner, "generate_report", args, run)

    @server.tool(annotations=READ)
    def get_report(
        ctx: Context,
        *,
        report_id: Annotated[int, Field(ge=1, le=2**63 - 1, description="from generate_report")],
    ) -> models.ReportAnswer:
        """A report's status (queued, running, done, failed), its headline figures once done
        (energy, peak, load factor, completeness, top sites) and the link where an operator
        downloads it. Never the file's bytes."""
        owner = tools.owner(ctx, "get_report")
        status = tools.read(
            lambda conn: reports.get_report(conn, owner.tenant_id, report_id), fresh=True
        )
        if status is None:
            raise ToolError(f"no report {report_id} in your organisation")
        return _report_answer(tools.settings, status)

    return server


def _report_answer(settings: CentralSettings, status: dict[str, Any]) -> models.ReportAnswer:
    """The status of ``reports.get_report`` with the UI page's address: the link opens the
    report with its PDF and CSV downloads (after sign-in), never the bytes themselves."""
    return models.ReportAnswer(
        report_id=status["id"],
        status=status["status"],
        progress=status["progress"],
        period=status["period"]["label"],
        link=f"{settings.public_url.rstrip('/')}/reports/{status['id']}",
        files=status["files"],
        summary=status["summary"],
        error=status["error"],
    )


def _number(value: float) -> float:
    """Seven significant digits: what a meter measures, without float noise in the answer."""
    return float(f"{value:.7g}")


def _series(
    point: meter_search.MeterPoint,
    rows: list[series.Bucket],
    zone: ZoneInfo,
    columns: Sequence[str],
) -> models.Series:
    """One data point's buckets as columns (a list per field): a third of the size of a list
    of objects, which matters at 2,000 values."""
    return models.Series(
        meter=point.external_id,
        point=point.name,
        unit=point.unit,
        t=[r.bucket.astimezone(zone) for r in rows],
        value=[_number(r.mean) for r in rows],
        min=[_number(r.min) for r in rows] if "min" in columns else None,
        max=[_number(r.max) for r in rows] if "max" in columns else None,
        last=[_number(r.last) for r in rows] if "last" in columns else None,
        n=[r.n for r in rows] if "n" in columns else None,
    )


def _allowed_recipients(conn: psycopg.Connection[Any], tenant_id: int) -> set[str]:
    rows = conn.execute(
        """SELECT lower(email) FROM users WHERE tenant_id = %(t)s AND active
           UNION SELECT unnest(recipients || escalation_recipients) FROM alert_rules
           WHERE tenant_id = %(t)s""",
        {"t": tenant_id},
    ).fetchall()
    return {r[0] for r in rows}


_SPEC_FIELDS = (
    "kind",
    "severity",
    "site_id",
    "meter_id",
    "params",
    "for_s",
    "recipients",
    "escalation_recipients",
    "escalate_after_s",
    "enabled",
)


def _same(current: dict[str, Any], spec: rules.RuleSpec) -> bool:
    wanted = spec.as_json()
    return all(current[f] == wanted[f] for f in _SPEC_FIELDS)


def _rules_answer(
    action: str, outcome: str, found: list[dict[str, Any]], *, kinds: bool = False
) -> models.RulesAnswer:
    return models.RulesAnswer(
        action=action,
        outcome=outcome,
        rules=[models.Rule.model_validate(r) for r in found],
        kinds={
            k: f"{v.help}; params: "
            + ", ".join(
                f"{p.name} ({p.help}{'' if p.default is None else f', default {p.default}'})"
                for p in v.params
            )
            for k, v in rules.KINDS.items()
        }
        if kinds
        else None,
    )


_STATE_WEIGHT = {"offline": 3, "never": 1, "late": 2, "online": 0, "inactive": 0}


def _site_status(
    every: list[Any], firing: dict[int, dict[str, int]], detail_ids: list[int]
) -> models.SiteStatus:
    """The fixed-size summary of ``fleet.site_figures`` rows plus the requested details."""
    fleet = totals(every)
    firing_total = {
        sev: sum(f.get(sev, 0) for f in firing.values()) for sev in ("critical", "warning", "info")
    }

    def badness(s: Any) -> tuple[int, int, int, int]:
        f = firing.get(s.site_id, {})
        return (
            _STATE_WEIGHT[s.state],
            f.get("critical", 0),
            len(s.unreachable) + f.get("warning", 0),
            s.backlog or 0,
        )

    def why(s: Any) -> str:
        parts = []
        if s.state in ("offline", "late", "never"):
            age = (
                f" ({s.heartbeat_age_s / 60:.0f} min without heartbeat)"
                if s.heartbeat_age_s
                else ""
            )
            parts.append(f"{s.state}{age}")
        f = firing.get(s.site_id, {})
        if f:
            parts.append("firing " + ", ".join(f"{n} {sev}" for sev, n in sorted(f.items())))
        if s.unreachable:
            parts.append(f"{len(s.unreachable)} meter(s) unreachable")
        if s.backlog:
            parts.append(f"backlog {s.backlog} readings")
        return "; ".join(parts)

    worst = sorted((s for s in every if badness(s) > (0, 0, 0, 0)), key=badness, reverse=True)
    by_id = {s.site_id: s for s in every}
    unknown = [i for i in detail_ids if i not in by_id]
    if unknown:
        raise ToolError(
            f"site_ids: no site {unknown} in your organisation; query_meters lists sites"
        )
    return models.SiteStatus(
        sites=fleet["sites"],
        states=models.StateCounts(**{k: fleet["states"][k] for k in STATES}),
        meters=fleet["meters"],
        meters_unreachable=fleet["unreachable"],
        backlog=fleet["backlog"],
        firing_alerts=firing_total,
        top_problems=[
            models.Problem(site_id=s.site_id, site_name=s.name, state=s.state, why=why(s))
            for s in worst[:TOP_PROBLEMS]
        ],
        detail=[
            models.SiteDetail(
                site_id=s.site_id,
                name=s.name,
                state=s.state,
                heartbeat_age_s=s.heartbeat_age_s,
                backlog=s.backlog,
                oldest_unsynced_age_s=s.oldest_unsynced_age_s,
                dropped=s.dropped,
                meters=s.meters,
                reporting=s.reporting,
                unreachable_meters=s.unreachable[:MAX_UNREACHABLE_SHOWN],
                unreachable_count=len(s.unreachable),
                firing_alerts=firing.get(s.site_id, {}),
                paused=s.paused,
                versions=s.versions,
            )
            for s in (by_id[i] for i in dict.fromkeys(detail_ids))
        ],
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("meterit")
    except PackageNotFoundError:
        return "0"
