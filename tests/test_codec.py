"""The byte codec, the bacpypes3 speed-up and local-address parsing, checked against bacpypes3
itself: the client and the simulator's fast path both rely on them, so a bug here would hide on
both sides of a loopback test."""

from __future__ import annotations

import inspect

import pytest
from bacpypes3.apdu import (  # type: ignore[import-untyped]
    ReadPropertyACK,
    ReadPropertyMultipleACK,
    ReadPropertyMultipleRequest,
)
from bacpypes3.basetypes import (  # type: ignore[import-untyped]
    ErrorType,
    PropertyIdentifier,
    PropertyReference,
    ReadAccessResult,
    ReadAccessResultElement,
    ReadAccessResultElementChoice,
    ReadAccessSpecification,
    StatusFlags,
)
from bacpypes3.constructeddata import Any  # type: ignore[import-untyped]
from bacpypes3.primitivedata import (  # type: ignore[import-untyped]
    CharacterString,
    Enumerated,
    ObjectIdentifier,
    Real,
    Unsigned,
)

from appliance.bacnet import codec, speedups
from appliance.bacnet.address import parse_local_address
from appliance.bacnet.transport import bacpypes_address


def _element(prop: str, value: object = None, index: int | None = None, error: str = "") -> object:
    result = ReadAccessResultElementChoice()
    if error:
        result.propertyAccessError = ErrorType(errorClass="object", errorCode=error)
    else:
        result.propertyValue = Any(value)
    return ReadAccessResultElement(
        propertyIdentifier=PropertyIdentifier(prop), propertyArrayIndex=index, readResult=result
    )


def _ack_bytes(results: list[object]) -> bytes:
    ack = ReadPropertyMultipleACK(listOfReadAccessResults=results)
    return bytes(ack.encode().pduData)


def test_rpm_ack_decodes_every_value_kind_and_errors_like_bacpypes3_encodes_them() -> None:
    data = _ack_bytes(
        [
            ReadAccessResult(
                objectIdentifier=ObjectIdentifier("analog-input,1"),
                listOfResults=[
                    _element("present-value", Real(1234.5)),
                    _element("units", Enumerated(19)),
                    _element("object-name", CharacterString("Energy kWh é")),
                ],
            ),
            ReadAccessResult(
                objectIdentifier=ObjectIdentifier("device,4000"),
                listOfResults=[
                    _element("object-list", ObjectIdentifier("analog-input,7"), index=3),
                    _element("max-apdu-length-accepted", Unsigned(1476)),
                ],
            ),
            ReadAccessResult(
                objectIdentifier=ObjectIdentifier("analog-input,9"),
                listOfResults=[_element("present-value", error="unknown-object")],
            ),
        ]
    )
    items = codec.decode_rpm_ack(data)
    assert items == [
        (0, 1, 85, None, 1234.5),
        (0, 1, 117, None, 19),
        (0, 1, 77, None, "Energy kWh é"),
        (8, 4000, 76, 3, (0, 7)),
        (8, 4000, 62, None, 1476),
        (0, 9, 85, None, codec.AccessError("object", "unknown-object")),
    ]


def test_rpm_ack_encoding_is_byte_for_byte_what_bacpypes3_sends() -> None:
    expected = _ack_bytes(
        [
            ReadAccessResult(
                objectIdentifier=ObjectIdentifier("analog-input,1"),
                listOfResults=[_element("present-value", Real(-2.25))],
            ),
            ReadAccessResult(
                objectIdentifier=ObjectIdentifier("analog-input,300"),
                listOfResults=[
                    _element("present-value", Real(50.0)),
                    _element("present-value", error="unknown-property"),
                ],
            ),
        ]
    )
    ours = codec.encode_rpm_ack(
        [
            (0, 1, [(85, codec.encode_real(-2.25))]),
            (
                0,
                300,
                [
                    (85, codec.encode_real(50.0)),
                    (85, codec.AccessError("object", "unknown-property")),
                ],
            ),
        ]
    )
    assert ours == expected


def test_rpm_request_decodes_objects_properties_and_indexes() -> None:
    request = ReadPropertyMultipleRequest(
        listOfReadAccessSpecs=[
            ReadAccessSpecification(
                objectIdentifier=ObjectIdentifier("analog-input,5"),
                listOfPropertyReferences=[
                    PropertyReference(propertyIdentifier=PropertyIdentifier("present-value")),
                    PropertyReference(propertyIdentifier=PropertyIdentifier("units")),
                ],
            ),
            ReadAccessSpecification(
                objectIdentifier=ObjectIdentifier("device,70000"),
                listOfPropertyReferences=[
                    PropertyReference(
                        propertyIdentifier=PropertyIdentifier("object-list"), propertyArrayIndex=2
                    )
                ],
            ),
        ]
    )
    data = bytes(request.encode().pduData)
    assert codec.decode_rpm_request(data) == [
        (0, 5, [(85, None), (117, None)]),
        (8, 70000, [(76, 2)]),
    ]


@pytest.mark.parametrize(
    ("object_id", "prop", "index", "value", "expected"),
    [
        ("analog-input,3", "present-value", None, Real(230.5), 230.5),
        ("device,12", "object-list", 0, Unsigned(21), 21),
        ("device,12", "object-list", 4, ObjectIdentifier("analog-value,9"), (2, 9)),
        ("device,12", "object-name", None, CharacterString("Main meter"), "Main meter"),
    ],
    ids=["real", "array-length", "array-element", "string"],  # bacpypes3 strings break auto ids
)
def test_rp_ack_decodes_like_bacpypes3_encodes(
    object_id: str, prop: str, index: int | None, value: object, expected: object
) -> None:
    ack = ReadPropertyACK(
        objectIdentifier=ObjectIdentifier(object_id),
        propertyIdentifier=PropertyIdentifier(prop),
        propertyArrayIndex=index,
        propertyValue=Any(value),
    )
    object_type, instance = ObjectIdentifier(object_id)
    assert codec.decode_rp_ack(bytes(ack.encode().pduData)) == (
        int(object_type),
        instance,
        int(PropertyIdentifier(prop)),
        index,
        expected,
    )


def test_a_constructed_value_stays_opaque() -> None:
    flags = StatusFlags([0, 1, 0, 0])
    ack = ReadPropertyACK(
        objectIdentifier=ObjectIdentifier("analog-input,1"),
        propertyIdentifier=PropertyIdentifier("status-flags"),
        propertyValue=Any(flags),
    )
    value = codec.decode_rp_ack(bytes(ack.encode().pduData))[4]
    assert isinstance(value, codec.Opaque)


def test_truncated_answers_raise_decode_error() -> None:
    data = codec.encode_rpm_ack([(0, 1, [(85, codec.encode_real(1.0))])])
    with pytest.raises(codec.DecodeError):
        codec.decode_rpm_ack(data[:-3])


class _Base:
    @property
    def prop(self) -> int:
        return 1

    plain = "class"


class _Child(_Base):
    pass


def test_cached_getattr_static_agrees_with_the_stdlib() -> None:
    obj = _Child()
    obj.__dict__["plain"] = "instance"
    obj.__dict__["prop"] = "shadowed"  # a property still wins, as in the stdlib
    obj.__dict__["own"] = 3
    for name in ("prop", "plain", "own", "__init__"):
        assert speedups.getattr_static(obj, name) is inspect.getattr_static(obj, name)
    assert speedups.getattr_static(obj, "absent", None) is None
    with pytest.raises(AttributeError):
        speedups.getattr_static(obj, "absent")


@pytest.mark.parametrize(
    ("text", "parsed", "for_bacpypes"),
    [
        ("0.0.0.0/24:47808", ("0.0.0.0", 24, 47808), "0.0.0.0:47808"),
        ("0.0.0.0/24", ("0.0.0.0", 24, 47808), "0.0.0.0:47808"),
        ("192.0.2.10/24", ("192.0.2.10", 24, 47808), "192.0.2.10/24:47808"),
        ("192.0.2.10", ("192.0.2.10", None, 47808), "192.0.2.10:47808"),
        ("127.0.0.1:47999", ("127.0.0.1", None, 47999), "127.0.0.1:47999"),
        (" 10.1.2.3/16:47809 ", ("10.1.2.3", 16, 47809), "10.1.2.3/16:47809"),
    ],
)
def test_local_address_accepts_ip_prefix_and_port(
    text: str, parsed: tuple[str, int | None, int], for_bacpypes: str
) -> None:
    assert parse_local_address(text) == parsed
    assert bacpypes_address(text) == for_bacpypes


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("0.0.0.0/33", "prefix"),
        ("300.1.1.1", "not an IPv4 address"),
        ("1.2.3.4:0", "port"),
        ("1.2.3.4:70000", "port"),
        ("host.example:47808", "IP[/PREFIX][:PORT]"),
        ("", "IP[/PREFIX][:PORT]"),
    ],
)
def test_bad_local_addresses_are_refused_with_the_reason(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        parse_local_address(text)
