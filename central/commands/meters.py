"""``meterit-central meters load TENANT SITE FILE``: make a site's meters those a meters file lists.

For provisioning (Ansible, scripts): the file is the one an installer edits for an appliance
(``meterit-appliance discover`` writes it), and it becomes the site's whole meter list at central
in one transaction — new meters created, changed ones updated, absent ones deactivated — which
the site's appliances then pull. A meter that is already as the file says is left alone (its
site's config version does not move), and the summary line says what changed, so running it
again reports nothing changed. Every bad meter is reported before anything is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psycopg

from central import meters, tenants
from central.commands import base
from central.domain_errors import NotFound
from central.errors import ApiError

MAX_FILE_BYTES = 4 * 1024 * 1024
ACTOR = "cli"


def read_meters(path: Path) -> list[dict[str, Any]]:
    """The file's meters, each checked as central checks a meter an operator saves; ValueError
    names every problem."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of meters")
    problems: list[str] = []
    parsed: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        try:
            meter = meters.parse_meter(item)
        except ApiError as err:
            problems.append(f"meter {index + 1}: {err.message}")
            continue
        if meter["external_id"] in seen:
            problems.append(f"meter {index + 1}: external_id {meter['external_id']!r} repeated")
        seen.add(meter["external_id"])
        parsed.append(meter)
    if problems:
        raise ValueError(f"{path}: nothing loaded: " + "; ".join(problems))
    return parsed


def _as_stored(meter: dict[str, Any]) -> tuple[Any, ...]:
    """A parsed meter in the shape ``meters.meter_json`` reads back, to compare the two."""
    points = sorted(
        (p["name"], f"{p['object_type']},{p['object_instance']}", p["property"], p["unit"])
        for p in meter["points"]
    )
    cov = meter.get("cov", False)
    return (meter["name"], meter["address"], meter["device_instance"], cov, True, points)


def _stored(conn: psycopg.Connection[Any], meter_id: int) -> tuple[Any, ...]:
    have = meters.meter_json(conn, meter_id)
    points = sorted(
        (p["name"], p["object"], p["property"], p["unit"]) for p in have["points"] if p["active"]
    )
    stored = (have["name"], have["address"], have["device_instance"], have["cov"])
    return (*stored, have["active"], points)


def load(
    conn: psycopg.Connection[Any], tenant_id: int, site_id: int, wanted: list[dict[str, Any]]
) -> dict[str, int]:
    """Make the site's meters ``wanted`` (in the caller's transaction); the counts of what changed."""
    existing = dict(
        conn.execute("SELECT external_id, id FROM meters WHERE site_id = %s", (site_id,)).fetchall()
    )
    counts = {"created": 0, "updated": 0, "deactivated": 0, "unchanged": 0}
    for meter in wanted:
        meter_id = existing.pop(meter["external_id"], None)
        if meter_id is None:
            meters.create_meter(conn, site_id, tenant_id, meter, ACTOR)
            counts["created"] += 1
        elif _stored(conn, meter_id) != _as_stored(meter):
            meters.update_meter(conn, meter_id, tenant_id, meter, ACTOR)
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    for meter_id in existing.values():
        active = conn.execute("SELECT active FROM meters WHERE id = %s", (meter_id,)).fetchone()
        if active and active[0]:
            meters.deactivate_meter(conn, meter_id, tenant_id, ACTOR)
            counts["deactivated"] += 1
    return counts


def main(argv: list[str]) -> int:
    picked = base.subcommand(argv, ("load",), "meters")
    if picked is None:
        return base.EX_USAGE
    p = base.parser("meters load", "Make a site's meters those a meters file (JSON) lists.")
    p.add_argument("tenant", help="the tenant's name")
    p.add_argument("site", help="the site's name")
    p.add_argument("file", type=Path, help="meters file, as 'meterit-appliance discover' writes it")
    p.add_argument("--json", action="store_true", help="print the counts as a JSON object")
    args = p.parse_args(picked[1])

    def run() -> int:
        try:
            wanted = read_meters(args.file)
        except OSError as err:
            raise ValueError(f"{args.file}: cannot read: {err.strerror}") from None
        with base.transaction(args.database_url) as conn:
            tenant_id = tenants.tenant_id_by_name(conn, args.tenant)
            row = conn.execute(
                "SELECT id FROM sites WHERE tenant_id = %s AND name = %s", (tenant_id, args.site)
            ).fetchone()
            if row is None:
                raise NotFound(f"tenant {args.tenant!r} has no site named {args.site!r}")
            counts = load(conn, tenant_id, int(row[0]), wanted)
        if args.json:
            sys.stdout.write(json.dumps(counts) + "\n")
        else:
            sys.stdout.write(", ".join(f"{n} {what}" for what, n in counts.items()) + "\n")
        return 0

    return base.run("meters load", run)
