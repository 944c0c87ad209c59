"""Port allocation for harness servers."""

from __future__ import annotations

import socket

from tenfold.testing import allocate_port, release_port


def test_ports_are_distinct_and_bindable() -> None:
    """Twenty allocations give twenty different ports that can be bound on 127.0.0.1."""
    ports = [allocate_port() for _ in range(20)]
    try:
        assert len(set(ports)) == 20
        for port in ports:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))
    finally:
        for port in ports:
            release_port(port)


def test_cluster_ports_leave_room_for_the_bus() -> None:
    """A cluster port is <= 55535 and its bus port (port + 10000) is free too."""
    port = allocate_port(cluster_bus=True)
    try:
        assert port <= 55535
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port + 10000))
    finally:
        release_port(port)
        release_port(port + 10000)
