"""Free loopback ports that stay ours for the whole session.

Ports come from below the kernel's ephemeral range, so a client's outgoing
connection can never take a server's port while the server is stopped for a
restart. Each handed-out port is locked with ``flock`` on a file in a directory
of the user's own (``$XDG_RUNTIME_DIR/tenfold-test-ports``, else
``<tmp>/tenfold-test-ports-<uid>``, mode 0700), so harness sessions running side by
side (several pytest runs) never pick the same port. The directory must be a real
directory owned by the user and lock files are opened without following symlinks:
another user cannot plant a link there to make the harness create or truncate files.
Sessions of different users are kept apart by the bind check instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import stat
import tempfile
from pathlib import Path

from tenfold.testing._errors import HarnessError

__all__ = ["allocate_port", "release_port"]

#: Redis Cluster nodes also listen on port + 10000 (the cluster bus).
CLUSTER_BUS_OFFSET = 10000
#: Where the lock directory goes; None: $XDG_RUNTIME_DIR, else the temp directory.
_LOCK_BASE: Path | None = None
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


def lock_dir() -> Path:
    """This user's lock directory, created 0700; refuses a symlink or another owner's."""
    if _LOCK_BASE is not None:
        path = _LOCK_BASE / "tenfold-test-ports"
    elif (runtime := os.environ.get("XDG_RUNTIME_DIR")) and os.path.isdir(runtime):
        path = Path(runtime) / "tenfold-test-ports"
    else:
        path = Path(tempfile.gettempdir()) / f"tenfold-test-ports-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise HarnessError(f"the port-lock directory {path} is not a directory (a symlink?)")
    if info.st_uid != os.getuid():
        raise HarnessError(
            f"the port-lock directory {path} belongs to uid {info.st_uid}, not to this user"
        )
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def _lock(port: int) -> bool:
    path = lock_dir() / f"{port}.lock"
    flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if os.path.islink(path):
            raise HarnessError(f"the port lock {path} is a symlink; refusing to follow it") from exc
        raise
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
