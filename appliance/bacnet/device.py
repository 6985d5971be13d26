"""The device interface the poll loop and discovery depend on (DESIGN convention 5).

The poll loop only sees :class:`DeviceClient` and these plain dataclasses, so it can be tested
and reasoned about without the BACnet stack; :mod:`appliance.bacnet.client` implements it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from bacpypes3.basetypes import PropertyIdentifier  # type: ignore[import-untyped]
from bacpypes3.primitivedata import ObjectType  # type: ignore[import-untyped]

from common.meter_spec import WILDCARD_INSTANCE

_OBJECT_ID_RE = re.compile(r"^([a-z][a-z0-9-]*),(\d+)$")
WILDCARD_DEVICE = WILDCARD_INSTANCE  # "any device": how the client asks a device its own id


class DeviceError(Exception):
    """The device as a whole could not be read; the message says why in one line."""


class DeviceUnreachable(DeviceError):
    """No answer at all (offline, wrong address, or a firewall)."""


class DeviceNotFound(DeviceError):
    """Who-Is for a device instance got no I-Am."""


class NoBroadcast(DeviceError):
    """A broadcast Who-Is was asked for, but the local address has no subnet to broadcast to."""


@dataclasses.dataclass(frozen=True, order=True)
class PointRef:
    """One property of one object, e.g. analog-input,1 present-value."""

    object_type: str
    instance: int
    prop: str = "present-value"
    index: int | None = None

    @classmethod
    def parse(cls, object_id: str, prop: str = "present-value") -> PointRef:
        object_type, instance = parse_object_id(object_id)
        PropertyIdentifier(prop)  # raises ValueError on an unknown property name
        return cls(object_type, instance, prop)

    @property
    def object_id(self) -> str:
        return f"{self.object_type},{self.instance}"

    def __str__(self) -> str:
        suffix = "" if self.index is None else f"[{self.index}]"
        return f"{self.object_id} {self.prop}{suffix}"


def parse_object_id(text: str) -> tuple[str, int]:
    """'analog-input,1' -> ('analog-input', 1); raises ValueError naming what is wrong."""
    match = _OBJECT_ID_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not TYPE,INSTANCE such as analog-input,1")
    object_type, instance = match.group(1), int(match.group(2))
    try:
        ObjectType(object_type)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{object_type!r} is not a BACnet object type") from err
    if instance > WILDCARD_DEVICE:
        raise ValueError(f"instance {instance} is above {WILDCARD_DEVICE}")
    return object_type, instance


@dataclasses.dataclass(frozen=True)
class PointError:
    """Why one point has no value: a BACnet error code ('unknown-object'), 'timeout', ..."""

    code: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


@dataclasses.dataclass(frozen=True)
class DeviceTarget:
    """Where a device is: 'ip:port', 'net:mac' / 'net:ip:port' behind a router, or only its
    instance (then found with Who-Is and cached)."""

    address: str | None = None
    device_instance: int | None = None

    def __post_init__(self) -> None:
        if self.address is None and self.device_instance is None:
            raise ValueError("a device target needs an address or a device instance")

    def __str__(self) -> str:
        if self.address and self.device_instance is not None:
            return f"device {self.device_instance} at {self.address}"
        return self.address or f"device {self.device_instance}"


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    device_instance: int
    address: str
    max_apdu: int
    segmentation: bool  # can send segmented answers
    vendor_id: int | None = None
    vendor_name: str | None = None
    object_name: str | None = None
    unreadable: tuple[str, ...] = ()  # "vendor-name: unknown-property", for discovery's report


@dataclasses.dataclass(frozen=True)
class DiscoveredDevice:
    device_instance: int
    address: str
    max_apdu: int
    segmentation: bool
    vendor_id: int


@dataclasses.dataclass(frozen=True)
class ObjectList:
    """A device's objects, and the elements of its object list it would not give."""

    objects: list[str]
    unreadable: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class ObjectDescription:
    object_id: str
    name: str | None
    units: str | None
    description: str | None
    unreadable: tuple[str, ...] = ()  # "units: unknown-property", for discovery's report


# a change-of-value notification's value for one point, as it arrives
CovCallback = Callable[["PointRef", float], None]


class DeviceClient(Protocol):
    """What the collector and discovery need from BACnet, nothing more."""

    async def read_points(
        self, target: DeviceTarget, points: list[PointRef]
    ) -> dict[PointRef, float | PointError]: ...

    async def read_device_info(self, target: DeviceTarget) -> DeviceInfo: ...

    async def who_is(
        self, low: int | None = None, high: int | None = None, address: str | None = None
    ) -> list[DiscoveredDevice]: ...

    async def read_object_list(self, target: DeviceTarget) -> ObjectList: ...

    async def describe_objects(
        self, target: DeviceTarget, object_ids: Sequence[str]
    ) -> list[ObjectDescription]: ...

    async def trend_logs(self, target: DeviceTarget) -> dict[PointRef, str]:
        """Which of the device's trend logs records which point: {point: "trend-log,N"}."""
        ...

    async def read_trend(
        self, target: DeviceTarget, trend_log: str, since: datetime, until: datetime
    ) -> list[tuple[datetime, float]]:
        """The trend log's numeric records with since < timestamp < until (UTC), oldest
        first; raises DeviceError when the device will not give them."""
        ...

    async def subscribe_cov(
        self,
        target: DeviceTarget,
        ref: PointRef,
        lifetime_s: int,
        confirmed: bool,
        on_value: CovCallback,
    ) -> None:
        """SubscribeCOV to ``ref``'s object for ``lifetime_s``; again for the same point renews
        it. Each notification's value goes to ``on_value``; raises DeviceError on refusal."""
        ...
