"""``meterit-appliance discover``: find the meters on the LAN and propose a meters file.

Who-Is (broadcast, or directed at one address), then each device's object list, names and units.
The output is the file ``meterit-appliance meters load`` reads, for the installer to trim.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from pathlib import Path

from appliance.bacnet import foreign
from appliance.bacnet.client import (
    BacpypesClient,
    ClientConfig,
    DeviceClient,
    DeviceError,
    DeviceTarget,
    DiscoveredDevice,
)
from appliance.meters_file import dump_meters
from common.logs import setup_logging
from common.meter_spec import MeterSpec, PointSpec

logger = logging.getLogger(__name__)

# object types that carry a meter's measurements
MEASUREMENT_TYPES = ("analog-input", "analog-value", "accumulator", "pulse-converter")

# BACnet engineering units -> the short unit shown to people and sent to central
SHORT_UNITS = {
    "kilowatt-hours": "kWh",
    "watt-hours": "Wh",
    "megawatt-hours": "MWh",
    "kilowatts": "kW",
    "watts": "W",
    "megawatts": "MW",
    "volts": "V",
    "kilovolts": "kV",
    "amperes": "A",
    "milliamperes": "mA",
    "hertz": "Hz",
    "no-units": "",
    "percent": "%",
    "kilovolt-amperes": "kVA",
    "kilovolt-amperes-reactive": "kvar",
    "volt-amperes": "VA",
    "volt-amperes-reactive": "var",
    "kilovolt-ampere-hours": "kVAh",
    "kilovolt-ampere-hours-reactive": "kvarh",
    "degrees-celsius": "°C",
    "cubic-meters": "m³",
}


def point_name(object_name: str | None, object_id: str, taken: set[str]) -> str:
    """A stable, readable data-point name: the object's name in snake case, unique per meter."""
    base = re.sub(r"[^a-z0-9]+", "_", (object_name or object_id).lower()).strip("_") or "point"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


async def describe_device(
    client: DeviceClient, device: DiscoveredDevice
) -> tuple[MeterSpec, list[str]]:
    """The device as a meters-file entry, and what of it could not be read (for the report)."""
    target = DeviceTarget(device.address, device.device_instance)
    info = await client.read_device_info(target)
    unreadable = [f"device {p}" for p in info.unreadable]
    object_list = await client.read_object_list(target)
    unreadable += object_list.unreadable
    objects = [oid for oid in object_list.objects if oid.split(",")[0] in MEASUREMENT_TYPES]
    taken: set[str] = set()
    points: list[PointSpec] = []
    for obj in await client.describe_objects(target, objects):
        unreadable += [f"{obj.object_id} {p}" for p in obj.unreadable]
        points.append(
            PointSpec(
                name=point_name(obj.name, obj.object_id, taken),
                object=obj.object_id,
                property="present-value",
                unit=SHORT_UNITS.get(obj.units or "no-units", obj.units or ""),
            )
        )
    name = info.object_name or f"device {device.device_instance}"
    meter = MeterSpec(
        external_id=point_name(name, str(device.device_instance), set()),
        name=name,
        address=device.address,
        device_instance=device.device_instance,
        points=tuple(points),
    )
    return meter, unreadable


async def discover(
    client: DeviceClient, low: int | None, high: int | None, address: str | None
) -> list[MeterSpec]:
    devices = sorted(await client.who_is(low, high, address), key=lambda d: d.device_instance)
    logger.info("Who-Is answered by %d device(s)", len(devices))
    meters: list[MeterSpec] = []
    for n, device in enumerate(devices, 1):
        try:
            meter, unreadable = await describe_device(client, device)
        except Exception as err:  # one odd device must not stop the others
            reason = str(err) if isinstance(err, DeviceError) else f"{type(err).__name__}: {err}"
            logger.warning(
                "[%d/%d] device %s at %s skipped: %s",
                n,
                len(devices),
                device.device_instance,
                device.address,
                reason,
            )
            continue
        if unreadable:
            logger.warning(
                "[%d/%d] device %s at %s: could not read %s; the proposal leaves those out or "
                "blank, check them on the device",
                n,
                len(devices),
                device.device_instance,
                device.address,
                "; ".join(unreadable),
            )
        logger.info(
            "[%d/%d] device %s at %s: %r, %d point(s)",
            n,
            len(devices),
            device.device_instance,
            device.address,
            meter.name,
            len(meter.points),
        )
        meters.append(meter)
    return meters


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance discover",
        description="Find BACnet devices and write a proposed meters file.",
    )
    parser.add_argument("--low", type=int, help="lowest device instance to ask for")
    parser.add_argument("--high", type=int, help="highest device instance to ask for")
    parser.add_argument("--address", help="send Who-Is to this address instead of broadcasting")
    parser.add_argument(
        "--local-address",
        default="0.0.0.0:47808",
        help="local BACnet/IP address to bind, IP[/PREFIX][:PORT] (default %(default)s)",
    )
    parser.add_argument(
        "--bbmd",
        help="register with this BBMD (IP[:PORT]) as a foreign device first, to find meters on "
        "other IP subnets",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for I-Am")
    parser.add_argument("--output", "-o", default="-", help="meters file to write (- = stdout)")
    return parser


async def _run(args: argparse.Namespace) -> list[MeterSpec]:
    if args.bbmd is not None:
        foreign.parse_host_port(args.bbmd)  # a bad value: one line, before binding anything
    config = ClientConfig(
        local_address=args.local_address, who_is_timeout_s=args.timeout, bbmd_address=args.bbmd
    )
    async with BacpypesClient(config) as client:
        return await discover(client, args.low, args.high, args.address)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    setup_logging("meterit-discover")
    try:
        meters = asyncio.run(_run(args))
    except (OSError, ValueError) as err:
        logger.error("discovery cannot start: %s", err)
        return 1
    except DeviceError as err:
        logger.error("discovery failed: %s", err)
        return 1
    text = dump_meters(meters)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        logger.info(
            "wrote %d meter(s) to %s; edit it, then 'meterit-appliance meters load %s'",
            len(meters),
            args.output,
            args.output,
        )
    return 0 if meters else 1
