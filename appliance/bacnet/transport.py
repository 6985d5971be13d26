"""The client's bacpypes3 application and UDP socket: local address parsing, binding checks,
receive-buffer sizing, and an application layer that hands RPM answers up undecoded.

Kept apart from :mod:`appliance.bacnet.client` so the request logic there does not mix with
socket and stack plumbing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from bacpypes3.apdu import APDU, ComplexAckPDU  # type: ignore[import-untyped]
from bacpypes3.app import Application  # type: ignore[import-untyped]
from bacpypes3.appservice import ApplicationServiceAccessPoint  # type: ignore[import-untyped]
from bacpypes3.comm import ServiceAccessPoint, bind  # type: ignore[import-untyped]
from bacpypes3.local.device import DeviceObject  # type: ignore[import-untyped]
from bacpypes3.local.networkport import NetworkPortObject  # type: ignore[import-untyped]
from bacpypes3.netservice import (  # type: ignore[import-untyped]
    NetworkServiceAccessPoint,
    NetworkServiceElement,
)

from appliance.bacnet.address import parse_local_address
from appliance.bacnet.codec import SERVICE_READ_PROPERTY, SERVICE_READ_PROPERTY_MULTIPLE
from appliance.bacnet.readrange import SERVICE_READ_RANGE

logger = logging.getLogger(__name__)

# Answers to a whole poll cycle can arrive in one burst while the event loop is busy decoding;
# the default ~200 KiB buffer overflows with a few hundred meters and the kernel drops answers
# silently (the request then times out and is retried). 4 MiB holds thousands of answers.
RECEIVE_BUFFER = 4 * 1024 * 1024
# What one full-size (1476-byte) answer takes of the receive buffer in the kernel's accounting
# (payload plus socket-buffer overhead); used to bound requests in flight to what fits.
DATAGRAM_COST = 2304


def bacpypes_address(text: str) -> str:
    """The local address as bacpypes3 wants it, with the port spelled out.

    A prefix on the wildcard address is dropped: there is no subnet to broadcast to (bacpypes3
    would compute 0.0.0.255 and retry binding a listener there forever), and a socket bound to
    0.0.0.0 already receives broadcasts. Broadcast Who-Is needs the interface's own IP/PREFIX."""
    ip, prefix, port = parse_local_address(text)
    if prefix is not None and ip != "0.0.0.0":
        return f"{ip}/{prefix}:{port}"
    return f"{ip}:{port}"


def port_is_free(host: str, port: int) -> bool:
    """bacpypes3 binds with SO_REUSEPORT, so a second process on the same port silently shares
    (and steals) its traffic; binding without it first tells us whether anyone is there."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def wait_bound(app: Any, timeout: float = 5.0) -> None:
    """Block until the app's UDP socket is bound (bacpypes3 binds in a background task and retries
    forever on error, so without this a bad address hangs silently)."""
    for link_layer in app.link_layers.values():
        await asyncio.wait_for(link_layer.server._local_transport_ready.wait(), timeout)


def has_broadcast(app: Any) -> bool:
    """Whether the app's link layer knows a subnet broadcast address (it does only when bound
    with IP/PREFIX)."""
    return any(
        getattr(link_layer.server, "broadcast_address", None)
        # a foreign device broadcasts through its BBMD
        or getattr(link_layer, "bbmdAddress", None) is not None
        for link_layer in app.link_layers.values()
    )


def enlarge_receive_buffer(app: Any, size: int = RECEIVE_BUFFER) -> int:
    """Ask for a ``size`` receive buffer on the app's unicast socket(s); returns the capacity the
    kernel granted, in its own accounting (it doubles what is asked for to cover overhead, and
    caps the request at net.core.rmem_max unless the process may force it)."""
    granted = 0
    for link_layer in app.link_layers.values():
        transport = link_layer.server.local_transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            continue
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        try:
            if force is None:
                raise PermissionError
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if granted // 2 < size:
            logger.info(
                "UDP receive buffer is %d KiB, not the %d KiB asked for (net.core.rmem_max); "
                "requests in flight are bounded to what it holds",
                granted // 2048,
                size // 1024,
            )
    return granted


def in_flight_limit(receive_capacity: int, wanted: int) -> int:
    """Requests in flight whose answers, arriving all at once, still fit the receive buffer:
    past that the kernel drops answers silently and each costs a timeout and a retry."""
    return max(8, min(wanted, receive_capacity // DATAGRAM_COST))


RAW_SERVICES = frozenset(
    {SERVICE_READ_PROPERTY, SERVICE_READ_PROPERTY_MULTIPLE, SERVICE_READ_RANGE}
)


class RawAckServiceAccessPoint(ApplicationServiceAccessPoint):  # type: ignore[misc]
    """Hands ReadProperty(Multiple) and ReadRange ACKs to the client as bytes; see
    :mod:`appliance.bacnet.codec` for why. Errors, rejects, aborts and other services are decoded by bacpypes3 as before."""

    async def sap_response(self, apdu: APDU) -> None:
        if isinstance(apdu, ComplexAckPDU) and apdu.apduService in RAW_SERVICES:
            await ServiceAccessPoint.sap_response(self, apdu)
            return
        await super().sap_response(apdu)


def build_application(
    device: DeviceObject,
    port: NetworkPortObject,
    app_class: type[Application] = Application,
    asap_class: type[ApplicationServiceAccessPoint] = ApplicationServiceAccessPoint,
) -> Any:
    """``Application.from_object_list`` with our own service access point class (bacpypes3
    hard-codes its own there)."""
    app = app_class()
    app.asap = asap_class(device, app.device_info_cache)
    app.nsap = NetworkServiceAccessPoint()
    app.nse = NetworkServiceElement()
    bind(app.nse, app.nsap)
    bind(app, app.asap, app.nsap)
    app.add_object(device)
    app.add_object(port)
    return app
