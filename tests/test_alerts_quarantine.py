"""The "readings dropped or quarantined" rule hears quarantined readings: an appliance (real
edge database) quarantines a reading central refused, its next heartbeat carries the count to
a real central (gunicorn), and the tenant's default rule fires on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from appliance.sync import heartbeat
from appliance.sync.pump import drain
from central.alerts import evaluate as evaluation
from central.settings import CentralSettings
from tests.alert_helpers import (
    T0,
    Fleet,
)
from tests.harness import (
    scalar,
)
from tests.sync_helpers import (
    add_readings,
)


def _firing(db_url: str, site_id: int, now: datetime) -> list[tuple[str, str]]:
    with psycopg.connect(db_url) as conn:
        assert evaluation.run(conn, CentralSettings(database_url=db_url), now).ran
        return [
            (kind, state)
            for kind, state in conn.execute(
                """SELECT r.kind, i.state FROM alert_instances i
                   JOIN alert_rules r ON r.id = i.rule_id
                   WHERE i.site_id = %s AND r.kind = 'dropped_readings'""",
                (site_id,),
            )
        ]


def test_an_appliance_quarantining_readings_fires_the_dropped_or_quarantined_rule(
    enrolled,
) -> None:
    central, site, settings = enrolled
    add_readings(settings.database_url, 30)
    assert heartbeat.send(settings) is not None  # the site reports: nothing quarantined
    with psycopg.connect(central.db_url) as conn:
        # only this rule, firing at once: the test is about what it sees
        conn.execute("UPDATE alert_rules SET enabled = (kind = 'dropped_readings'), for_s = 0")
        assert (
            scalar(
                conn,
                "SELECT quarantined_total FROM site_health WHERE site_id = %s",
                (site.site_id,),
            )
            == 0
        )
    assert _firing(central.db_url, site.site_id, datetime.now(UTC)) == []

    # a clock gone wrong: central refuses the reading, the appliance quarantines it
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "UPDATE readings SET ts = '2100-01-01Z' WHERE id = (SELECT min(id) FROM readings)"
        )
    result = drain(settings)
    assert (result.rejected, result.accepted) == (1, 29)

    body = heartbeat.send(settings)
    assert body is not None and body["quarantined_readings"] == 1
    assert body["dropped_readings"] == 0
    with psycopg.connect(central.db_url) as conn:
        row = conn.execute(
            "SELECT quarantined_total, quarantined_increased_at IS NOT NULL, dropped_total"
            " FROM site_health WHERE site_id = %s",
            (site.site_id,),
        ).fetchone()
    assert row == (1, True, 0)
    assert _firing(central.db_url, site.site_id, datetime.now(UTC)) == [
        ("dropped_readings", "firing")
    ]


def test_a_heartbeat_without_the_count_keeps_what_central_knows(central_db_url: str) -> None:
    """An older appliance (or one downgraded) sends no quarantine count: central neither resets
    its site's total to 0 nor takes that for news; a growing count is news."""
    fleet = Fleet(central_db_url).setup()
    site_id = fleet.site("A")
    t1 = T0 + timedelta(minutes=5)
    t2 = T0 + timedelta(minutes=10)
    fleet.heartbeat("A", T0, quarantined_readings=3)
    fleet.heartbeat("A", t1)  # field absent
    with psycopg.connect(central_db_url) as conn:
        query = (
            "SELECT quarantined_total, quarantined_increased_at FROM site_health WHERE site_id = %s"
        )
        assert conn.execute(query, (site_id,)).fetchone() == (3, None)
        fleet.heartbeat("A", t2, quarantined_readings=4)
        assert conn.execute(query, (site_id,)).fetchone() == (4, t2)
