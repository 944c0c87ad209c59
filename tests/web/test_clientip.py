"""client_ip: forwarding headers believed only from trusted proxies, right-most untrusted hop."""

from __future__ import annotations

from typing import Any

import pytest

from tenfold.web import ClientAddress, client_ip, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "2001:db8::/32"])


def scope(peer: str | None, *headers: tuple[str, str]) -> dict[str, Any]:
    """An HTTP scope from ``peer`` carrying ``headers``."""
    return {
        "type": "http",
        "client": (peer, 1234) if peer else None,
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }


def test_untrusted_peer_ignores_forwarded_for() -> None:
    """A spoofed X-Forwarded-For from an untrusted peer does not change the address."""
    s = scope("203.0.113.7", ("x-forwarded-for", "1.2.3.4"))
    assert client_ip(s, PROXIES) == "203.0.113.7"


def test_trusted_peer_takes_rightmost_untrusted_hop() -> None:
    """Behind trusted proxies the right-most untrusted hop wins, not the client-chosen left-most."""
    s = scope("10.0.0.2", ("x-forwarded-for", "6.6.6.6, 198.51.100.9, 10.0.0.1"))
    assert client_ip(s, PROXIES) == "198.51.100.9"


def test_several_header_lines_form_one_chain() -> None:
    """Repeated X-Forwarded-For lines are one chain, read in order."""
    s = scope("10.0.0.2", ("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.9"))
    assert client_ip(s, PROXIES) == "198.51.100.9"


def test_all_trusted_chain_gives_leftmost_proxy() -> None:
    """When every hop is a trusted proxy the furthest one is the client."""
    s = scope("10.0.0.2", ("x-forwarded-for", "10.1.1.1, 10.0.0.1"))
    assert client_ip(s, PROXIES) == "10.1.1.1"


def test_malformed_hop_stops_the_walk() -> None:
    """A hop that is not an address ends the walk at the last readable hop."""
    s = scope("10.0.0.2", ("x-forwarded-for", "6.6.6.6, garbage, 10.0.0.1"))
    assert client_ip(s, PROXIES) == "10.0.0.1"


def test_forwarded_header_for_parameter() -> None:
    """RFC 7239 Forwarded: quoted IPv6 with port and IPv4 with port are read."""
    value = 'for=6.6.6.6, for="[2001:db9::1]:4711";proto=https, for=10.0.0.1:80'
    s = scope("10.0.0.2", ("forwarded", value))
    assert client_ip(s, PROXIES, header="forwarded") == "2001:db9::1"


def test_other_header_is_ignored() -> None:
    """Only the configured header counts; a client-sent Forwarded is ignored when reading XFF."""
    s = scope("10.0.0.2", ("forwarded", "for=6.6.6.6"))
    assert client_ip(s, PROXIES) == "10.0.0.2"


@pytest.mark.parametrize("peer", ["::ffff:203.0.113.7", "203.0.113.7"])
def test_ipv4_mapped_peer_is_normalised(peer: str) -> None:
    """An IPv4-mapped IPv6 peer keys the same as its IPv4 address."""
    assert client_ip(scope(peer), PROXIES) == "203.0.113.7"


def test_no_peer_is_none() -> None:
    """Without a peer address there is no client address."""
    assert client_ip(scope(None, ("x-forwarded-for", "1.2.3.4")), PROXIES) is None


def test_trusted_peer_reports_the_scheme() -> None:
    """X-Forwarded-Proto from a trusted peer is the scheme; the right-most value wins."""
    s = scope("10.0.0.2", ("x-forwarded-for", "6.6.6.6"), ("x-forwarded-proto", "http, https"))
    assert ClientAddress(PROXIES).resolve(s) == ("6.6.6.6", "https")


def test_untrusted_peer_reports_no_scheme() -> None:
    """X-Forwarded-Proto from an untrusted peer is ignored, like its X-Forwarded-For."""
    s = scope("203.0.113.7", ("x-forwarded-proto", "https"))
    assert ClientAddress(PROXIES).resolve(s) == ("203.0.113.7", None)


def test_unknown_scheme_is_ignored() -> None:
    """A scheme other than http or https is not believed."""
    s = scope("10.0.0.2", ("x-forwarded-proto", "gopher"))
    assert ClientAddress(PROXIES).resolve(s) == ("10.0.0.2", None)


def test_forwarded_proto_parameter() -> None:
    """In forwarded mode the scheme is proto= of Forwarded; X-Forwarded-Proto is ignored."""
    s = scope(
        "10.0.0.2",
        ("forwarded", "for=6.6.6.6;proto=https"),
        ("x-forwarded-proto", "http"),
    )
    assert ClientAddress(PROXIES, "forwarded").resolve(s) == ("6.6.6.6", "https")
