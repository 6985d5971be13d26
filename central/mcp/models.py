"""The structured output of the central MCP tools: what an assistant gets back, field by field.

The data always comes from central's domain functions (the ones the UI and the operator API
call); these models exist because the output schema is what an assistant reads to understand an
answer. Every list is bounded, and every paged answer says how many it returned, whether more
exist, and the cursor that fetches them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Paged(BaseModel):
    returned: int = Field(description="items (for readings: values per column) in this answer")
    truncated: bool = Field(description="true when more items match than this answer holds")
    next_cursor: str | None = Field(
        description="pass as cursor (same other arguments) for the rest; null when complete"
    )


class Point(BaseModel):
    name: str = Field(description="data point name, e.g. energy_kwh; query_readings takes it")
    unit: str


class Meter(BaseModel):
    meter_id: int
    site_id: int = Field(description="the site's id; query_readings and get_site_status take it")
    site_name: str
    external_id: str = Field(description="the meter's id within its site; query_readings takes it")
    name: str
    active: bool
    state: str = Field(
        description="reachable, no-values (answers without values), unreachable or unknown, as its appliance last reported"
    )
    state_since: datetime | None
    last_error: str | None
    point_count: int = Field(description="active data points; points lists the first 40")
    points: list[Point]


class MeterPage(Paged):
    meters: list[Meter]


class Series(BaseModel):
    """One data point's values as columns: t[i], value[i] (and min[i] … when asked) belong
    together."""

    meter: str = Field(description="the meter's external_id")
    point: str
    unit: str
    t: list[datetime] = Field(description="the reading's time (raw) or the bucket's start, in tz")
    value: list[float] = Field(description="the reading (raw) or the bucket's mean")
    min: list[float] | None = Field(default=None, description="the bucket's minimum")
    max: list[float] | None = Field(default=None, description="the bucket's maximum")
    last: list[float] | None = Field(
        default=None, description="the bucket's last value (counters: energy = last - last before)"
    )
    n: list[int] | None = Field(default=None, description="readings in the bucket")


class ReadingsAnswer(Paged):
    site_id: int
    start: datetime
    end: datetime
    tz: str = Field(description="the time zone of every timestamp and of day/month buckets")
    resolution_used: str = Field(description="raw, 15min, hour, day or month")
    series: list[Series]


class StateCounts(BaseModel):
    online: int
    late: int
    offline: int
    never: int
    inactive: int


class Problem(BaseModel):
    site_id: int
    site_name: str
    state: str
    why: str = Field(description="what is wrong, worst first")


class SiteDetail(BaseModel):
    site_id: int
    name: str
    state: str = Field(description="online, late, offline, never (no heartbeat yet), inactive")
    heartbeat_age_s: float | None
    backlog: int | None = Field(description="readings the appliance holds, not yet uploaded")
    oldest_unsynced_age_s: float | None
    dropped: int | None
    meters: int
    reporting: int = Field(description="meters with a reading in the recent window")
    unreachable_meters: list[str] = Field(description="external ids, at most 50")
    unreachable_count: int
    firing_alerts: dict[str, int] = Field(description="severity -> firing alerts")
    paused: list[str] = Field(description="what the appliance holds on purpose")
    versions: dict[str, Any]


class SiteStatus(BaseModel):
    sites: int
    states: StateCounts
    meters: int
    meters_unreachable: int
    backlog: int
    firing_alerts: dict[str, int] = Field(description="severity -> firing alerts, all sites")
    top_problems: list[Problem] = Field(description="the worst sites, at most 10")
    detail: list[SiteDetail] = Field(description="the sites asked for with site_ids")


class Alert(BaseModel):
    id: int
    rule_id: int
    rule_name: str
    kind: str
    severity: str
    state: str = Field(description="pending, firing or resolved")
    site_id: int | None
    site_name: str | None
    meter_id: int | None
    summary: str
    value: float | None
    pending_since: datetime | None
    firing_since: datetime | None
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    muted_by: str | None = Field(description="the silence or maintenance window muting it")


class AlertPage(Paged):
    alerts: list[Alert]


class Rule(BaseModel):
    id: int
    name: str = Field(description="the rule's key: unique in the tenant")
    kind: str
    severity: str
    site_id: int | None
    meter_id: int | None
    params: dict[str, Any]
    for_s: int
    recipients: list[str]
    escalation_recipients: list[str]
    escalate_after_s: int | None
    enabled: bool


class RulesAnswer(BaseModel):
    action: str
    outcome: str = Field(description="listed, created, updated, unchanged, deleted or absent")
    rules: list[Rule]
    kinds: dict[str, str] | None = Field(description="with list: each kind and what it checks")


class SilenceAnswer(BaseModel):
    action: str
    silence_id: int
    starts_at: datetime | None
    ends_at: datetime | None
    message: str


class MailAnswer(BaseModel):
    message_id: int
    recipients: list[str]
    message: str


class ReportAnswer(BaseModel):
    report_id: int
    status: str = Field(description="queued, running, done or failed")
    progress: int | None = Field(description="percent done while running")
    period: str
    link: str = Field(description="the report's page in central (sign-in needed): PDF and CSV")
    files: list[str] = Field(description="downloads on that page once done: pdf, csv")
    summary: dict[str, Any] | None = Field(description="headline figures once done")
    error: str | None
