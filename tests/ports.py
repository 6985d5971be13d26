"""The one way tests pick ports: ask the kernel for a free one (port 0), TCP or UDP.

Never a fixed number or a counter from one: the machine is shared by parallel test runs, and a
port free for this run now is the only kind that cannot collide with another's.
"""

from __future__ import annotations

import socket


def _free(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_tcp_port() -> int:
    return _free(socket.SOCK_STREAM)


def free_udp_port() -> int:
    return _free(socket.SOCK_DGRAM)
