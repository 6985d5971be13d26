"""The bacpypes3 implementation of the device interface (:mod:`appliance.bacnet.device`).

It builds requests from bacpypes3's typed objects (BAC0's string-parsed ``readMultiple``
mis-parses generated requests), sizes each ReadPropertyMultiple so request and answer fit what
the device accepts, and degrades per device: RPM rejected -> ReadProperty, answer too big ->
smaller chunks, one bad point -> an error for that point only.

The poll path is built for throughput: each device's requests are planned and encoded once and
reused every cycle, answers are decoded from bytes (:mod:`appliance.bacnet.codec`), and the
socket's receive buffer is sized for a whole cycle's burst of answers
(:mod:`appliance.bacnet.transport`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bacpypes3.apdu import (  # type: ignore[import-untyped]
    AbortPDU,
    ComplexAckPDU,
    ConfirmedRequestPDU,
    ErrorPDU,
    ErrorRejectAbortNack,
    ReadPropertyMultipleRequest,
    ReadPropertyRequest,
    ReadRangeRequest,
    RejectPDU,
    SubscribeCOVRequest,
)
from bacpypes3.app import Application  # type: ignore[import-untyped]
from bacpypes3.basetypes import (  # type: ignore[import-untyped]
    EngineeringUnits,
    PropertyIdentifier,
    PropertyReference,
    Range,
    RangeByPosition,
    ReadAccessSpecification,
)
from bacpypes3.local.device import DeviceObject  # type: ignore[import-untyped]
from bacpypes3.local.networkport import NetworkPortObject  # type: ignore[import-untyped]
from bacpypes3.pdu import Address  # type: ignore[import-untyped]
from bacpypes3.primitivedata import ObjectIdentifier, ObjectType  # type: ignore[import-untyped]

from appliance.bacnet import codec, foreign, readrange, sizing, speedups
from appliance.bacnet.address import parse_local_address
from appliance.bacnet.cov import MAX_PROCESS_ID, CovReceiver
from appliance.bacnet.device import (
    WILDCARD_DEVICE,
    CovCallback,
    DeviceClient,
    DeviceError,
    DeviceInfo,
    DeviceNotFound,
    DeviceTarget,
    DeviceUnreachable,
    DiscoveredDevice,
    NoBroadcast,
    ObjectDescription,
    ObjectList,
    PointError,
    PointRef,
    parse_object_id,
)
from appliance.bacnet.transport import (
    RawAckServiceAccessPoint,
    bacpypes_address,
    build_application,
    enlarge_receive_buffer,
    has_broadcast,
    in_flight_limit,
    port_is_free,
    wait_bound,
)

logger = logging.getLogger(__name__)

# the interface types are re-exported: callers import the client and its types from one place
__all__ = [
    "WILDCARD_DEVICE",
    "BacpypesClient",
    "ClientConfig",
    "ClientStats",
    "DeviceClient",
    "DeviceError",
    "DeviceInfo",
    "DeviceNotFound",
    "DeviceTarget",
    "DeviceUnreachable",
    "DiscoveredDevice",
    "NoBroadcast",
    "ObjectDescription",
    "ObjectList",
    "PointError",
    "PointRef",
    "parse_object_id",
]


@dataclasses.dataclass(frozen=True)
class ClientConfig:
    local_address: str = "0.0.0.0:47808"
    device_instance: int = 4194300
    max_apdu: int = 1476
    timeout_base_s: float = 1.5
    timeout_per_kb_s: float = 1.0  # added per KiB of request + expected answer
    retries: int = 1
    max_in_flight: int = 64
    max_in_flight_per_device: int = 2
    who_is_timeout_s: float = 2.0
    who_is_address: str | None = None  # where instance look-ups go; None = global broadcast
    # a BBMD to register with as a foreign device (IP[:PORT]), for meters on other subnets
    bbmd_address: str | None = None
    bbmd_ttl_s: int = 900
    # a device found refusing ReadPropertyMultiple is asked again this long after (firmware
    # gets upgraded, and a refusal may have been a bad moment rather than a missing service)
    rpm_reprobe_s: float = 24 * 3600.0


@dataclasses.dataclass
class ClientStats:
    """Counters the benchmark and tests read to see what went over the wire."""

    rpm_requests: int = 0
    rp_requests: int = 0
    read_range_requests: int = 0
    cov_subscribe_requests: int = 0
    timeouts: int = 0


@dataclasses.dataclass(frozen=True)
class _Chunk:
    """One planned ReadPropertyMultiple, encoded once and sent every cycle: building and encoding
    bacpypes3's typed request objects per poll cost more CPU than the poll itself."""

    refs: list[PointRef]
    template: Any  # the encoded ConfirmedRequestPDU; copied per send (invoke ids differ)
    wanted: dict[tuple[int, int, int, int | None], PointRef]
    timeout: float

    def request(self, destination: Address) -> Any:
        pdu = ConfirmedRequestPDU()
        pdu.update(self.template)
        pdu.put_data(self.template.pduData)
        pdu.pduDestination = destination
        return pdu


@dataclasses.dataclass
class _DeviceState:
    address: Address
    info: DeviceInfo | None = None
    rpm_refused_at: datetime | None = None  # when it last refused ReadPropertyMultiple
    utc_offset_min: int | None = None  # its clock's offset, read once for trend logs
    reprobing: bool = False  # RPM is being tried again after a refusal
    max_points: int = 10_000  # lowered when a device aborts an answer we thought would fit
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    semaphore: asyncio.Semaphore | None = None
    plans: dict[tuple[tuple[PointRef, ...], int], list[_Chunk]] = dataclasses.field(
        default_factory=dict
    )


@dataclasses.dataclass(frozen=True)
class _Encoded:
    """A confirmed request whose service data we encoded ourselves (ReadRange): bacpypes3's
    template gives the APCI, the data replaces its own."""

    template: Any
    data: bytes

    def request(self, destination: Address) -> Any:
        pdu = ConfirmedRequestPDU()
        pdu.update(self.template)
        pdu.put_data(self.data)
        pdu.pduDestination = destination
        return pdu


@functools.cache
def _read_range_template() -> Any:
    return ReadRangeRequest(
        objectIdentifier=ObjectIdentifier("trend-log,1"),
        propertyIdentifier=PropertyIdentifier("log-buffer"),
        range=Range(byPosition=RangeByPosition(referenceIndex=1, count=1)),
    ).encode()


_Raw = Any  # a value decoded by appliance.bacnet.codec, or a PointError
_TOO_BIG = {"segmentation-not-supported", "buffer-overflow", "apdu-too-long"}


# Reject reasons that mean "no such service" by themselves; anything else is probed first
_RPM_UNSUPPORTED = {"unrecognized-service", "other"}


def _nack_code(nack: BaseException) -> str:
    if isinstance(nack, ErrorPDU):
        return str(getattr(nack, "errorCode", "error"))
    if isinstance(nack, RejectPDU | AbortPDU):
        return str(nack.apduAbortRejectReason)
    return type(nack).__name__


class BacpypesClient:
    """DeviceClient over bacpypes3; one local UDP port, shared by every device it talks to."""

    def __init__(
        self,
        config: ClientConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        speedups.install()
        self.config = config or ClientConfig()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._learned_rpm_refusals: dict[DeviceTarget, datetime] = {}
        self._registration: asyncio.Future[None] | None = None
        self.stats = ClientStats()
        self._app: Application | None = None
        self._devices: dict[DeviceTarget, _DeviceState] = {}
        self._cov_ids: dict[tuple[DeviceTarget, PointRef], int] = {}
        self.max_in_flight = self.config.max_in_flight  # lowered at start to what the socket holds
        self._in_flight = asyncio.Semaphore(self.max_in_flight)

    async def start(self) -> None:
        """Bind the local port; returns only when it is bound, so READY can follow."""
        try:
            host, prefix, port = parse_local_address(self.config.local_address)
        except ValueError as err:
            raise OSError(f"BACnet local address: {err}") from err
        if host == "0.0.0.0" and prefix is not None:
            logger.info(
                "BACnet bound to all interfaces: broadcast Who-Is (discovery, devices given by "
                "instance only) needs this interface's IP/PREFIX, e.g. 192.168.1.10/24"
            )
        if not port_is_free(host, port):
            raise OSError(f"BACnet port {self.config.local_address} is already in use")
        device = DeviceObject(
            objectIdentifier=("device", self.config.device_instance),
            objectName=f"meterit-{self.config.device_instance}",
            vendorIdentifier=999,
            maxApduLengthAccepted=self.config.max_apdu,
            segmentationSupported="segmented-both",
            maxSegmentsAccepted=16,
            # our own asyncio timeouts decide; the stack must not retry behind our back
            numberOfApduRetries=0,
            apduTimeout=int(self._max_timeout() * 1000) + 1000,
        )
        port_object = NetworkPortObject(
            bacpypes_address(self.config.local_address),
            objectIdentifier=("network-port", 1),
            objectName="NetworkPort-1",
        )
        if self.config.bbmd_address is not None:
            foreign.foreign_device(port_object, self.config.bbmd_address, self.config.bbmd_ttl_s)
        self._app = build_application(device, port_object, Application, RawAckServiceAccessPoint)
        await wait_bound(self._app)
        if self.config.bbmd_address is not None:
            bbmd, ttl = self.config.bbmd_address, self.config.bbmd_ttl_s
            ok = await foreign.registered(self._app, bbmd, ttl)
            self._registration = asyncio.ensure_future(foreign.watch(self._app, bbmd, ttl, ok))
        capacity = enlarge_receive_buffer(self._app)
        limit = in_flight_limit(capacity, self.config.max_in_flight)
        if limit < self.max_in_flight:
            self.max_in_flight = limit
            self._in_flight = asyncio.Semaphore(limit)
        logger.info("BACnet client bound to %s", self.config.local_address)

    async def close(self) -> None:
        if self._registration is not None:
            self._registration.cancel()
            self._registration = None
        if self._app is not None:
            self._app.close()
            self._app = None

    async def __aenter__(self) -> BacpypesClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def app(self) -> Application:
        if self._app is None:
            raise RuntimeError("BacpypesClient.start() was not awaited")
        return self._app

    # ----- timing and transport

    def _max_timeout(self) -> float:
        return self.config.timeout_base_s + self.config.timeout_per_kb_s * 8

    def _timeout(self, request_bytes: int, response_bytes: int) -> float:
        kib = (request_bytes + response_bytes) / 1024
        return self.config.timeout_base_s + self.config.timeout_per_kb_s * kib

    async def _send(self, state: _DeviceState, request: Any, timeout: float) -> Any:
        """Send one confirmed request (a typed request, or a planned chunk); returns the ACK or
        raises ErrorRejectAbortNack / TimeoutError.  ErrorRejectAbortNack is a BaseException, so
        callers catch it by name."""
        assert state.semaphore is not None
        for attempt in range(self.config.retries + 1):
            if isinstance(request, _Chunk | _Encoded):
                pdu = request.request(state.address)
            else:
                pdu = request
                pdu.pduDestination = state.address
                pdu.apduInvokeID = None
            async with state.semaphore, self._in_flight:
                try:
                    return await asyncio.wait_for(self.app.request(pdu), timeout)
                except TimeoutError:
                    self.stats.timeouts += 1
                    if attempt == self.config.retries:
                        raise
        raise AssertionError("unreachable")

    # ----- addressing and device info

    async def _state(self, target: DeviceTarget) -> _DeviceState:
        state = self._devices.get(target)
        if state is None:
            if target.address is not None:
                address = Address(target.address)
            else:
                assert target.device_instance is not None
                address = await self._resolve(target.device_instance)
            state = _DeviceState(address, rpm_refused_at=self._learned_rpm_refusals.get(target))
            state.semaphore = asyncio.Semaphore(self.config.max_in_flight_per_device)
            self._devices[target] = state
        if state.info is None:
            async with state.lock:
                if state.info is None:
                    state.info = await self._fetch_info(target, state)
        return state

    async def _resolve(self, instance: int) -> Address:
        found = await self.who_is(instance, instance, self.config.who_is_address)
        for device in found:
            if device.device_instance == instance:
                return Address(device.address)
        raise DeviceNotFound(f"device {instance}: no I-Am answered Who-Is")

    async def _fetch_info(self, target: DeviceTarget, state: _DeviceState) -> DeviceInfo:
        instance = target.device_instance
        if instance is None:
            instance = await self._instance_at(target, state)
        props = [
            "max-apdu-length-accepted",
            "segmentation-supported",
            "vendor-identifier",
            "object-name",
            "vendor-name",
        ]
        refs = [PointRef("device", instance, p) for p in props]
        answers = await self._read_device_object(state, refs)
        raw = [answers[ref] for ref in refs]
        if all(isinstance(v, PointError) and v.code == "timeout" for v in raw):
            raise DeviceUnreachable(f"{target}: no answer to a read of the device object")
        values: dict[str, Any] = {}
        unreadable: list[str] = []
        for prop, value in zip(props, raw, strict=True):
            if isinstance(value, PointError):
                unreadable.append(f"{prop}: {value}")
            else:
                values[prop] = sizing.decode_any(value)
        max_apdu = _as_int(values.get("max-apdu-length-accepted"))
        segmentation = _as_int(values.get("segmentation-supported"))
        name, vendor_name = values.get("object-name"), values.get("vendor-name")
        return DeviceInfo(
            device_instance=instance,
            address=str(state.address),
            # unknown limits: assume a small common one rather than risk aborts
            max_apdu=max_apdu if max_apdu and max_apdu >= 50 else 206,
            segmentation=segmentation in (0, 1),
            vendor_id=_as_int(values.get("vendor-identifier")),
            vendor_name=vendor_name if isinstance(vendor_name, str) else None,
            object_name=name if isinstance(name, str) else None,
            unreadable=tuple(unreadable),
        )

    async def _read_device_object(
        self, state: _DeviceState, refs: list[PointRef]
    ) -> dict[PointRef, _Raw]:
        """The device object's properties in one ReadPropertyMultiple (a collector start reads
        every meter's, so five ReadProperty each would make the first cycle several times slower);
        ReadProperty one by one when the device refuses RPM or the answer does not fit its APDU.
        Silence means the device is unreachable: no second round of timeouts."""
        if self._use_rpm(state):
            chunk = self._chunk(refs)
            self.stats.rpm_requests += 1
            try:
                ack = await self._send(state, chunk, chunk.timeout)
            except TimeoutError:
                return dict.fromkeys(
                    refs, PointError("timeout", "no answer to ReadPropertyMultiple")
                )
            except ErrorRejectAbortNack as nack:
                # an Error may also mean no such device object here (another device at this
                # address): the same probe as for points decides
                if _nack_code(nack) not in _TOO_BIG and await self._refuses_rpm(
                    state, refs[0], nack
                ):
                    self._rpm_refused(state, nack)
            else:
                if isinstance(ack, ComplexAckPDU):
                    values = _unpack(chunk, bytes(ack.pduData))
                    if not any(
                        isinstance(v, PointError) and v.code in ("missing", "bad-answer")
                        for v in values.values()
                    ):
                        return values
        return await self._read_many_rp(state, refs)

    async def _instance_at(self, target: DeviceTarget, state: _DeviceState) -> int:
        """The device instance at an address: the wildcard device id if the device honours it,
        else a Who-Is sent to that address."""
        raw = await self._read_one(state, PointRef("device", WILDCARD_DEVICE, "object-identifier"))
        if isinstance(raw, PointError):
            if raw.code == "timeout":
                raise DeviceUnreachable(f"{target}: no answer to ReadProperty of the device object")
            found = await self.who_is(address=str(state.address))
            if not found:
                raise DeviceNotFound(f"{target}: no device instance (wildcard read: {raw})")
            return found[0].device_instance
        return int(sizing.decode_any(raw)[1])

    async def read_device_info(self, target: DeviceTarget) -> DeviceInfo:
        state = await self._state(target)
        assert state.info is not None
        return state.info

    def forget(self, target: DeviceTarget) -> None:
        """Drop what is cached about a device (address, limits, RPM support), e.g. after its
        configuration changed."""
        self._devices.pop(target, None)
        self._learned_rpm_refusals.pop(target, None)

    def rpm_refused_since(self, target: DeviceTarget) -> datetime | None:
        """When the device last refused ReadPropertyMultiple (so it is read point by point), or
        None; the collector stores it so a restart does not have to learn it again."""
        state = self._devices.get(target)
        if state is not None:
            return state.rpm_refused_at
        return self._learned_rpm_refusals.get(target)

    def assume_rpm_refused(self, target: DeviceTarget, since: datetime) -> None:
        """What an earlier run learned: the device refused ReadPropertyMultiple at ``since``.
        It is read with ReadProperty until the re-probe is due."""
        self._learned_rpm_refusals[target] = since
        state = self._devices.get(target)
        if state is not None:
            state.rpm_refused_at = since

    def _use_rpm(self, state: _DeviceState) -> bool:
        """Whether to ask with ReadPropertyMultiple: yes unless the device refused it, and again
        once the refusal is older than the re-probe interval."""
        if state.rpm_refused_at is None:
            return True
        if self._clock() - state.rpm_refused_at >= timedelta(seconds=self.config.rpm_reprobe_s):
            state.reprobing = True
            return True
        return False

    def _rpm_refused(self, state: _DeviceState, nack: BaseException) -> None:
        was_refused = state.rpm_refused_at is not None and not state.reprobing
        state.rpm_refused_at = self._clock()
        state.reprobing = False
        state.plans.clear()
        if not was_refused:
            logger.info(
                "%s refuses ReadPropertyMultiple (%s: %s); reading it point by point with "
                "ReadProperty, trying again in %.0f h",
                state.address,
                type(nack).__name__.removesuffix("PDU"),
                _nack_code(nack),
                self.config.rpm_reprobe_s / 3600,
            )

    def _rpm_accepted(self, state: _DeviceState) -> None:
        if state.reprobing:
            logger.info("%s accepts ReadPropertyMultiple again", state.address)
            state.reprobing = False
            state.rpm_refused_at = None

    async def who_is(
        self, low: int | None = None, high: int | None = None, address: str | None = None
    ) -> list[DiscoveredDevice]:
        destination = Address(address) if address else None
        if destination is None and not has_broadcast(self.app):
            # bacpypes3 would raise in a background task and the Who-Is would just time out
            raise NoBroadcast(
                f"broadcast Who-Is from {self.config.local_address} has no subnet to reach: "
                "give the local BACnet address with its prefix, IP/PREFIX such as "
                "192.168.1.10/24 (METERIT_BACNET_ADDRESS for the collector, --local-address for "
                "discover), or ask one device by its address"
            )
        i_ams = await self.app.who_is(low, high, destination, self.config.who_is_timeout_s)
        return [
            DiscoveredDevice(
                device_instance=int(i_am.iAmDeviceIdentifier[1]),
                address=str(i_am.pduSource),
                max_apdu=int(i_am.maxAPDULengthAccepted),
                segmentation=int(i_am.segmentationSupported) in (0, 1),
                vendor_id=int(i_am.vendorID),
            )
            for i_am in i_ams
        ]

    # ----- reading

    async def read_points(
        self, target: DeviceTarget, points: list[PointRef]
    ) -> dict[PointRef, float | PointError]:
        state = await self._state(target)
        raw = await self._read_many(state, points)
        if points and all(isinstance(v, PointError) and v.code == "timeout" for v in raw.values()):
            if target.address is None:
                self._devices.pop(target, None)  # it may have moved: Who-Is again next time
            raise DeviceUnreachable(f"{target}: no answer within the timeout")
        return {ref: _to_float(value) for ref, value in raw.items()}

    async def subscribe_cov(
        self,
        target: DeviceTarget,
        ref: PointRef,
        lifetime_s: int,
        confirmed: bool,
        on_value: CovCallback,
    ) -> None:
        """Subscribe to changes of ``ref``'s object for ``lifetime_s`` seconds; calling it again
        for the same point renews the same subscription. Raises DeviceError when the device
        refuses or does not answer."""
        state = await self._state(target)
        key = (target, ref)
        process_id = self._cov_ids.get(key)
        if process_id is None:
            process_id = len(self._cov_ids) % MAX_PROCESS_ID + 1
            self._cov_ids[key] = process_id
        request = SubscribeCOVRequest(
            subscriberProcessIdentifier=process_id,
            monitoredObjectIdentifier=ObjectIdentifier(ref.object_id),
            issueConfirmedNotifications=confirmed,
            lifetime=lifetime_s,
        )
        # registered before the request: the device's first notification follows its ACK at once
        self.app._cov_contexts[(state.address, process_id)] = CovReceiver(ref, on_value)
        self.stats.cov_subscribe_requests += 1
        try:
            await self._send(state, request, self.config.timeout_base_s)
        except ErrorRejectAbortNack as nack:
            raise DeviceError(
                f"{target} refuses SubscribeCOV for {ref}: {_nack_code(nack)}"
            ) from None
        except TimeoutError:
            raise DeviceUnreachable(f"{target} did not answer SubscribeCOV for {ref}") from None

    async def read_object_list(self, target: DeviceTarget) -> ObjectList:
        """The object list element by element (its length at index 0 first), since a device
        without segmentation cannot send a long list whole. Devices that answer index 0 with the
        whole list, or refuse the index, are read whole; elements a device will not give are
        reported, not fatal."""
        state = await self._state(target)
        assert state.info is not None
        device = PointRef("device", state.info.device_instance, "object-list", 0)
        length = await self._read_one(state, device)
        whole = _object_ids(length)
        if whole is not None:  # the list itself where its length was asked for
            return ObjectList(whole)
        if isinstance(length, PointError) or _as_int(length) is None:
            answer = await self._read_one(state, dataclasses.replace(device, index=None))
            whole = _object_ids(answer)
            if whole is None:
                raise DeviceError(
                    f"{target}: object list unreadable: length {_describe(length)}, "
                    f"whole list {_describe(answer)}"
                )
            return ObjectList(whole)
        size = _as_int(length) or 0
        refs = [dataclasses.replace(device, index=i) for i in range(1, size + 1)]
        # ReadProperty, not RPM: bacpypes3 drops the array index from RPM answers, so indexed
        # elements could not be told apart.
        raw = await self._read_many_rp(state, refs)
        objects: list[str] = []
        unreadable: list[str] = []
        for ref in refs:
            ids = _object_ids(raw[ref])
            if ids is None or len(ids) != 1:
                unreadable.append(f"object-list[{ref.index}]: {_describe(raw[ref])}")
            else:
                objects += ids
        if not objects and unreadable:
            raise DeviceError(f"{target}: no element of its object list readable: {unreadable[0]}")
        return ObjectList(objects, unreadable)

    async def describe_objects(
        self, target: DeviceTarget, object_ids: Sequence[str]
    ) -> list[ObjectDescription]:
        state = await self._state(target)
        props = ("object-name", "units", "description")
        refs = {oid: [PointRef(*parse_object_id(oid), p) for p in props] for oid in object_ids}
        raw = await self._read_many(state, [r for rs in refs.values() for r in rs])

        def describe(oid: str, refs: list[PointRef]) -> ObjectDescription:
            texts: list[str | None] = []
            unreadable: list[str] = []
            for ref in refs:
                value = _text(ref.prop, raw[ref])
                if isinstance(value, PointError):
                    texts.append(None)
                    if ref.prop != "description":  # optional, and rarely set anyway
                        unreadable.append(f"{ref.prop}: {value}")
                else:
                    texts.append(value)
            name, units, description = texts
            return ObjectDescription(oid, name, units, description, tuple(unreadable))

        return [describe(oid, rs) for oid, rs in refs.items()]

    # ----- trend logs

    async def trend_logs(self, target: DeviceTarget) -> dict[PointRef, str]:
        state = await self._state(target)
        object_list = await self.read_object_list(target)
        if object_list.unreadable:
            # a trend log missed here would leave its point's gaps unfilled for good
            raise DeviceError(f"{target}: object list incomplete: {object_list.unreadable[0]}")
        logs = [o for o in object_list.objects if o.startswith("trend-log,")]
        refs = {PointRef(*parse_object_id(o), "log-device-object-property"): o for o in logs}
        raw = await self._read_many(state, list(refs))
        found: dict[PointRef, str] = {}
        for ref, trend_log in refs.items():
            value = raw[ref]
            if isinstance(value, PointError) and value.code == "timeout":
                raise DeviceError(f"{target}: what {trend_log} records: {value}")
            if not isinstance(value, codec.Opaque):
                continue  # not logging a property of this device's objects
            try:
                otype, instance, prop = readrange.decode_object_property_reference(value.data)
                logged = PointRef(str(ObjectType(otype)), instance, str(PropertyIdentifier(prop)))
            except (codec.DecodeError, ValueError, TypeError):
                continue
            found.setdefault(logged, trend_log)
        return found

    async def read_trend(
        self, target: DeviceTarget, trend_log: str, since: datetime, until: datetime
    ) -> list[tuple[datetime, float]]:
        """ReadRange by time, page after page (each as many records as one unsegmented answer
        holds), until ``until`` or the end of the log."""
        state = await self._state(target)
        assert state.info is not None
        instance = parse_object_id(trend_log)[1]
        if state.utc_offset_min is None:
            offset = await self._read_one(
                state, PointRef("device", state.info.device_instance, "utc-offset")
            )
            state.utc_offset_min = offset if _as_int(offset) is not None else 0
        shift = timedelta(minutes=state.utc_offset_min)
        budget = min(state.info.max_apdu, self.config.max_apdu)
        count = max(1, (budget - readrange.ACK_OVERHEAD) // readrange.RECORD_BYTES)
        timeout = self._timeout(32, budget)
        records: list[tuple[datetime, float]] = []
        after = since - shift  # the device's clock
        while True:
            request = _Encoded(
                _read_range_template(), readrange.encode_request(instance, after, count)
            )
            self.stats.read_range_requests += 1
            try:
                ack = await self._send(state, request, timeout)
            except TimeoutError:
                raise DeviceUnreachable(
                    f"{target}: no answer to ReadRange of {trend_log}"
                ) from None
            except ErrorRejectAbortNack as nack:
                raise DeviceError(
                    f"{target}: ReadRange of {trend_log} refused: {_nack_code(nack)}"
                ) from None
            try:
                answer = readrange.decode_ack(bytes(ack.pduData))
            except codec.DecodeError as err:
                raise DeviceError(f"{target}: ReadRange of {trend_log}: {err}") from None
            for ts, value in answer.records:
                if ts + shift >= until:
                    return records
                if ts > after:
                    records.append((ts + shift, value))
            if not answer.more or not answer.records or answer.records[-1][0] <= after:
                return records
            after = answer.records[-1][0]

    async def _read_many(self, state: _DeviceState, refs: list[PointRef]) -> dict[PointRef, _Raw]:
        if not refs:
            return {}
        if not self._use_rpm(state):
            values = await asyncio.gather(*(self._read_one(state, ref) for ref in refs))
            return dict(zip(refs, values, strict=True))
        key = (tuple(refs), state.max_points)
        chunks = state.plans.get(key)
        if chunks is None:
            assert state.info is not None
            request_budget = min(state.info.max_apdu, self.config.max_apdu)
            answer_budget = self.config.max_apdu * 4 if state.info.segmentation else request_budget
            planned = sizing.plan_chunks(refs, request_budget, answer_budget, state.max_points)
            chunks = state.plans[key] = [self._chunk(c) for c in planned]
        if len(chunks) == 1:
            return await self._read_chunk(state, chunks[0])
        results: dict[PointRef, _Raw] = {}
        for part in await asyncio.gather(*(self._read_chunk(state, c) for c in chunks)):
            results.update(part)
        return results

    def _chunk(self, refs: list[PointRef]) -> _Chunk:
        template = ReadPropertyMultipleRequest(listOfReadAccessSpecs=_access_specs(refs)).encode()
        wanted = {
            (_object_type_number(r.object_type), r.instance, _property_number(r.prop), r.index): r
            for r in refs
        }
        timeout = self._timeout(sizing.request_bytes(refs), sizing.response_bytes(refs))
        return _Chunk(refs, template, wanted, timeout)

    async def _read_chunk(self, state: _DeviceState, chunk: _Chunk) -> dict[PointRef, _Raw]:
        refs = chunk.refs
        if state.rpm_refused_at is not None and not state.reprobing:
            return await self._read_many_rp(state, refs)
        self.stats.rpm_requests += 1
        try:
            ack = await self._send(state, chunk, chunk.timeout)
        except TimeoutError:
            return dict.fromkeys(refs, PointError("timeout", "no answer to ReadPropertyMultiple"))
        except ErrorRejectAbortNack as nack:
            code = _nack_code(nack)
            if code not in _TOO_BIG and await self._refuses_rpm(state, refs[0], nack):
                self._rpm_refused(state, nack)
                return await self._read_many_rp(state, refs)
            if len(refs) > 1 and (code in _TOO_BIG or isinstance(nack, ErrorPDU)):
                # too big after all, or one bad object spoiled the lot: halve and retry
                if code in _TOO_BIG:
                    state.max_points = max(1, min(state.max_points, len(refs) // 2))
                state.plans.clear()
                half = len(refs) // 2
                first, second = await asyncio.gather(
                    self._read_chunk(state, self._chunk(refs[:half])),
                    self._read_chunk(state, self._chunk(refs[half:])),
                )
                return first | second
            if len(refs) == 1 and code in _TOO_BIG:
                return await self._read_many_rp(state, refs)
            return dict.fromkeys(refs, PointError(code, "ReadPropertyMultiple refused"))
        if not isinstance(ack, ComplexAckPDU):
            return dict.fromkeys(refs, PointError("bad-answer", type(ack).__name__))
        self._rpm_accepted(state)
        return _unpack(chunk, bytes(ack.pduData))

    async def _refuses_rpm(self, state: _DeviceState, first: PointRef, nack: BaseException) -> bool:
        """Whether a whole ReadPropertyMultiple was refused because the device does not do RPM.

        Devices say so with a Reject, an Error (service-request-denied, unrecognized-service,
        ...) or an Abort; but an Error can also be one unknown object spoiling the lot. A
        Reject for an unrecognized service is decisive; otherwise one ReadProperty of the first
        point decides: if it answers, the same point by RPM failing was the service."""
        if isinstance(nack, RejectPDU) and _nack_code(nack) in _RPM_UNSUPPORTED:
            return True
        probe = await self._read_one(state, first)
        return not isinstance(probe, PointError)

    async def _read_many_rp(
        self, state: _DeviceState, refs: list[PointRef]
    ) -> dict[PointRef, _Raw]:
        values = await asyncio.gather(*(self._read_one(state, ref) for ref in refs))
        return dict(zip(refs, values, strict=True))

    async def _read_one(self, state: _DeviceState, ref: PointRef) -> _Raw:
        request = ReadPropertyRequest(
            objectIdentifier=ObjectIdentifier(ref.object_id),
            propertyIdentifier=PropertyIdentifier(ref.prop),
        )
        if ref.index is not None:
            request.propertyArrayIndex = ref.index
        sizes = sizing.request_bytes([ref]), sizing.response_bytes([ref])
        self.stats.rp_requests += 1
        try:
            ack = await self._send(state, request, self._timeout(*sizes))
        except TimeoutError:
            return PointError("timeout", "no answer to ReadProperty")
        except ErrorRejectAbortNack as nack:
            return PointError(_nack_code(nack), "ReadProperty refused")
        if not isinstance(ack, ComplexAckPDU):
            return PointError("bad-answer", type(ack).__name__)
        try:
            return codec.decode_rp_ack(bytes(ack.pduData))[4]
        except codec.DecodeError as err:
            return PointError("bad-answer", str(err))


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _describe(value: Any) -> str:
    if isinstance(value, PointError):
        return str(value)
    if isinstance(value, codec.Opaque):
        return f"an unexpected value ({len(value.data)} bytes)"
    return f"an unexpected {type(value).__name__}"


def _object_ids(value: Any) -> list[str] | None:
    """Object identifiers in an answer: one, or a list sent whole; None if it holds none."""
    if isinstance(value, tuple):
        items: list[Any] = [value]
    elif isinstance(value, codec.Opaque):
        try:
            items = codec.decode_app_values(value.data)
        except codec.DecodeError:
            return None
    else:
        return None
    if not items or not all(isinstance(i, tuple) for i in items):
        return None
    try:
        return [f"{ObjectType(t)},{n}" for t, n in items]
    except (ValueError, TypeError):
        return None


def _text(prop: str, value: Any) -> str | PointError:
    """A property shown to people (name, units, description); odd shapes are an error, not a
    crash of discovery."""
    if isinstance(value, PointError):
        return value
    decoded = sizing.decode_any(value)
    if prop == "units":
        try:
            return str(EngineeringUnits(decoded))
        except (ValueError, TypeError, KeyError):
            return PointError("bad-answer", f"units {_describe(decoded)}")
    if isinstance(decoded, str):
        return decoded
    return PointError("bad-answer", _describe(decoded))


def _to_float(value: Any) -> float | PointError:
    if isinstance(value, PointError):
        return value
    decoded = sizing.decode_any(value)
    if isinstance(decoded, bool | int | float):
        return float(decoded)
    return PointError("not-a-number", f"value is {type(decoded).__name__}")


def _access_specs(refs: list[PointRef]) -> list[Any]:
    """One ReadAccessSpecification per object, properties in the order asked."""
    by_object: dict[str, list[PointRef]] = {}
    for ref in refs:
        by_object.setdefault(ref.object_id, []).append(ref)
    specs = []
    for object_id, group in by_object.items():
        prop_refs = []
        for ref in group:
            prop_ref = PropertyReference(propertyIdentifier=PropertyIdentifier(ref.prop))
            if ref.index is not None:
                prop_ref.propertyArrayIndex = ref.index
            prop_refs.append(prop_ref)
        specs.append(
            ReadAccessSpecification(
                objectIdentifier=ObjectIdentifier(object_id), listOfPropertyReferences=prop_refs
            )
        )
    return specs


@functools.lru_cache(maxsize=1024)
def _property_number(prop: str) -> int:
    return int(PropertyIdentifier(prop))


@functools.lru_cache(maxsize=256)
def _object_type_number(object_type: str) -> int:
    return int(ObjectType(object_type))


def _unpack(chunk: _Chunk, data: bytes) -> dict[PointRef, _Raw]:
    """The chunk's points from the answer's bytes; what the device left out is 'missing'."""
    results: dict[PointRef, _Raw] = {}
    try:
        items = codec.decode_rpm_ack(data)
    except codec.DecodeError as err:
        return dict.fromkeys(chunk.refs, PointError("bad-answer", str(err)))
    for object_type, instance, prop, index, value in items:
        ref = chunk.wanted.get((object_type, instance, prop, index))
        if ref is None:
            continue
        if isinstance(value, codec.AccessError):
            results[ref] = PointError(value.error_code, value.error_class)
        else:
            results[ref] = value
    for ref in chunk.refs:
        results.setdefault(ref, PointError("missing", "not in the ReadPropertyMultiple answer"))
    return results
