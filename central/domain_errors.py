"""The refusals of the domain modules (tenants, sites, keys, users, meters).

Each face maps them its own way: the operator API to 404 / 409, the UI to a message on the
page, the CLI to one line on stderr and a sysexits code.
"""

from __future__ import annotations


class NotFound(Exception):
    """The tenant, site or key named does not exist (or is not visible to the caller)."""


class Conflict(Exception):
    """The name is already taken."""
