"""Port allocation for harness servers."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from tenfold.testing import HarnessError, _ports, allocate_port, release_port


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


@pytest.fixture
def lock_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(_ports, "_LOCK_BASE", tmp_path)
    return tmp_path


def test_the_lock_directory_is_the_users_own() -> None:
    """Locks live in a directory owned by this user, closed to everyone else, never in a
    directory every user can write (where another user could plant links)."""
    port = allocate_port()
    try:
        directory = _ports.lock_dir()
        info = os.lstat(directory)
        assert stat.S_ISDIR(info.st_mode)
        assert info.st_uid == os.getuid()
        assert stat.S_IMODE(info.st_mode) == 0o700
        assert (directory / f"{port}.lock").exists()
        assert str(os.getuid()) in str(directory) or "XDG_RUNTIME_DIR" in os.environ
    finally:
        release_port(port)


def test_a_symlinked_lock_directory_is_refused(lock_base: Path) -> None:
    """A link planted where the lock directory goes is refused, not followed."""
    target = lock_base / "elsewhere"
    target.mkdir()
    (lock_base / "tenfold-test-ports").symlink_to(target)
    with pytest.raises(HarnessError, match="symlink"):
        allocate_port()
    assert list(target.iterdir()) == []


def test_a_symlinked_lock_file_is_refused(lock_base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link planted as a port's lock file is never followed (nothing is created through it)."""
    directory = lock_base / "tenfold-test-ports"
    directory.mkdir(mode=0o700)
    victim = lock_base / "victim"
    span = 150  # a narrow range, every port of it planted
    monkeypatch.setattr(_ports, "_ephemeral_low", lambda: _ports._LOWEST + span)
    for port in range(_ports._LOWEST, _ports._LOWEST + span):
        (directory / f"{port}.lock").symlink_to(victim)
    with pytest.raises(HarnessError, match="symlink"):
        allocate_port()
    assert not victim.exists()


def test_a_world_writable_lock_directory_is_closed(lock_base: Path) -> None:
    """A lock directory left open to others (an older layout, a lax umask) is closed to 0700."""
    directory = lock_base / "tenfold-test-ports"
    directory.mkdir()
    directory.chmod(0o1777)
    port = allocate_port()
    release_port(port)
    assert stat.S_IMODE(os.lstat(directory).st_mode) == 0o700
