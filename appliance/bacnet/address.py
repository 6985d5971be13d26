"""The collector's local BACnet/IP address as settings spell it, ``IP[/PREFIX][:PORT]``.

Apart from ``transport`` so that what only needs the port (``doctor``, the local UI's Health
page) does not load bacpypes3.
"""

from __future__ import annotations

import ipaddress
import re

BACNET_PORT = 47808

_LOCAL_RE = re.compile(r"^(?P<ip>[0-9.]+)(?:/(?P<prefix>\d{1,2}))?(?::(?P<port>\d{1,5}))?$")


def parse_local_address(text: str) -> tuple[str, int | None, int]:
    """'IP[/PREFIX][:PORT]' -> (ip, prefix or None, port); the port defaults to 47808.

    The prefix only tells bacpypes3 the subnet's broadcast address; binding uses the IP."""
    match = _LOCAL_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not IP[/PREFIX][:PORT] such as 192.168.1.10/24:47808")
    try:
        ip = str(ipaddress.IPv4Address(match["ip"]))
    except ValueError as err:
        raise ValueError(f"{text!r}: {match['ip']!r} is not an IPv4 address") from err
    prefix = int(match["prefix"]) if match["prefix"] is not None else None
    if prefix is not None and prefix > 32:
        raise ValueError(f"{text!r}: prefix /{prefix} is above /32")
    port = int(match["port"]) if match["port"] is not None else BACNET_PORT
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is not 1..65535")
    return ip, prefix, port
