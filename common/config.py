"""Typed, frozen settings built once at start from the environment and a config file.

Each side (appliance, central) declares a frozen dataclass whose fields are made with
:func:`setting`. :func:`load` fills it from, in order of precedence:

1. the environment: ``METERIT_<NAME>`` (what systemd's ``EnvironmentFile=`` provides);
2. for secrets, ``METERIT_<NAME>_FILE`` naming a file that holds the value;
3. the TOML config file (``METERIT_CONFIG``, default ``/etc/meterit/<side>.toml`` if present),
   whose keys are the lower-case setting names (``<name>_file`` for a secret kept in a file);
4. the declared default.

Every mistake stops the start with one :class:`ConfigError` naming the setting, the bad value,
where it came from and what is expected, so an installer can fix it without reading code.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

ENV_PREFIX = "METERIT_"
PG_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss", "unix")

T = TypeVar("T")


EX_CONFIG = 78  # sysexits' EX_CONFIG: systemd and shells show it as a configuration problem


class ConfigError(Exception):
    """A setting is missing, malformed or out of range; the message says which and how to fix it."""


@dataclasses.dataclass(frozen=True)
class SettingSpec:
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    secret: bool = False
    url_schemes: tuple[str, ...] | None = None


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    secret: bool = False,
    url_schemes: tuple[str, ...] | None = None,
) -> Any:
    """Declare one setting; no default means the setting is required."""
    spec = SettingSpec(help, minimum, maximum, choices, secret, url_schemes)
    return dataclasses.field(default=default, metadata={"spec": spec})


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _spec(field: dataclasses.Field[Any]) -> SettingSpec:
    spec = field.metadata.get("spec")
    if not isinstance(spec, SettingSpec):
        raise TypeError(f"field {field.name} was not declared with setting()")
    return spec


def _base_type(annotation: Any) -> tuple[type, bool]:
    """Return (the concrete type, whether None is allowed) for ``int``, ``str | None`` …"""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def _expected(field_type: type, spec: SettingSpec) -> str:
    if spec.choices:
        return "one of " + ", ".join(spec.choices)
    if spec.url_schemes:
        return "a URL starting with " + " or ".join(f"{s}://" for s in spec.url_schemes)
    words = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
    text = words.get(field_type, field_type.__name__)
    if spec.minimum is not None and spec.maximum is not None:
        text += f" from {spec.minimum:g} to {spec.maximum:g}"
    elif spec.minimum is not None:
        text += f" of at least {spec.minimum:g}"
    elif spec.maximum is not None:
        text += f" of at most {spec.maximum:g}"
    return text


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(raw: Any, field_type: type, spec: SettingSpec) -> Any:
    """Turn a raw env string or TOML value into the field's type; ValueError when it does not fit."""
    value: Any
    if field_type is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError
    if field_type is int:
        if isinstance(raw, bool | float):
            raise ValueError
        value = int(str(raw).strip())
    elif field_type is float:
        if isinstance(raw, bool):
            raise ValueError
        value = float(str(raw).strip())
        if not math.isfinite(value):
            raise ValueError
    elif field_type is str:
        if not isinstance(raw, str):
            raise ValueError
        value = raw.strip()
        if spec.choices and value not in spec.choices:
            raise ValueError
        if spec.url_schemes:
            parts = urlsplit(value)
            if parts.scheme not in spec.url_schemes or not (parts.netloc or parts.path):
                raise ValueError
    else:  # pragma: no cover - a declaration mistake, caught by the settings tests
        raise TypeError(f"unsupported setting type {field_type}")
    if spec.minimum is not None and value < spec.minimum:
        raise ValueError
    if spec.maximum is not None and value > spec.maximum:
        raise ValueError
    return value


def _read_secret_file(path: str, where: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(
            f"{where}={path!r}: cannot read the file ({err.strerror}); "
            "expected a readable file holding the secret"
        ) from err


def _read_config_file(path: Path, explicit: bool) -> dict[str, Any]:
    if not path.exists():
        if explicit:
            raise ConfigError(
                f"METERIT_CONFIG={str(path)!r}: the file does not exist; "
                "expected the path of a TOML config file (or unset it to use only the environment)"
            )
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as err:
        raise ConfigError(
            f"config file {str(path)!r}: cannot read it ({err.strerror}); "
            "expected a file readable by this service's user"
        ) from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {str(path)!r}: not valid TOML ({err})") from err


def load(
    cls: type[T],
    side: str,
    environ: Mapping[str, str] | None = None,
    config_dir: Path = Path("/etc/meterit"),
) -> T:
    """Build the frozen settings object ``cls`` for ``side`` ('appliance' or 'central')."""
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_PREFIX + "CONFIG")
    config_path = Path(explicit) if explicit else config_dir / f"{side}.toml"
    file_values = _read_config_file(config_path, explicit is not None)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    known = set(fields) | {f"{n}_file" for n, f in fields.items() if _spec(f).secret}
    unknown = sorted(set(file_values) - known)
    if unknown:
        raise ConfigError(
            f"config file {str(config_path)!r}: unknown setting(s) {', '.join(unknown)}; "
            f"known settings are listed by 'meterit-{side} config --doc'"
        )

    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, field in fields.items():
        spec = _spec(field)
        field_type, optional = _base_type(hints[name])
        raw: Any = None
        where = ""
        if env_name(name) in env:
            raw, where = env[env_name(name)], env_name(name)
        elif spec.secret and env_name(name) + "_FILE" in env:
            where = env_name(name) + "_FILE"
            raw = _read_secret_file(env[where], where)
        elif name in file_values:
            raw, where = file_values[name], f"{name} in {config_path}"
        elif spec.secret and f"{name}_file" in file_values:
            where = f"{name}_file in {config_path}"
            raw = _read_secret_file(str(file_values[f"{name}_file"]), where)

        if raw is None or (optional and isinstance(raw, str) and raw.strip() == ""):
            if field.default is dataclasses.MISSING:
                raise ConfigError(
                    f"{env_name(name)} is required but not set; expected {_expected(field_type, spec)}"
                    f" ({spec.help})"
                )
            continue
        try:
            values[name] = _convert(raw, field_type, spec)
        except ValueError:
            shown = "***" if spec.secret else repr(raw)
            raise ConfigError(
                f"{where}={shown}: expected {_expected(field_type, spec)} ({spec.help})"
            ) from None
    return cls(**values)


def describe(cls: type[Any], side: str) -> str:
    """The reference table of every setting with its default, as Markdown."""
    hints = typing.get_type_hints(cls)
    lines = [
        f"| variable (`/etc/meterit/{side}.toml` key) | default | meaning |",
        "| --- | --- | --- |",
    ]
    for field in dataclasses.fields(cls):
        spec = _spec(field)
        field_type, _ = _base_type(hints[field.name])
        if field.default is dataclasses.MISSING:
            default = "*required*"
        elif field.default is None or field.default == "":
            default = "*unset*"
        else:
            default = f"`{str(field.default).lower() if field_type is bool else field.default}`"
        extra = f" Expected: {_expected(field_type, spec)}."
        if spec.secret:
            extra += f" May come from `{env_name(field.name)}_FILE`."
        lines.append(
            f"| `{env_name(field.name)}` (`{field.name}`) | {default} | {spec.help}.{extra} |"
        )
    return "\n".join(lines) + "\n"


def redacted(settings: Any) -> dict[str, Any]:
    """The settings as a dict with secrets hidden, safe to log or show."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        out[field.name] = "***" if _spec(field).secret and value else value
    return out


def load_or_report(load: Callable[[], T], prog: str) -> T | None:
    """The settings, or None after one line on stderr naming the setting to fix (the caller
    then exits with EX_CONFIG)."""
    try:
        return load()
    except ConfigError as err:
        sys.stderr.write(f"{prog}: configuration error: {err}\n")
        return None
