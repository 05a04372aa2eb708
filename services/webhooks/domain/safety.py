"""Where an endpoint may point: public addresses, or networks the operator allowlisted.

Checked when a subscription is registered and again before every attempt (DNS can change), and
the attempt then connects to the address that was checked, so a second lookup cannot swap it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.webhooks.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeEndpoint(ValueError):
    """The URL is malformed or reaches an address this service must not call."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: Address


def _allowed(address: Address, allowlist: Sequence[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowlist):
        return True
    return address.is_global and not address.is_multicast


def resolve(url: str, allowlist: Sequence[Network]) -> Target:
    """The address to connect to for url; raises UnsafeEndpoint when any address it resolves to is not
    allowed (a host with one public and one private address could be steered to the private one)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeEndpoint("url must start with http:// or https://")
    if not parts.hostname:
        raise UnsafeEndpoint("url has no host")
    if parts.username or parts.password:
        raise UnsafeEndpoint("url must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeEndpoint(f"url has a bad port: {exc}") from exc
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeEndpoint(f"cannot resolve {parts.hostname}: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    refused = [str(a) for a in addresses if not _allowed(a, allowlist)]
    if refused or not addresses:
        raise UnsafeEndpoint(
            f"{parts.hostname} resolves to {', '.join(refused) or 'nothing'}: private, loopback and link-local "
            "addresses are refused unless PLATOGRAPH_WEBHOOK_ALLOWLIST permits them"
        )
    return Target(parts.scheme, parts.hostname, port, addresses[0])
