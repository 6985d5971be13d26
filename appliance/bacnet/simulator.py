"""Simulated BACnet/IP energy meters for tests, the demo and the benchmarks.

Each meter is a real bacpypes3 device on its own UDP port, so the collector is exercised over real
UDP with real encoding, and the misbehaviours seen in the field (small APDUs without segmentation,
slow devices, bad points, no ReadPropertyMultiple, devices dropping off the network) can be
switched on per meter.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bacpypes3.apdu import (  # type: ignore[import-untyped]
    APDU,
    AbortPDU,
    ComplexAckPDU,
    decode_max_apdu_length_accepted,
)
from bacpypes3.app import Application  # type: ignore[import-untyped]
from bacpypes3.appservice import ApplicationServiceAccessPoint  # type: ignore[import-untyped]
from bacpypes3.basetypes import PropertyIdentifier  # type: ignore[import-untyped]
from bacpypes3.comm import bind  # type: ignore[import-untyped]
from bacpypes3.errors import (  # type: ignore[import-untyped]
    AbortBufferOverflow,
    AbortOther,
    PropertyError,
    SegmentationNotSupported,
    ServicesError,
    UnrecognizedService,
)
from bacpypes3.local.analog import AnalogInputObject  # type: ignore[import-untyped]
from bacpypes3.local.device import DeviceObject  # type: ignore[import-untyped]
from bacpypes3.local.networkport import NetworkPortObject  # type: ignore[import-untyped]
from bacpypes3.netservice import (  # type: ignore[import-untyped]
    NetworkServiceAccessPoint,
    NetworkServiceElement,
)
from bacpypes3.primitivedata import ObjectType  # type: ignore[import-untyped]

from appliance.bacnet import codec, readrange, speedups
from appliance.bacnet.sim_model import MeterModel
from appliance.bacnet.sim_trend import TrendHistory, trend_log_object
from appliance.bacnet.transport import port_is_free, wait_bound
from common.logs import setup_logging
from common.meter_spec import WILDCARD_INSTANCE, MeterSpec, PointSpec
from common.meter_spec import meters_document as spec_document

logger = logging.getLogger(__name__)

ErrorKind = Literal["unknown-object", "unknown-property"]
ERROR_KINDS: tuple[str, ...] = ("unknown-object", "unknown-property")
# how a device without ReadPropertyMultiple says so: all three are seen in the field
RpmRefusal = Literal["reject", "error", "abort"]
RPM_REFUSALS: tuple[str, ...] = ("reject", "error", "abort")
VENDOR_ID = 999  # bacpypes3's own vendor id: its object classes decode everything we serve
STANDARD_MAX_APDU = (50, 128, 206, 480, 1024, 1476)


@dataclasses.dataclass(frozen=True)
class SimMeterSpec:
    """One simulated meter; every field is a behaviour a real meter has been seen to have."""

    device_instance: int
    port: int
    host: str = "127.0.0.1"
    # the subnet prefix: with it the meter also listens on the subnet's broadcast address, so a
    # broadcast Who-Is finds it (only useful on a real or namespaced network, not on loopback)
    prefix: int | None = None
    points: int = 20
    max_apdu: int = 1476
    segmentation: bool = True
    latency_ms: float = 0.0
    error_points: Mapping[str, ErrorKind] = dataclasses.field(default_factory=dict)
    refuse_rpm: RpmRefusal | None = None
    # answers object-list[0] (the list's length) with the whole list, as some stacks do
    whole_object_list: bool = False
    # properties no object of this device knows (e.g. "units", "description", "vendor-name")
    unknown_properties: tuple[str, ...] = ()
    # a TrendLog per point (trend-log,N logs analog-input,N) recording every trend_interval_s
    # and holding trend_history_s of records; 0 = no trend logs
    trend_interval_s: int = 0
    trend_history_s: int = 7 * 86400
    # while anyone is subscribed to a change of value, values are refreshed this often, so
    # bacpypes3's COV detection (covIncrement 0.1) sees them change and notifies
    cov_refresh_s: float = 1.0
    name: str = ""

    def __post_init__(self) -> None:
        if self.max_apdu not in STANDARD_MAX_APDU:
            raise ValueError(f"max_apdu {self.max_apdu}: expected one of {STANDARD_MAX_APDU}")
        if not 1 <= self.points <= 500:
            raise ValueError(f"points {self.points}: expected 1..500")
        for object_id, kind in self.error_points.items():
            if kind not in ERROR_KINDS:
                raise ValueError(f"error_points[{object_id!r}]: {kind!r} not in {ERROR_KINDS}")
        if self.refuse_rpm is not None and self.refuse_rpm not in RPM_REFUSALS:
            raise ValueError(f"refuse_rpm {self.refuse_rpm!r}: expected one of {RPM_REFUSALS}")
        for prop in self.unknown_properties:
            PropertyIdentifier(prop)  # raises on a name BACnet does not have
        if self.trend_interval_s < 0 or (
            self.trend_interval_s and not self.trend_interval_s <= self.trend_history_s
        ):
            raise ValueError(
                f"trend_interval_s {self.trend_interval_s}: expected 0 (none) or 1.."
                f"trend_history_s ({self.trend_history_s})"
            )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def device_name(self) -> str:
        return self.name or f"SimMeter-{self.device_instance}"


@dataclasses.dataclass(frozen=True)
class SimPoint:
    name: str
    object_id: str  # "analog-input,1"
    units: str  # BACnet engineering units, hyphenated
    unit: str  # short display unit for the meters file


# name, units, display unit; the first six are what every energy meter offers.
_CATALOG: tuple[tuple[str, str, str], ...] = (
    ("energy_kwh", "kilowatt-hours", "kWh"),
    ("power_kw", "kilowatts", "kW"),
    ("voltage_l1_v", "volts", "V"),
    ("current_l1_a", "amperes", "A"),
    ("power_factor", "no-units", ""),
    ("frequency_hz", "hertz", "Hz"),
    ("voltage_l2_v", "volts", "V"),
    ("voltage_l3_v", "volts", "V"),
    ("current_l2_a", "amperes", "A"),
    ("current_l3_a", "amperes", "A"),
    ("power_l1_kw", "kilowatts", "kW"),
    ("power_l2_kw", "kilowatts", "kW"),
    ("power_l3_kw", "kilowatts", "kW"),
    ("reactive_power_kvar", "kilovolt-amperes-reactive", "kvar"),
    ("apparent_power_kva", "kilovolt-amperes", "kVA"),
    ("voltage_l1_l2_v", "volts", "V"),
    ("voltage_l2_l3_v", "volts", "V"),
    ("voltage_l3_l1_v", "volts", "V"),
    ("current_neutral_a", "amperes", "A"),
    ("energy_export_kwh", "kilowatt-hours", "kWh"),
)


def meter_points(count: int) -> list[SimPoint]:
    """The points of a simulated meter, in object-instance order; extras beyond the catalog are
    harmonic-distortion percentages, which real meters expose by the dozen."""
    points = []
    for index in range(count):
        if index < len(_CATALOG):
            name, units, unit = _CATALOG[index]
        else:
            name, units, unit = f"thd_{index - len(_CATALOG) + 1}_pct", "percent", "%"
        points.append(SimPoint(name, f"analog-input,{index + 1}", units, unit))
    return points


class _UnknownProperties:
    """An object that answers unknown-property for some of its properties, as devices from other
    stacks (or a misconfigured meter's present-value) do. ``_unknown`` holds bacpypes3's
    camelCase attribute names."""

    _unknown: frozenset[str] = frozenset()

    async def read_property(self, attr: Any, index: int | None = None) -> Any:
        name = PropertyIdentifier(attr).attr if isinstance(attr, int) else attr
        if name in self._unknown:
            raise PropertyError("unknownProperty")
        return await super().read_property(attr, index)  # type: ignore[misc]


class _SimInput(_UnknownProperties, AnalogInputObject):  # type: ignore[misc]
    pass


class _SimDevice(_UnknownProperties, DeviceObject):  # type: ignore[misc]
    pass


def _attr_names(props: Iterable[str]) -> frozenset[str]:
    return frozenset(PropertyIdentifier(p).attr for p in props)


_ANALOG_INPUT = 0
_PRESENT_VALUE = 85


class _SwitchableASAP(ApplicationServiceAccessPoint):  # type: ignore[misc]
    """Drops every incoming packet while the meter is offline, so the client sees silence, not an
    abort (a ServerSSM would abort after its application timeout).

    Also the fast path: a ReadPropertyMultiple of healthy present-values that fits in one answer
    is answered from the byte codec, and so is ReadRange of a trend log (bacpypes3 has no
    ReadRange server). Through bacpypes3's object model one 20-point answer costs
    ~20 ms of CPU, so benchmarks would measure the simulator, not the client. Everything else
    (errors, other properties, segmentation, small APDUs) still takes bacpypes3's path."""

    offline = False
    meter: SimulatedMeter | None = None

    async def confirmation(self, pdu: Any) -> None:
        if self.offline:
            return
        data = bytes(pdu.pduData)
        # an unsegmented confirmed request: type/flags, max segs/resp, invoke id, service, data
        if self.meter is not None and len(data) > 4 and data[0] & 0xF8 == 0:
            fast = {
                codec.SERVICE_READ_PROPERTY_MULTIPLE: self.meter.fast_rpm,
                readrange.SERVICE_READ_RANGE: self.meter.read_range,
            }.get(data[3])
            answer = await fast(data[4:], data[1] & 0x0F) if fast is not None else None
            if answer is not None:
                ack = ComplexAckPDU(data[3], data[2])
                ack.pduDestination = pdu.pduSource
                ack.apduSeg = ack.apduMor = False
                ack.put_data(answer)
                await self.request(ack)
                return
        await super().confirmation(pdu)


class SimulatedMeter(Application):  # type: ignore[misc]
    """A bacpypes3 device answering ReadProperty / ReadPropertyMultiple like the spec says."""

    spec: SimMeterSpec
    model: MeterModel
    asap: _SwitchableASAP
    _objects_by_point: dict[str, Any]
    _fast_objects: dict[int, str]  # analog-input instance -> point name, healthy points only
    requests_seen: int
    cov_silent: bool  # accepts subscriptions but sends no notification (a device gone quiet)
    cov_notifications_sent: int
    cov_subscriptions_seen: int
    _cov_ticker: asyncio.Task[None] | None

    clock: Callable[[], datetime]
    trend: TrendHistory | None
    _trend_points: dict[int, str]  # trend-log instance -> point name

    @classmethod
    def build(
        cls, spec: SimMeterSpec, clock: Callable[[], datetime] | None = None
    ) -> SimulatedMeter:
        speedups.install()
        unknown = _attr_names(spec.unknown_properties)
        device = _SimDevice(
            objectIdentifier=("device", spec.device_instance),
            objectName=spec.device_name,
            vendorIdentifier=VENDOR_ID,
            vendorName="MeterIT simulator",
            modelName="SIM-EM",
            maxApduLengthAccepted=spec.max_apdu,
            segmentationSupported="segmented-both" if spec.segmentation else "no-segmentation",
        )
        device._unknown = unknown
        port = NetworkPortObject(
            spec.address if spec.prefix is None else f"{spec.host}/{spec.prefix}:{spec.port}",
            objectIdentifier=("network-port", 1),
            objectName="NetworkPort-1",
        )
        # Mirrors Application.from_object_list, which hard-codes the service access point class.
        app = cls()
        app.spec = spec
        app.clock = clock or (lambda: datetime.now(UTC))
        history = spec.trend_history_s if spec.trend_interval_s else 0
        app.model = MeterModel(spec.device_instance, app.clock().timestamp() - history)
        app.trend = (
            TrendHistory(spec.trend_interval_s, spec.trend_history_s)
            if spec.trend_interval_s
            else None
        )
        app._trend_points = {}
        app.requests_seen = 0
        app.cov_silent = False
        app.cov_notifications_sent = 0
        app.cov_subscriptions_seen = 0
        app._cov_ticker = None
        app._objects_by_point = {}
        app._fast_objects = {}
        app.asap = _SwitchableASAP(device, app.device_info_cache)
        app.asap.meter = app
        app.nsap = NetworkServiceAccessPoint()
        app.nse = NetworkServiceElement()
        bind(app.nse, app.nsap)
        bind(app, app.asap, app.nsap)
        app.add_object(device)
        app.add_object(port)
        for point in meter_points(spec.points):
            kind = spec.error_points.get(point.object_id)
            if kind == "unknown-object":
                continue
            obj = _SimInput(
                objectIdentifier=point.object_id,
                objectName=point.name,
                presentValue=0.0,
                statusFlags=[0, 0, 0, 0],
                eventState="normal",
                outOfService=False,
                units=point.units,
                covIncrement=0.1,
            )
            obj._unknown = unknown | (
                _attr_names(["present-value"]) if kind == "unknown-property" else frozenset()
            )
            app.add_object(obj)
            app._objects_by_point[point.name] = obj
            if app.trend is not None:
                index = int(point.object_id.split(",")[1])
                size = spec.trend_history_s // spec.trend_interval_s
                app.add_object(
                    trend_log_object(index, point.object_id, spec.trend_interval_s, size)
                )
                app._trend_points[index] = point.name
            if kind is None and "presentValue" not in unknown:
                app._fast_objects[int(point.object_id.split(",")[1])] = point.name
        return app

    def set_offline(self, offline: bool) -> None:
        self.asap.offline = offline

    def set_cov_silent(self, silent: bool) -> None:
        self.cov_silent = silent

    async def do_SubscribeCOVRequest(self, apdu: APDU) -> None:
        """bacpypes3 keeps the subscription and notifies when a value moves; values move only
        when refreshed, so a ticker refreshes them while anyone is subscribed."""
        self.cov_subscriptions_seen += 1  # not in requests_seen: tests tell polls apart
        if self._cov_ticker is None or self._cov_ticker.done():
            self._cov_ticker = asyncio.ensure_future(self._cov_tick())
        await super().do_SubscribeCOVRequest(apdu)

    async def _cov_tick(self) -> None:
        while self._cov_detections:
            await asyncio.sleep(self.spec.cov_refresh_s)
            if not self.offline:
                self._refresh()

    def cov_notification(self, cov: Any, apdu: Any) -> None:
        if self.cov_silent or self.offline:
            return
        self.cov_notifications_sent += 1
        super().cov_notification(cov, apdu)

    def close(self) -> None:
        if self._cov_ticker is not None:
            self._cov_ticker.cancel()
        super().close()

    def set_unknown_properties(self, props: Iterable[str]) -> None:
        """From now on every object answers unknown-property for ``props`` (a meter whose
        configuration or firmware changed under the appliance)."""
        unknown = _attr_names(props)
        self.spec = dataclasses.replace(self.spec, unknown_properties=tuple(props))
        self.device_object._unknown = unknown
        for obj in self._objects_by_point.values():
            obj._unknown = unknown
        if "presentValue" in unknown:
            self._fast_objects.clear()

    @property
    def offline(self) -> bool:
        return self.asap.offline

    async def fast_rpm(self, request: bytes, max_resp_code: int) -> bytes | None:
        """The encoded ACK for a plain present-value RPM, or None to let bacpypes3 answer."""
        if self.spec.refuse_rpm or len(request) + 4 > self.spec.max_apdu:
            return None
        try:
            specs = codec.decode_rpm_request(request)
        except codec.DecodeError:
            return None
        names = []
        for object_type, instance, props in specs:
            obj = self._fast_objects.get(instance) if object_type == _ANALOG_INPUT else None
            if obj is None or any(p != (_PRESENT_VALUE, None) for p in props):
                return None
            names.append((instance, obj, len(props)))
        limit = min(self.spec.max_apdu, decode_max_apdu_length_accepted(max_resp_code))
        # each present-value answer is 4 (object id) + 2 (list) + 2 (property) + 7 (value) bytes
        if 3 + sum(8 + 9 * count for _, _, count in names) > limit:
            return None
        self.requests_seen += 1
        if self.spec.latency_ms > 0:
            await asyncio.sleep(self.spec.latency_ms / 1000.0)
        sample = self.model.sample_at(self.clock().timestamp())
        return codec.encode_rpm_ack(
            (
                _ANALOG_INPUT,
                instance,
                [(_PRESENT_VALUE, codec.encode_real(self.model.value(name, sample)))] * count,
            )
            for instance, name, count in names
        )

    async def read_range(self, request: bytes, max_resp_code: int) -> bytes | None:
        """The encoded ReadRange-ACK for a trend log's log-buffer, or None to let bacpypes3
        answer (which refuses: it has no ReadRange server)."""
        if self.trend is None:
            return None
        try:
            object_type, instance, prop, _, _ = readrange.decode_request(request)
        except codec.DecodeError:
            return None
        name = self._trend_points.get(instance)
        if (
            object_type != readrange.OBJECT_TREND_LOG
            or prop != readrange.PROPERTY_LOG_BUFFER
            or name is None
        ):
            return None
        self.requests_seen += 1
        if self.spec.latency_ms > 0:
            await asyncio.sleep(self.spec.latency_ms / 1000.0)
        limit = min(self.spec.max_apdu, decode_max_apdu_length_accepted(max_resp_code))
        now = self.clock().timestamp()
        return self.trend.answer(self.model, name, instance, request, now=now, limit=limit)

    def _refresh(self) -> None:
        sample = self.model.sample_at(self.clock().timestamp())
        for name, obj in self._objects_by_point.items():
            obj.presentValue = self.model.value(name, sample)

    async def _serve(self, apdu: APDU) -> None:
        """What every confirmed read goes through: latency, then the device's buffer limit."""
        self.requests_seen += 1
        if self.spec.latency_ms > 0:
            await asyncio.sleep(self.spec.latency_ms / 1000.0)
        if len(apdu.encode().pduData) > self.spec.max_apdu:
            raise AbortBufferOverflow()
        self._refresh()

    def _own_device(self, object_id: Any) -> Any:
        """bacpypes3 compares the wildcard device id against a tuple of strings, which never
        matches, so answer device,4194303 as our own device here."""
        if object_id[0] == ObjectType.device and object_id[1] == WILDCARD_INSTANCE:
            return self.device_object.objectIdentifier
        return object_id

    async def do_ReadPropertyRequest(self, apdu: APDU) -> None:
        await self._serve(apdu)
        apdu.objectIdentifier = self._own_device(apdu.objectIdentifier)
        if (
            self.spec.whole_object_list
            and apdu.objectIdentifier == self.device_object.objectIdentifier
            and apdu.propertyIdentifier == PropertyIdentifier.objectList
            and apdu.propertyArrayIndex == 0
        ):
            apdu.propertyArrayIndex = None  # the length was asked for; the list is sent
        await super().do_ReadPropertyRequest(apdu)

    async def do_ReadPropertyMultipleRequest(self, apdu: APDU) -> None:
        await self._serve(apdu)
        if self.spec.refuse_rpm == "reject":
            raise UnrecognizedService()
        if self.spec.refuse_rpm == "error":
            raise ServicesError("serviceRequestDenied")
        if self.spec.refuse_rpm == "abort":
            raise AbortOther()
        for spec in apdu.listOfReadAccessSpecs:
            spec.objectIdentifier = self._own_device(spec.objectIdentifier)
        await super().do_ReadPropertyMultipleRequest(apdu)

    async def response(self, apdu: APDU) -> None:
        """A device without segmentation cannot send more than its own max APDU, whatever the
        client accepts; bacpypes3 only checks the client's limit, so enforce ours here.

        bacpypes3 also builds the Abort for an AbortException without the server bit, so the
        client files it under its *server* transactions and never sees it; set the bit."""
        if isinstance(apdu, AbortPDU):
            apdu.apduSrv = True
        if (
            isinstance(apdu, ComplexAckPDU)
            and not self.spec.segmentation
            and len(apdu.encode().pduData) > self.spec.max_apdu
        ):
            raise SegmentationNotSupported()
        await super().response(apdu)


class SimulatorHandle:
    """Running simulated meters: flip them offline/online, close them all."""

    def __init__(self, meters: Sequence[SimulatedMeter]) -> None:
        self.meters: dict[int, SimulatedMeter] = {m.spec.device_instance: m for m in meters}

    def set_offline(self, instance: int, offline: bool) -> None:
        self.meters[instance].set_offline(offline)
        logger.info("simulated meter %s now %s", instance, "offline" if offline else "online")

    def set_unknown_properties(self, instance: int, props: Iterable[str]) -> None:
        self.meters[instance].set_unknown_properties(props)
        logger.info("simulated meter %s: unknown properties now %s", instance, list(props))

    def set_cov_silent(self, instance: int, silent: bool) -> None:
        self.meters[instance].set_cov_silent(silent)
        logger.info("simulated meter %s: COV notifications %s", instance, "off" if silent else "on")

    def requests_seen(self, instance: int) -> int:
        return self.meters[instance].requests_seen

    def close(self) -> None:
        for meter in self.meters.values():
            meter.close()
        self.meters.clear()


async def run_simulators(
    specs: Iterable[SimMeterSpec], clock: Callable[[], datetime] | None = None
) -> SimulatorHandle:
    """Start the meters in the running event loop; they serve until the handle is closed.
    ``clock`` is the meters' wall clock (their values and trend history follow it)."""
    specs = list(specs)
    for spec in specs:
        if not port_is_free(spec.host, spec.port):
            raise OSError(f"simulated meter {spec.device_instance}: {spec.address} is in use")
    meters = [SimulatedMeter.build(spec, clock) for spec in specs]
    handle = SimulatorHandle(meters)
    try:
        for meter in meters:
            await wait_bound(meter)
    except BaseException:
        handle.close()
        raise
    return handle


def _host_and_prefix(text: str) -> tuple[str, int | None]:
    host, _, prefix = text.partition("/")
    return host, int(prefix) if prefix else None


def specs_from_args(args: argparse.Namespace) -> list[SimMeterSpec]:
    if args.specs:
        raw = json.loads(Path(args.specs).read_text())
        return [SimMeterSpec(**item) for item in raw]
    hosts = [_host_and_prefix(text) for text in args.host or ["127.0.0.1"]]
    return [
        SimMeterSpec(
            device_instance=args.first_instance + i,
            port=args.base_port + i // len(hosts),
            host=hosts[i % len(hosts)][0],
            prefix=hosts[i % len(hosts)][1],
            points=args.points,
            max_apdu=args.max_apdu,
            segmentation=not args.no_segmentation,
            latency_ms=args.latency_ms,
            trend_interval_s=args.trend_interval_s,
            trend_history_s=args.trend_history_s,
        )
        for i in range(args.count)
    ]


def meter_spec(spec: SimMeterSpec) -> MeterSpec:
    """The simulated meter as a meter definition, as ``meters load`` or central would hold it."""
    return MeterSpec(
        external_id=f"sim-{spec.device_instance}",
        name=spec.device_name,
        address=spec.address,
        device_instance=spec.device_instance,
        points=tuple(
            PointSpec(p.name, p.object_id, "present-value", p.unit)
            for p in meter_points(spec.points)
        ),
    )


def meters_document(specs: Iterable[SimMeterSpec]) -> list[dict[str, Any]]:
    """The simulated meters in the meters-file format that ``meters load`` reads."""
    return spec_document(meter_spec(s) for s in specs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance simulate", description="Run simulated BACnet/IP energy meters."
    )
    parser.add_argument("--count", type=int, default=3, help="number of meters")
    parser.add_argument("--base-port", type=int, default=47901, help="UDP port of the first meter")
    parser.add_argument(
        "--host",
        action="append",
        help="address the meters bind to, IP[/PREFIX]; repeat it to spread the meters over "
        "several addresses (round robin); with a prefix they answer broadcast Who-Is",
    )
    parser.add_argument("--first-instance", type=int, default=1000, help="first device instance")
    parser.add_argument("--points", type=int, default=20, help="points per meter")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument("--max-apdu", type=int, default=1476, choices=STANDARD_MAX_APDU)
    parser.add_argument("--no-segmentation", action="store_true")
    parser.add_argument(
        "--trend-interval-s",
        type=int,
        default=0,
        help="give every point a trend log recording this often (0 = none)",
    )
    parser.add_argument(
        "--trend-history-s",
        type=int,
        default=7 * 86400,
        help="how far back the trend logs reach (default a week)",
    )
    parser.add_argument("--specs", help="JSON list of SimMeterSpec fields (overrides the above)")
    parser.add_argument("--write-meters", help="write a meters file describing the simulation")
    return parser


async def _serve_until_signalled(specs: list[SimMeterSpec]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    handle = await run_simulators(specs)
    for spec in specs:
        logger.info(
            "simulated meter %s up at %s: %d points, max APDU %d, segmentation %s, latency %g ms",
            spec.device_instance,
            spec.address,
            spec.points,
            spec.max_apdu,
            "yes" if spec.segmentation else "no",
            spec.latency_ms,
        )
    try:
        await stop.wait()
    finally:
        logger.info("stopping %d simulated meters", len(specs))
        handle.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging("meterit-simulate")
    try:
        specs = specs_from_args(args)
    except (OSError, ValueError, TypeError) as err:
        logger.error("simulate: bad meter specification: %s", err)
        return 2
    if args.write_meters:
        Path(args.write_meters).write_text(json.dumps(meters_document(specs), indent=2) + "\n")
        logger.info("wrote %d meters to %s", len(specs), args.write_meters)
    try:
        asyncio.run(_serve_until_signalled(specs))
    except OSError as err:
        logger.error("simulate: %s; pick another --base-port or stop the other process", err)
        return 1
    return 0
