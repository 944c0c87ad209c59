"""The pytest plugin's rules for missing binaries and external servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tenfold.testing import RabbitMQServer, RedisServer

_NEEDS_SERVERS = """
def test_pg(pg_cluster):
    pass

def test_redis(redis_server):
    pass

def test_bouncer(pgbouncer):
    pass

def test_rabbitmq(rabbitmq_server):
    pass
"""

_BREAKS_REDIS = """
def test_kill(redis_server):
    redis_server.kill()
"""

_LEAVES_REDIS_BROKEN = """
def test_kill(redis_server):
    redis_server.kill()

def test_pause(redis_server):
    assert redis_server.command("PING") is True
    redis_server.pause()

def test_finds_it_running(redis_server):
    assert redis_server.command("PING") is True
"""

_LEAVES_RABBITMQ_BROKEN = """
def test_kill(rabbitmq_server):
    rabbitmq_server.kill()

def test_pause(rabbitmq_server):
    rabbitmq_server.handshake()
    rabbitmq_server.pause()

def test_finds_it_running(rabbitmq_server):
    rabbitmq_server.handshake()
"""


def _run_pytest(tmp_path: Path, source: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(source)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TENFOLD_TEST_", "CI"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "test_inner.py"],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_missing_binary_fails_under_ci(tmp_path: Path) -> None:
    """With CI=true and no binaries, every server fixture errors naming what to install."""
    empty = tmp_path / "bin"
    empty.mkdir()
    done = _run_pytest(tmp_path, _NEEDS_SERVERS, CI="true", TENFOLD_TEST_BIN_PATH=str(empty))
    assert done.returncode == 1, done.stdout
    assert "4 errors" in done.stdout
    assert "skipped" not in done.stdout
    assert "apt-get install -y postgresql" in done.stdout
    assert "apt-get install -y redis-server" in done.stdout
    assert "apt-get install -y rabbitmq-server" in done.stdout


def test_missing_binary_skips_outside_ci(tmp_path: Path) -> None:
    """Without CI, a missing binary skips the tests that need it, with the reason."""
    empty = tmp_path / "bin"
    empty.mkdir()
    done = _run_pytest(tmp_path, _NEEDS_SERVERS, TENFOLD_TEST_BIN_PATH=str(empty))
    assert done.returncode == 0, done.stdout
    assert "4 skipped" in done.stdout
    assert "redis-server not found" in done.stdout
    assert "rabbitmq-server not found" in done.stdout


@pytest.mark.redis
def test_break_helper_on_external_server_skips(tmp_path: Path, redis_server: RedisServer) -> None:
    """Killing a server named by TENFOLD_TEST_REDIS_URL skips the test instead of failing it."""
    done = _run_pytest(tmp_path, _BREAKS_REDIS, CI="true", TENFOLD_TEST_REDIS_URL=redis_server.url)
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
    assert "external server" in done.stdout
    assert redis_server.command("PING") is True


@pytest.mark.redis
def test_servers_are_healed_after_each_test(tmp_path: Path, redis_server: RedisServer) -> None:
    """A server one test killed, and one it paused, is back up for the next test."""
    # redis_server is requested only so that a missing binary skips (or fails) this test.
    done = _run_pytest(tmp_path, _LEAVES_REDIS_BROKEN)
    assert done.returncode == 0, done.stdout
    assert "3 passed" in done.stdout


@pytest.mark.rabbitmq
def test_rabbitmq_is_healed_after_each_test(
    tmp_path: Path, rabbitmq_server: RabbitMQServer
) -> None:
    """A broker one test killed, and one it paused, is back up for the next test."""
    # rabbitmq_server is requested only so that a missing binary skips (or fails) this test.
    done = _run_pytest(tmp_path, _LEAVES_RABBITMQ_BROKEN)
    assert done.returncode == 0, done.stdout
    assert "3 passed" in done.stdout
