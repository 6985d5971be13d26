"""A BBMD for tests: ``python -m tests.bacnet_bbmd IP/PREFIX:PORT``. It accepts foreign-device
registrations and re-broadcasts what a foreign device asks it to on its own subnet (and forwards
that subnet's broadcasts to the foreign devices), as a site's BBMD does for an appliance on
another subnet. bacpypes3's own BBMD link layer, in one application.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from bacpypes3.app import Application  # type: ignore[import-untyped]
from bacpypes3.basetypes import BDTEntry, IPMode  # type: ignore[import-untyped]
from bacpypes3.local.device import DeviceObject  # type: ignore[import-untyped]
from bacpypes3.local.networkport import NetworkPortObject  # type: ignore[import-untyped]

from appliance.bacnet.transport import wait_bound

BBMD_INSTANCE = 7998


async def serve(address: str) -> None:
    device = DeviceObject(
        objectIdentifier=("device", BBMD_INSTANCE), objectName="test-bbmd", vendorIdentifier=999
    )
    port = NetworkPortObject(
        address, objectIdentifier=("network-port", 1), objectName="NetworkPort-1"
    )
    port.bacnetIPMode = IPMode.bbmd
    port.bbmdAcceptFDRegistrations = True
    port.bbmdForeignDeviceTable = []
    # a one-BBMD site: the table holds only itself
    port.bbmdBroadcastDistributionTable = [BDTEntry(address.replace("/24", ""))]
    app = Application.from_object_list([device, port])
    await wait_bound(app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger(__name__).warning("bbmd up at %s", address)
    try:
        await stop.wait()
    finally:
        app.close()


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    asyncio.run(serve(argv[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
