"""A faster ``inspect.getattr_static`` for bacpypes3's hot paths.

bacpypes3 calls ``inspect.getattr_static`` for every unset element of every ``Sequence`` it
builds (``Sequence.__init__``: "is this element a @property?") and on every property access of a
local object. The stdlib version walks the MRO and every class ``__dict__`` each time; profiling a
poll cycle showed it taking half the CPU of a simulated meter and a large share of the client's
(decoding one 20-point ReadPropertyMultiple-ACK builds hundreds of Sequences).

The answer depends only on the class unless the instance ``__dict__`` holds the name, so the
class part is cached per (class, name). Only the two bacpypes3 modules that call it per element
get the cached version; everything else keeps the stdlib function.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

_MISSING = object()
_class_attrs: dict[tuple[type, str], Any] = {}
_installed = False


def _class_attr(cls: type, name: str) -> Any:
    key = (cls, name)
    try:
        return _class_attrs[key]
    except KeyError:
        pass
    found = _MISSING
    for klass in cls.__mro__:
        if name in klass.__dict__:
            found = klass.__dict__[name]
            break
    _class_attrs[key] = found
    return found


def _is_data_descriptor(value: Any) -> bool:
    kind = type(value)
    return hasattr(kind, "__get__") and hasattr(kind, "__set__")


def getattr_static(obj: Any, name: str, *default: Any) -> Any:
    """``inspect.getattr_static`` for instances, with the class lookup cached."""
    if isinstance(obj, type):
        return inspect.getattr_static(obj, name, *default)
    class_value = _class_attr(type(obj), name)
    if class_value is not _MISSING and _is_data_descriptor(class_value):
        return class_value  # a property wins over the instance dict, as in the stdlib
    try:
        instance_dict = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        instance_dict = None
    if isinstance(instance_dict, dict) and name in instance_dict:
        return instance_dict[name]
    if class_value is not _MISSING:
        return class_value
    if default:
        return default[0]
    raise AttributeError(name)


class _Inspect(types.ModuleType):
    """The ``inspect`` module with :func:`getattr_static` replaced."""

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)


def install() -> None:
    """Patch bacpypes3 once per process; idempotent."""
    global _installed  # noqa: PLW0603 - one switch per process
    if _installed:
        return
    from bacpypes3 import constructeddata  # type: ignore[import-untyped]
    from bacpypes3.local import object as local_object  # type: ignore[import-untyped]

    fast = _Inspect("inspect")
    fast.getattr_static = getattr_static  # type: ignore[attr-defined]
    constructeddata.inspect = fast
    local_object.inspect = fast
    _installed = True
