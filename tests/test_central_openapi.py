"""The OpenAPI document is kept true: schemathesis drives the running server from it.

Every documented operation gets generated requests, valid and invalid, sent with a real site
key and a real admin token; no answer may be a 5xx, and answers must match the documented
status codes, content types and schemas. (Driven through hypothesis directly: schemathesis's
pytest plugin does not work with this pytest version.)
"""

from __future__ import annotations

from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from tests.central_fixtures import CentralServer

PASSWORD = "correct horse battery"
EXAMPLES = 6  # per operation and mode: the whole document runs in well under a minute


def http_can_carry(headers: dict[str, Any]) -> bool:
    """Whether every header value is one HTTP allows (no control characters but tab). Negative
    generation sometimes makes one that is not; gunicorn then refuses the request itself, with
    its own 400 page, before the app sees it, which is not what the document describes."""
    return all(
        not any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in str(value))
        for value in headers.values()
    )


def test_api_matches_its_openapi_document(make_central_server: Any) -> None:
    server: CentralServer = make_central_server(METERIT_RATE_LIMIT="100000/minute")
    site = server.create_site("plant-1")
    server.add_meter(site.site_id, "main", [("energy_kwh", "analog-input,1", "kWh")])
    server.create_user("admin@example.com", PASSWORD, "admin")
    token = requests.post(
        server.url("/api/v1/auth/token"), auth=("admin@example.com", PASSWORD), timeout=10
    ).json()["token"]
    auth = {"X-API-Key": site.api_key, "Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(server.url("/api/v1/openapi.json"))
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    tested = 0
    calls: list[int] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the document does not load: {result}"
        operation = result.ok()
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                # generated headers are kept, but the credentials are always the real ones
                headers = {**(case.headers or {}), **auth}
                assume(http_can_carry(headers))
                response = case.call_and_validate(
                    base_url=server.base_url, headers=headers, checks=checks
                )
                calls.append(response.status_code)

            try:
                run()
            except Unsatisfiable:
                # an operation without inputs has no invalid variant to generate
                assert mode is GenerationMode.NEGATIVE, operation.label
        tested += 1
    assert tested >= 15
    assert len(calls) > 100 and any(code < 300 for code in calls), calls
