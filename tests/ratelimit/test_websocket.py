"""ConnectionLimiter and message limits: in memory, on Redis, behind a real FastAPI websocket."""

from __future__ import annotations

import asyncio
import warnings
from contextlib import suppress

import pytest
from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from tenfold.ratelimit import (
    ConnectionLimiter,
    MemoryBackend,
    RedisBackend,
    Rule,
    by_ip,
)
from tenfold.testing import RedisServer

from .conftest import FakeClock

#: Generous bound: turns a hang into a failure; never a measurement.
BOUND = 10.0

# starlette's TestClient warns on import that it wants httpx2; these tests do not depend on it.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient


async def test_cap_release_and_expiry_in_memory(clock: FakeClock) -> None:
    """The cap holds; a release frees a slot; an unrefreshed connection ages out after ttl."""
    limiter = ConnectionLimiter(MemoryBackend(), cap=2, ttl=10.0, clock=clock)
    first, second = await limiter.acquire("ip:a"), await limiter.acquire("ip:a")
    assert first is not None
    assert second is not None
    assert await limiter.acquire("ip:a") is None
    assert await limiter.acquire("ip:b") is not None
    await limiter.release("ip:a", first)
    assert await limiter.acquire("ip:a") is not None
    clock.advance(9.0)
    assert await limiter.refresh("ip:a", second)
    clock.advance(2.0)  # the others (not refreshed) have expired
    assert await limiter.count("ip:a") == 1
    assert await limiter.acquire("ip:a") is not None


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_shared_cap_on_redis_and_crash_expiry(
    request: pytest.FixtureRequest, kind: str, ns: str
) -> None:
    """Two instances share the cap; a crashed holder's slot ages out after ttl."""
    if kind == "redis":
        url = request.getfixturevalue("redis_server").url
        backends = [RedisBackend.from_url(url, socket_timeout=2.0) for _ in range(2)]
    else:
        nodes = request.getfixturevalue("redis_cluster").startup_nodes
        backends = [RedisBackend.from_cluster(nodes, socket_timeout=2.0) for _ in range(2)]
    # A long ttl while the cap is checked: a loaded machine must not let slots expire early.
    one, two = (ConnectionLimiter(b, cap=2, ttl=30.0) for b in backends)
    key = "ip:" + ns
    held = await one.acquire(key)
    assert held is not None
    assert await two.acquire(key) is not None  # the "crashed" one: never released
    assert await one.acquire(key) is None
    assert await two.count(key) == 2
    await one.release(key, held)
    assert await two.count(key) == 1
    # A crashed holder's slot ages out on Redis's clock, which no test controls: wait for it.
    short = ConnectionLimiter(backends[1], cap=2, ttl=0.05)
    crashed = await short.acquire(key + ":short")
    assert crashed is not None
    async with asyncio.timeout(BOUND):
        # Polling on purpose: the expiry happens in Redis, no event announces it.
        while await short.count(key + ":short"):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert await short.refresh(key + ":short", crashed) is False
    for backend in backends:
        await backend.aclose()


class Alarm:
    """A ``sleep`` that returns only when the test rings: the refresher runs tick by tick."""

    def __init__(self) -> None:
        self.naps: list[float] = []
        self._sleeper: asyncio.Future[None] | None = None
        self._asleep = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self._sleeper = asyncio.get_running_loop().create_future()
        self._asleep.set()
        await self._sleeper

    async def ring(self) -> None:
        """Wake the sleeper and wait until it sleeps again: what it did in between is done."""
        await self._asleep.wait()
        self._asleep.clear()
        assert self._sleeper is not None
        self._sleeper.set_result(None)
        await self._asleep.wait()


async def test_slot_keeps_a_connection_counted_past_its_ttl(clock: FakeClock) -> None:
    """slot() refreshes every ttl/3, so a long-lived connection outlives its ttl; exit frees it."""
    alarm = Alarm()
    limiter = ConnectionLimiter(MemoryBackend(), cap=1, ttl=9.0, clock=clock, sleep=alarm.sleep)
    async with limiter.slot("ip:a") as admitted:
        assert admitted
        for _ in range(4):
            clock.advance(8.0)  # one second short of expiry...
            await alarm.ring()  # ...the refresher pushes it ttl ahead
        assert await limiter.count("ip:a") == 1  # 32 s in, with a 9 s ttl
        async with limiter.slot("ip:a") as second:
            assert not second
        assert alarm.naps == [3.0] * 5
    assert await limiter.count("ip:a") == 0


async def test_slot_refreshes_and_releases_on_redis(redis_server: RedisServer, ns: str) -> None:
    """On Redis, slot() counts the connection, refreshes it while held and releases it on exit."""
    backend = RedisBackend.from_url(redis_server.url, socket_timeout=2.0)
    alarm = Alarm()
    limiter = ConnectionLimiter(backend, cap=1, ttl=30.0, sleep=alarm.sleep)
    try:
        async with limiter.slot(ns) as admitted:
            assert admitted
            await alarm.ring()
            await alarm.ring()  # two refreshes on Redis, each answered without error
            assert await limiter.count(ns) == 1
            async with limiter.slot(ns) as second:
                assert not second
        assert await limiter.count(ns) == 0
    finally:
        await backend.aclose()


def make_app(cap: int, messages: Rule) -> FastAPI:
    backend = MemoryBackend()
    limiter = ConnectionLimiter(backend, cap=cap)
    app = FastAPI()
    key = by_ip()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        ip = key(websocket.scope)
        async with limiter.slot(ip) as admitted:
            if not admitted:
                await websocket.close(code=1008)
                return
            await websocket.accept()
            with suppress(WebSocketDisconnect):  # the client hung up: release the slot
                while True:
                    text = await websocket.receive_text()
                    if not (await backend.hit(ip, messages)).allowed:
                        await websocket.close(code=1008, reason="message rate exceeded")
                        return
                    await websocket.send_text(text)

    app.state.limiter = limiter
    return app


def test_websocket_connection_cap() -> None:
    """A third connection from one IP is closed with 1008; a disconnect frees its slot."""
    app = make_app(2, Rule("100/minute"))
    with TestClient(app) as client:
        with client.websocket_connect("/ws") as one, client.websocket_connect("/ws"):
            one.send_text("hi")
            assert one.receive_text() == "hi"
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                client.websocket_connect("/ws") as third,
            ):
                third.receive_text()
            assert refused.value.code == 1008
        with client.websocket_connect("/ws") as again:
            again.send_text("back")
            assert again.receive_text() == "back"


def test_websocket_message_rate() -> None:
    """Past the message rate the server closes the socket with 1008."""
    app = make_app(5, Rule("3/minute"))
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        for n in range(3):
            ws.send_text(str(n))
            assert ws.receive_text() == str(n)
        ws.send_text("too many")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 1008
