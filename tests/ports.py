"""Ports for the servers tests start: below the kernel's ephemeral range, never the same one twice.

A port from bind(0) is an ephemeral one, which any outgoing connection opened before the listener starts may
take (a `platograph up` in CI lost its graph service's port to one of its own children's connections to
Redis or Postgres), and two bind(0) calls may name the same port.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_HANDED_OUT: set[int] = set()
BUS = 10_000  # a Valkey cluster node also listens on its port + 10000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, bus: bool = False) -> int:
    """A port nothing listens on now (with `bus`, its port + 10000 too, both below the ephemeral range)."""
    high = _ephemeral_low() - (BUS if bus else 0)
    for _ in range(10_000):
        port = random.randrange(10_000, high)
        wanted = [port, port + BUS] if bus else [port]
        if any(p in _HANDED_OUT or p + BUS in _HANDED_OUT or p - BUS in _HANDED_OUT for p in wanted):
            continue
        if all(_bindable(p) for p in wanted):
            _HANDED_OUT.update(wanted)
            return port
    raise RuntimeError(f"no free port below {high}")
