"""Where an endpoint may point: public addresses on ordinary ports, or networks and ports the operator
allowlisted.

Checked when a subscription is registered and again before every attempt (DNS can change), and the
attempt then connects to the address that was checked, so a second lookup cannot swap it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.webhooks.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Lookup = Callable[[str, int], list[str]]
#: Ports an endpoint may use without an allowlist: the web's own and the unprivileged range. The ports
#: below 1024 are where a network's own services (SSH, SMTP, DNS, …) listen.
ORDINARY_PORTS = (80, 443)
FIRST_UNPRIVILEGED = 1024
# IPv6 forms that carry an IPv4 address inside them: the embedded address is the real destination.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052, well-known prefix
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local use: its embedding is site-specific
_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291's deprecated IPv4-compatible form
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated but still routed by some networks
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


class UnsafeEndpoint(ValueError):
    """The URL is malformed or reaches an address or port this service must not call."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: Address


def _system_lookup(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def embedded(address: Address) -> list[Address]:
    """The address and every address it stands for: the IPv4 address inside an IPv4-mapped,
    IPv4-compatible, NAT64 or 6to4 address, and a Teredo address's server and client."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    inner: list[Address] = []
    if address.ipv4_mapped is not None:
        inner.append(address.ipv4_mapped)
    elif address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        inner.append(address.sixtofour)
    if address.teredo is not None:
        inner.extend(address.teredo)
    return [address, *inner]


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and (
        address in _NAT64_LOCAL or address in _SITE_LOCAL or address in _UNIQUE_LOCAL
    ):
        return False
    return address.is_global and not address.is_multicast


def allowed(address: Address, allowlist: Sequence[Network]) -> bool:
    """Whether an endpoint may connect to address: in an allowlisted network, or public in every form."""
    forms = embedded(address)
    if any(form in network for form in forms for network in allowlist):
        return True
    return all(_public(form) for form in forms)


def port_allowed(port: int, extra_ports: Collection[int]) -> bool:
    return port > 0 and (port in ORDINARY_PORTS or port >= FIRST_UNPRIVILEGED or port in extra_ports)


def resolve(
    url: str, allowlist: Sequence[Network], *, ports: Collection[int] = (), lookup: Lookup = _system_lookup
) -> Target:
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
        port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeEndpoint(f"url has a bad port: {exc}") from exc
    if not port_allowed(port, ports):
        raise UnsafeEndpoint(
            f"url port {port} is refused: endpoints use 80, 443 or 1024-65535 unless PLATOGRAPH_WEBHOOK_PORTS "
            "permits it"
        )
    try:
        addresses = [ipaddress.ip_address(a.partition("%")[0]) for a in lookup(parts.hostname, port)]
    except (OSError, UnicodeError) as exc:
        raise UnsafeEndpoint(f"cannot resolve {parts.hostname}: {exc}") from exc
    refused = [str(a) for a in addresses if not allowed(a, allowlist)]
    if refused or not addresses:
        raise UnsafeEndpoint(
            f"{parts.hostname} resolves to {', '.join(refused) or 'nothing'}: only globally routable addresses "
            "are called (private, loopback, link-local, site-local and unique-local ones, also inside IPv4-mapped, "
            "NAT64, 6to4 and Teredo forms, are refused unless PLATOGRAPH_WEBHOOK_ALLOWLIST permits them)"
        )
    return Target(parts.scheme, parts.hostname, port, addresses[0])
