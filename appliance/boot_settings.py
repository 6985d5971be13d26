"""The first-boot settings file an installer drops on the disk image's FAT partition.

``meterit.toml`` (TOML, the keys of ``appliance.toml``) names the central server, the site's API
key, optionally a meters file beside it and a static address. The installer edits it by hand on
a laptop, so every problem is found and reported at once, each saying what to fix; nothing in it
is trusted before the whole file has passed (``appliance.boot_settings_apply`` applies it).
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.meters_file import MetersFileError, parse_meters
from appliance.settings import ApplianceSettings
from common import config
from common.meter_spec import MeterSpec

FILE_NAME = "meterit.toml"
MAX_FILE_BYTES = 64 * 1024
MAX_METERS_BYTES = 1024 * 1024
MAX_API_KEY_LENGTH = 256
MAX_DNS_SERVERS = 3
KEYS = {"central_url", "api_key", "meters_file", "network"}
NETWORK_KEYS = {"address", "gateway", "dns"}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class BootSettingsError(ValueError):
    """Every problem of a settings file, one per line in ``str()``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class StaticNetwork:
    address: IPInterface
    gateway: IPAddress | None
    dns: tuple[IPAddress, ...]


@dataclass(frozen=True)
class BootSettings:
    central_url: str
    api_key: str
    meters_file: str | None  # its name on the FAT partition
    meters_json: str | None  # its text, checked
    meters: tuple[MeterSpec, ...]
    network: StaticNetwork | None

    def summary(self) -> str:
        """What is applied, for the journal: everything except the key."""
        parts = [
            f"central_url={self.central_url}",
            f"api key of {len(self.api_key)} characters",
        ]
        if self.meters_file:
            parts.append(f"meters file {self.meters_file} with {len(self.meters)} meter(s)")
        if self.network:
            gateway = f" via {self.network.gateway}" if self.network.gateway else ""
            dns = ", ".join(str(d) for d in self.network.dns) or "none"
            parts.append(f"static address {self.network.address}{gateway} (DNS {dns})")
        else:
            parts.append("address by DHCP")
        return "; ".join(parts)


def parse(raw: bytes, read_sibling: Callable[[str], bytes | None]) -> BootSettings:
    """Check the whole file; ``read_sibling(name)`` reads a file beside it (None: missing)."""
    if len(raw) > MAX_FILE_BYTES:
        raise BootSettingsError([f"{FILE_NAME}: larger than {MAX_FILE_BYTES} bytes"])
    try:
        # utf-8-sig: Windows' Notepad may start the file with a byte-order mark
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise BootSettingsError([f"{FILE_NAME}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as err:
        raise BootSettingsError(
            [f"{FILE_NAME}: not valid TOML ({err}); values need quotes, as in the example"]
        ) from None
    problems: list[str] = []
    unknown = sorted(set(data) - KEYS)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    central_url = _central_url(data.get("central_url"), problems)
    api_key = _api_key(data.get("api_key"), problems)
    meters_file, meters_json, meters = _meters(data.get("meters_file"), read_sibling, problems)
    network = _network(data.get("network"), problems)
    if problems:
        raise BootSettingsError([f"{FILE_NAME}: {p}" for p in problems])
    return BootSettings(central_url, api_key, meters_file, meters_json, meters, network)


def _central_url(value: Any, problems: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.append('central_url is missing; expected central_url = "https://central.example"')
        return ""
    try:
        # the same check the daemons make at start, so what passes here also starts there
        settings = config.load(
            ApplianceSettings,
            "appliance",
            {"METERIT_CENTRAL_URL": value, "METERIT_CONFIG": "/dev/null"},
        )
    except config.ConfigError as err:
        problems.append(f"central_url: {err}")
        return ""
    return settings.central_url or ""


def _api_key(value: Any, problems: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.append(
            "api_key is missing; paste the site's key from 'meterit-central site create'"
        )
        return ""
    key = value.strip()
    if len(key) > MAX_API_KEY_LENGTH or not key.isprintable() or any(c.isspace() for c in key):
        # never echo it: the file is a secret
        problems.append(
            f"api_key is not a key (at most {MAX_API_KEY_LENGTH} characters, no spaces); "
            "copy it again from central"
        )
        return ""
    return key


def _meters(
    value: Any, read_sibling: Callable[[str], bytes | None], problems: list[str]
) -> tuple[str | None, str | None, tuple[MeterSpec, ...]]:
    if value is None:
        return None, None, ()
    if (
        not isinstance(value, str)
        or not value
        or "/" in value
        or "\\" in value
        or value.startswith(".")
        or len(value) > 100
    ):
        problems.append(
            'meters_file must be the name of a file beside meterit.toml, such as "meters.json"'
        )
        return None, None, ()
    raw = read_sibling(value)
    if raw is None:
        problems.append(
            f"meters_file {value!r} is not on the partition; copy it beside {FILE_NAME}"
        )
        return None, None, ()
    if len(raw) > MAX_METERS_BYTES:
        problems.append(f"meters_file {value!r} is larger than {MAX_METERS_BYTES} bytes")
        return None, None, ()
    try:
        text = raw.decode("utf-8-sig")
        meters = parse_meters(text, source=value)
    except UnicodeDecodeError:
        problems.append(f"meters_file {value!r} is not UTF-8 text")
        return None, None, ()
    except MetersFileError as err:
        problems.extend(err.problems)
        return None, None, ()
    return value, text, tuple(meters)


def _ip(value: Any, what: str, problems: list[str]) -> IPAddress | None:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        problems.append(f"network.{what} {value!r} is not an IP address")
        return None


def _network(value: Any, problems: list[str]) -> StaticNetwork | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append('network must be a table: [network] with address = "192.168.1.50/24"')
        return None
    unknown = sorted(set(value) - NETWORK_KEYS)
    if unknown:
        problems.append(
            f"network: unknown key(s) {', '.join(unknown)}; known: address, gateway, dns"
        )
    address_text = value.get("address")
    address: IPInterface | None = None
    if not isinstance(address_text, str) or "/" not in address_text:
        problems.append('network.address needs the prefix length, such as "192.168.1.50/24"')
    else:
        try:
            address = ipaddress.ip_interface(address_text)
        except ValueError:
            problems.append(f"network.address {address_text!r} is not an address/prefix")
    gateway = _ip(value["gateway"], "gateway", problems) if "gateway" in value else None
    if address and gateway and gateway not in address.network:
        problems.append(f"network.gateway {gateway} is not in {address.network}")
    dns_value = value.get("dns", [])
    if isinstance(dns_value, str):
        dns_value = [dns_value]
    if not isinstance(dns_value, list) or len(dns_value) > MAX_DNS_SERVERS:
        problems.append(f"network.dns must be a list of at most {MAX_DNS_SERVERS} addresses")
        dns_value = []
    dns = tuple(d for d in (_ip(v, "dns", problems) for v in dns_value) if d is not None)
    if address is None:
        return None
    return StaticNetwork(address, gateway, dns)
