"""Graceful shutdown: readiness flips at once, in-flight requests still complete."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from starlette.middleware import Middleware

from tenfold.health import InFlightMiddleware, Lifecycle

_APP_DIR = Path(__file__).parent


async def test_wait_drained_when_idle() -> None:
    """With nothing in flight wait_drained returns True at once."""
    assert await Lifecycle().wait_drained(0.01) is True


@pytest.fixture
def gated_app() -> tuple[FastAPI, Lifecycle, asyncio.Event]:
    lifecycle = Lifecycle()
    gate = asyncio.Event()
    app = FastAPI(middleware=[Middleware(InFlightMiddleware, lifecycle=lifecycle)])

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await gate.wait()
        return {"done": True}

    return app, lifecycle, gate


async def _until(predicate, what: str) -> None:
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"gave up waiting for {what}")


async def test_in_flight_requests_are_counted_and_awaited(gated_app) -> None:
    """wait_drained returns once the in-flight request finishes; it was counted meanwhile."""
    app, lifecycle, gate = gated_app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        request = asyncio.create_task(client.get("/slow"))
        await _until(lambda: lifecycle.in_flight == 1, "the request to start")
        lifecycle.begin_drain()
        waiter = asyncio.create_task(lifecycle.wait_drained(30))
        await asyncio.sleep(0)
        assert not waiter.done()
        gate.set()
        assert await waiter is True
        response = await request
    assert response.status_code == 200
    assert lifecycle.in_flight == 0


async def test_wait_drained_gives_up_after_timeout(gated_app) -> None:
    """A request that does not finish makes wait_drained return False after the timeout."""
    app, lifecycle, gate = gated_app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        request = asyncio.create_task(client.get("/slow"))
        await _until(lambda: lifecycle.in_flight == 1, "the request to start")
        assert await lifecycle.wait_drained(0.05) is False
        gate.set()
        await request


async def test_responses_while_draining_close_the_connection(gated_app) -> None:
    """While draining, responses say Connection: close so clients reconnect elsewhere."""
    app, lifecycle, gate = gated_app
    gate.set()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert "connection" not in (await client.get("/slow")).headers
        lifecycle.begin_drain()
        assert (await client.get("/slow")).headers["connection"] == "close"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _status(port: int, path: str) -> int | None:
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            return (await client.get(f"http://127.0.0.1:{port}{path}")).status_code
    except httpx.TransportError:
        return None


@pytest.mark.slow
async def test_sigterm_drains_tenfold_run(tmp_path: Path) -> None:
    """Under `tenfold run`, SIGTERM makes /ready 503 at once and a slow request still completes."""
    port = _free_port()
    started = tmp_path / "started"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TENFOLD_")},
        "PYTHONPATH": str(_APP_DIR),
        "DRAIN_TEST_STARTED": str(started),
        "TENFOLD_DB__URL": f"sqlite+aiosqlite:///{tmp_path}/app.db",
        "TENFOLD_OBSERVABILITY__LOG_FORMAT": "json",
        "TENFOLD_HEALTH__DRAIN_DELAY": "0.5",
        "TENFOLD_HEALTH__DRAIN_TIMEOUT": "20",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tenfold", "run", "--app", "drain_app:app", "--port", str(port),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await _until_async(lambda: _status(port, "/health"), 200, "the server to start")
        assert await _status(port, "/ready") == 200
        async with httpx.AsyncClient(timeout=30.0) as slow_client:
            slow = asyncio.create_task(slow_client.get(f"http://127.0.0.1:{port}/slow"))
            await _until(started.exists, "the slow request to start")
            proc.send_signal(signal.SIGTERM)
            await _until_async(lambda: _status(port, "/ready"), 503, "readiness to fail")
            await _until_async(lambda: _status(port, "/health"), None, "the listener to close")
            assert not slow.done()
            proc.send_signal(signal.SIGUSR1)  # let the slow request finish
            response = await slow
        assert response.status_code == 200
        assert response.json() == {"done": True}
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    # uvicorn re-raises the SIGTERM it captured once shutdown is complete.
    assert proc.returncode in (0, -signal.SIGTERM), err.decode()
    events = [orjson.loads(line) for line in out.splitlines() if line.startswith(b"{")]
    names = [e["event"] for e in events]
    assert "drain_started" in names
    (stopped,) = [e for e in events if e["event"] == "app_stopped"]
    assert stopped["drained"] is True
    slow_lines = [e for e in events if e.get("route") == "/slow"]
    assert [e["status"] for e in slow_lines] == [200]


async def _until_async(probe, expected, what: str) -> None:
    for _ in range(1000):
        if await probe() == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")
