"""The two settings that open a ``/metrics`` endpoint, declared once for central and the
appliance (same names, same words), and the check that stops a start on a bad address list.
Kept apart from ``common.metrics_access`` so that the daemons which only load settings (collector,
worker, MCP) do not import Flask for them."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from common import config


def allow_from_setting() -> Any:
    return config.setting(
        "",
        help="addresses or networks (comma-separated, e.g. 127.0.0.1,10.0.0.0/8) that may read "
        "/metrics without a token; /metrics is refused to everyone else",
    )


def token_setting() -> Any:
    return config.setting(
        None,
        help="bearer token that opens /metrics from any address (Authorization: Bearer …)",
        secret=True,
    )


def networks(text: str) -> list[IPv4Network | IPv6Network]:
    """The networks of ``metrics_allow_from``; ValueError names the entry that is not one."""
    found = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        try:
            found.append(ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return found


def check_setting(allow_from: str) -> None:
    """Stop the start on a ``metrics_allow_from`` that is not addresses or networks."""
    try:
        networks(allow_from)
    except ValueError as err:
        raise config.ConfigError(
            f"METERIT_METRICS_ALLOW_FROM={allow_from!r}: {err}; expected "
            "comma-separated addresses or networks such as 127.0.0.1,10.0.0.0/8"
        ) from None
