"""Foreign-device registration with a BBMD, to reach meters on other IP subnets.

Broadcasts (Who-Is, I-Am) do not cross IP routers. A site's BBMD re-broadcasts on its subnet
what a registered foreign device sends it, and forwards that subnet's broadcasts back. bacpypes3
registers, and renews when the time-to-live runs out (the BBMD keeps an entry 30 s past it, so
the renewal comes before the entry expires); this module sets it up, and says in one journal line
when the registration is made, fails or is lost, never once per retry.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from bacpypes3.basetypes import HostNPort, IPMode  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)

BACNET_PORT = 47808
FIRST_WAIT_S = 5.0  # how long start-up waits for the first registration
CHECK_S = 2.0


def parse_host_port(text: str) -> tuple[str, int]:
    """'IP[:PORT]' -> (ip, port); raises ValueError saying what is expected."""
    host, _, port_text = text.strip().partition(":")
    try:
        ip = str(ipaddress.IPv4Address(host))
        port = int(port_text) if port_text else BACNET_PORT
    except ValueError:
        raise ValueError(f"{text!r} is not IP[:PORT] such as 192.168.2.1:47808") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is not 1..65535")
    return ip, port


def foreign_device(port_object: Any, bbmd: str, ttl_s: int) -> None:
    """Make the network port register with ``bbmd`` once it is bound."""
    ip, port = parse_host_port(bbmd)
    port_object.bacnetIPMode = IPMode.foreign
    port_object.fdBBMDAddress = HostNPort(f"{ip}:{port}")
    port_object.fdSubscriptionLifetime = ttl_s


def _status(app: Any) -> int:
    """bacpypes3's registration status: 0 registered, -1 asking, -2 not asked, >0 the BBMD's
    refusal (a BVLC result code)."""
    for link_layer in app.link_layers.values():
        status = getattr(link_layer, "bbmdRegistrationStatus", None)
        if status is not None:
            return int(status)
    return -2


def _why(status: int) -> str:
    if status == -1:
        return "no answer"
    if status > 0:
        return f"refused with result code {status:#06x}"
    return "not registered"


def _log(bbmd: str, ttl_s: int, status: int) -> None:
    if status == 0:
        logger.info(
            "registered with BBMD %s as a foreign device (renewed every %d s); meters on other "
            "subnets are reached through it",
            bbmd,
            ttl_s,
        )
    else:
        logger.error(
            "foreign-device registration with BBMD %s failed (%s); devices on other subnets "
            "stay unreachable — check METERIT_BACNET_BBMD (--bbmd for discover), that the BBMD "
            "answers on that address and accepts foreign devices",
            bbmd,
            _why(status),
        )


async def registered(app: Any, bbmd: str, ttl_s: int, wait_s: float = FIRST_WAIT_S) -> bool:
    """Wait up to ``wait_s`` for the first registration; says in one line how it went."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while _status(app) != 0 and loop.time() < deadline:
        await asyncio.sleep(0.05)
    status = _status(app)
    _log(bbmd, ttl_s, status)
    return status == 0


async def watch(app: Any, bbmd: str, ttl_s: int, ok: bool) -> None:
    """One line each time the registration is lost or made again, never one per retry."""
    while True:
        await asyncio.sleep(CHECK_S)
        status = _status(app)
        if (status == 0) != ok:
            ok = status == 0
            _log(bbmd, ttl_s, status)
