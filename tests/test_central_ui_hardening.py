"""The operator UI under hostile input (issue #16): no open redirect after sign-in, no 500 from
odd digits, no formula in an exported CSV (items 2, 4, 9), through real gunicorn."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import psycopg

from common.wire import reading_item
from tests.central_fixtures import CentralServer
from tests.harness import scalar
from tests.test_central_sync import post_batch
from tests.ui_browser import send_heartbeat
from tests.ui_session import csrf_token, sign_in, signed_in

PASSWORD = "correct horse battery"


def test_sign_in_never_redirects_off_the_server(central_server: CentralServer) -> None:
    central_server.create_user("op@example.com", PASSWORD, "operator")
    hostile = [
        "/\t/evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "/ /evil.example",
        "/sites\r\nSet-Cookie: x=1",
        "/sites\nLocation: //evil.example",
        "\x00//evil.example",
    ]
    for target in hostile:
        answer = sign_in(central_server, "op@example.com", PASSWORD, target)
        assert answer.status_code == 302, (target, answer.status_code, answer.text[:300])
        assert answer.headers["Location"] in ("/", central_server.url("/")), target
    kept = sign_in(central_server, "op@example.com", PASSWORD, "/explorer?site=1&range=6h")
    assert kept.headers["Location"].endswith("/explorer?site=1&range=6h")


def test_explorer_export_writes_names_as_text_never_as_formulas(
    central_server: CentralServer,
) -> None:
    site = central_server.create_site('=HYPERLINK("http://evil.example","x")')
    central_server.add_meter(
        site.site_id,
        "main",
        [("+SUM(A1)", "analog-input,1", "@kWh"), ("\tpower", "analog-input,2", "-kW")],
    )
    now = datetime.now(UTC).replace(microsecond=0)
    batch = [
        reading_item("main", "+SUM(A1)", now - timedelta(minutes=5), -5.5, "@kWh"),
        reading_item("main", "\tpower", now - timedelta(minutes=4), 2.0, "-kW"),
    ]
    assert post_batch(central_server, site.api_key, "b1", batch).json()["accepted"] == 2
    central_server.create_user("viewer@example.com", PASSWORD, "viewer")
    session = signed_in(central_server, "viewer@example.com", PASSWORD)
    with psycopg.connect(central_server.db_url) as conn:
        points = [r[0] for r in conn.execute("SELECT id FROM meter_points ORDER BY id")]
    query = "&".join([f"site={site.site_id}", "range=6h"] + [f"point={p}" for p in points])
    export = session.get(central_server.url("/explorer/export.csv?" + query), timeout=30)
    assert export.status_code == 200, export.text[:300]
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0] == ["ts", "site", "meter", "point", "value", "unit"]
    by_point = {r[3]: r for r in rows[1:]}
    assert set(by_point) == {"'+SUM(A1)", "'\tpower"}
    first = by_point["'+SUM(A1)"]
    assert first[1] == '\'=HYPERLINK("http://evil.example","x")'
    assert first[4] == "-5.5"  # a number stays a number
    assert first[5] == "'@kWh" and by_point["'\tpower"][5] == "'-kW"
    for row in rows[1:]:
        for cell in (row[1], row[2], row[3], row[5]):
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row


def test_odd_digits_in_the_explorer_and_the_meter_form_are_refused_not_a_500(
    central_server: CentralServer,
) -> None:
    site = central_server.create_site("plant-1")
    central_server.create_user("op@example.com", PASSWORD, "operator")
    session = signed_in(central_server, "op@example.com", PASSWORD)
    for query in ("point=²", "point=" + "9" * 30, "site=²", "point=\u0661"):
        page = session.get(central_server.url(f"/explorer?site={site.site_id}&{query}"), timeout=10)
        assert page.status_code < 500, (query, page.status_code)
    form_url = central_server.url(f"/sites/{site.site_id}/meters/new")
    for instance in ("²", "9" * 5000, "\u0661\u0662"):
        answer = session.post(
            form_url,
            data={
                "csrf_token": csrf_token(session, form_url),
                "external_id": "main",
                "address": "127.0.0.1:47808",
                "device_instance": instance,
                "point_name": "energy_kwh",
                "point_object": "analog-input,1",
            },
            timeout=10,
        )
        assert answer.status_code == 422 or answer.status_code == 400, (
            instance[:10],
            answer.status_code,
        )
        assert "device_instance" in answer.text
    with psycopg.connect(central_server.db_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM meters") == 0


def test_site_page_shows_heartbeat_history_from_its_summary_not_the_stored_bodies(
    central_server: CentralServer,
) -> None:
    site = central_server.create_site("plant-1")
    central_server.add_meter(site.site_id, "main", [("energy_kwh", "analog-input,1", "kWh")])
    send_heartbeat(central_server, site.api_key, backlog=4321, unreachable=("main",))
    # history rows as an older, unvalidated central stored them: the page must not parse them
    with psycopg.connect(central_server.db_url) as conn:
        conn.execute("""UPDATE heartbeats SET body = '{"backlog": "x", "meters": 5}'""")
    central_server.create_user("viewer@example.com", PASSWORD, "viewer")
    session = signed_in(central_server, "viewer@example.com", PASSWORD)
    page = session.get(central_server.url(f"/sites/{site.site_id}"), timeout=10)
    assert page.status_code == 200, page.text[:300]
    table = page.text.split('id="heartbeats"')[1].split("</table>")[0]
    assert "4,321" in table or "4321" in table
    assert "1 / 1" in table
