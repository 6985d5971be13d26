"""A BACnet/IP router between two IP subnets, for tests: ``python -m tests.bacnet_router
IP/PREFIX:PORT NET IP/PREFIX:PORT NET``. bacpypes3 routes between two network ports of one
application, as a site's field router does between the building network and a meter network.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from bacpypes3.app import Application  # type: ignore[import-untyped]
from bacpypes3.local.device import DeviceObject  # type: ignore[import-untyped]
from bacpypes3.local.networkport import NetworkPortObject  # type: ignore[import-untyped]

from appliance.bacnet.transport import wait_bound

ROUTER_INSTANCE = 7999


async def serve(ports: list[tuple[str, int]]) -> None:
    device = DeviceObject(
        objectIdentifier=("device", ROUTER_INSTANCE),
        objectName="test-router",
        vendorIdentifier=999,
    )
    port_objects = [
        NetworkPortObject(
            address,
            objectIdentifier=("network-port", n),
            objectName=f"port-{n}",
            networkNumber=net,
            networkNumberQuality="configured",
        )
        for n, (address, net) in enumerate(ports, 1)
    ]
    app = Application.from_object_list([device, *port_objects])
    await wait_bound(app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger(__name__).warning("router up between %s", ports)
    try:
        await stop.wait()
    finally:
        app.close()


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    pairs = [(argv[i], int(argv[i + 1])) for i in range(0, len(argv), 2)]
    asyncio.run(serve(pairs))


if __name__ == "__main__":
    main(sys.argv[1:])
