"""The client's address behind trusted proxies: ``client_ip(scope, trusted)``.

``X-Forwarded-For`` and ``Forwarded`` are written by whoever sent the request,
so they are believed only when the direct peer is a configured proxy. The
chain is then walked from the right (the hop the nearest proxy appended),
skipping trusted proxies; the first untrusted address is the client. The
left-most value is whatever the client chose to send and is never used.

The scheme the client used (``X-Forwarded-Proto``, or ``proto=`` of
``Forwarded``) is believed under the same condition; the right-most value
wins, the one the nearest proxy wrote.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

__all__ = ["ClientAddress", "IPNetwork", "client_ip", "parse_networks"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_HEADERS = {"x-forwarded-for": b"x-forwarded-for", "forwarded": b"forwarded"}
_PROTO = b"x-forwarded-proto"
_SCHEMES = frozenset({"http", "https"})
_HOPS_CACHED = 4096


def parse_networks(cidrs: Sequence[str]) -> tuple[IPNetwork, ...]:
    """The networks of ``cidrs`` (``"10.0.0.0/8"``, ``"::1"``); a bad one is a ValueError."""
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def client_ip(
    scope: Scope, trusted: Sequence[IPNetwork] = (), header: str = "x-forwarded-for"
) -> str | None:
    """The client address of ``scope``, believing ``header`` only from a ``trusted`` peer.

    ``header`` is the one your proxy writes, ``"x-forwarded-for"`` or
    ``"forwarded"`` (RFC 7239 ``for=``); the other is ignored, since a proxy
    passes through whatever the client put in it.
    """
    return ClientAddress(trusted, header)(scope)


class ClientAddress:
    """``client_ip`` for one trust configuration, remembering the hops it has parsed.

    Parsing an address and testing it against the networks costs microseconds;
    behind a load balancer the same few peers and client hops recur, so each
    hop's text maps to its (normalised address, trusted) in a bounded table.
    """

    __slots__ = ("_hops", "_name", "_trusted")

    def __init__(self, trusted: Sequence[IPNetwork] = (), header: str = "x-forwarded-for") -> None:
        self._trusted = tuple(trusted)
        self._name = _HEADERS[header]
        self._hops: dict[str, tuple[str | None, bool]] = {}

    def __repr__(self) -> str:
        nets = ", ".join(str(n) for n in self._trusted) or "nobody"
        return f"<ClientAddress {self._name.decode()} from {nets}>"

    def __call__(self, scope: Scope) -> str | None:
        return self.resolve(scope)[0]

    def resolve(self, scope: Scope) -> tuple[str | None, str | None]:
        """(The client address, the scheme a trusted proxy reported or None)."""
        client = scope.get("client")
        if not client:
            return None, None
        host = client[0]
        if not self._trusted and host and ":" not in host and host[0].isdigit():
            # No proxies to believe: a server gives a dotted IPv4 peer as is.
            return host, None
        peer, trusted = self._hop(host)
        if peer is None or not trusted:
            return peer, None
        chain, scheme = _forwarded(scope, self._name)
        result = peer
        for value in reversed(chain):
            addr, trusted = self._hop(value)
            if addr is None:
                # Left of a hop we cannot read, nothing can be attributed to anyone.
                break
            result = addr
            if not trusted:
                break
        return result, scheme

    def _hop(self, text: str) -> tuple[str | None, bool]:
        found = self._hops.get(text)
        if found is None:
            addr = _address(text)
            found = (None, False) if addr is None else (str(addr), _is_trusted(addr, self._trusted))
            if len(self._hops) >= _HOPS_CACHED:
                self._hops.clear()
            self._hops[text] = found
        return found


def _forwarded(scope: Scope, name: bytes) -> tuple[list[str], str | None]:
    """The chain of hops in header ``name``, and the last scheme a proxy reported."""
    values: list[str] = []
    scheme: str | None = None
    for key, raw in scope.get("headers", ()):
        key = key.lower()
        if key == name:
            text = raw.decode("latin-1")
            if name == b"forwarded":
                hops, proto = _forwarded_for(text)
                values.extend(hops)
                scheme = proto or scheme
            else:
                values.extend(text.split(","))
        elif key == _PROTO and name != b"forwarded":
            scheme = _scheme(raw.decode("latin-1").rpartition(",")[2]) or scheme
    return values, scheme


def _forwarded_for(text: str) -> tuple[list[str], str | None]:
    # RFC 7239: elements split by ",", pairs by ";"; one for= per element (or none).
    found: list[str] = []
    scheme: str | None = None
    for element in text.split(","):
        value = ""
        for pair in element.split(";"):
            name, _, raw = pair.strip().partition("=")
            name = name.lower()
            if name == "for":
                value = raw.strip().strip('"')
            elif name == "proto":
                scheme = _scheme(raw) or scheme
        found.append(value)
    return found, scheme


def _scheme(text: str) -> str | None:
    value = text.strip().strip('"').lower()
    return value if value in _SCHEMES else None


def _address(value: str) -> _Address | None:
    value = value.strip()
    if value.startswith("["):  # "[2001:db8::1]:4711"
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:  # "192.0.2.1:8080"
        value = value.partition(":")[0]
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _is_trusted(addr: _Address, trusted: Sequence[IPNetwork]) -> bool:
    return any(addr.version == net.version and addr in net for net in trusted)
