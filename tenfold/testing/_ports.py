"""Free loopback ports that stay ours for the whole session.

Ports come from below the kernel's ephemeral range, so a client's outgoing
connection can never take a server's port while the server is stopped for a
restart. Each handed-out port is locked with ``flock`` on a file under
``/tmp/tenfold-test-ports``, so harness sessions running side by side on one
machine (several engineers, several pytest runs) never pick the same port.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
from pathlib import Path

from tenfold.testing._errors import HarnessError

__all__ = ["allocate_port", "release_port"]

#: Redis Cluster nodes also listen on port + 10000 (the cluster bus).
CLUSTER_BUS_OFFSET = 10000
_LOCK_DIR = Path("/tmp/tenfold-test-ports")
_LOWEST = 15000
_ATTEMPTS = 500
_held: dict[int, int] = {}  # port -> fd of its lock file, for this process
_random = random.SystemRandom()


def _ephemeral_low() -> int:
    try:
        low, _ = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low)
    except (OSError, ValueError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _lock(port: int) -> bool:
    _LOCK_DIR.mkdir(mode=0o777, exist_ok=True)
    with contextlib.suppress(PermissionError):
        # Shared by every user on the machine; mkdir's mode is masked by umask.
        _LOCK_DIR.chmod(0o1777)
    try:
        fd = os.open(_LOCK_DIR / f"{port}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    except PermissionError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _held[port] = fd
    return True


def _try_reserve(port: int, extra: int | None) -> bool:
    ports = [port] if extra is None else [port, extra]
    if any(p in _held for p in ports):
        return False
    reserved: list[int] = []
    for p in ports:
        if not _lock(p):
            break
        reserved.append(p)
        if not _bindable(p):
            break
    else:
        return True
    for p in reserved:
        release_port(p)
    return False


def allocate_port(*, cluster_bus: bool = False) -> int:
    """Reserve and return a free port on 127.0.0.1.

    With ``cluster_bus=True`` the port is <= 55535 and port + 10000 is free
    (and reserved) too, as a Redis Cluster node needs.
    """
    offset = CLUSTER_BUS_OFFSET if cluster_bus else 0
    highest = min(_ephemeral_low(), 65536) - 1 - offset
    if highest - _LOWEST < 100:
        raise HarnessError(
            f"no port range below the ephemeral ports ({_ephemeral_low()}+) is left for servers"
        )
    for _ in range(_ATTEMPTS):
        port = _random.randint(_LOWEST, highest)
        if _try_reserve(port, port + offset if cluster_bus else None):
            return port
    raise HarnessError(f"no free port found in {_LOWEST}..{highest} after {_ATTEMPTS} tries")


def release_port(port: int) -> None:
    """Give a reserved port back to other harness sessions."""
    fd = _held.pop(port, None)
    if fd is not None:
        os.close(fd)
