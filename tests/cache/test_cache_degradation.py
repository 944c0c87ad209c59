"""Redis down or slow: answers keep coming from L1 or the loader, and the cache recovers alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tenfold import CacheSettings, HealthSettings, RedisSettings
from tenfold.cache._cache import Cache
from tenfold.health import HealthRegistry
from tenfold.testing import RedisServer, allocate_port, release_port

from .conftest import FakeClock, eventually, with_test_namespaces

SETTINGS = with_test_namespaces(
    CacheSettings(
        redis_timeout=0.1,
        breaker_failures=3,
        breaker_reset=5.0,
        warm_check_interval=None,
    )
)


def redis_at(url: str) -> RedisSettings:
    """A quickly-probed pub/sub connection that reconnects fast."""
    return RedisSettings(url=url, health_interval=0.2, reconnect_backoff=0.1)


@pytest.fixture
def health() -> HealthRegistry:
    return HealthRegistry(HealthSettings(cache_ttl=0))


@pytest.fixture
async def cache(
    redis_server: RedisServer, clock: FakeClock, health: HealthRegistry
) -> AsyncIterator[Cache]:
    """A Redis-backed cache whose breaker runs on the fake clock."""
    c = Cache(SETTINGS, redis_at(redis_server.url), health=health, clock=clock.monotonic)
    await c.start()
    yield c
    await c.stop()


def _app(cache: Cache, loads: list[int]) -> FastAPI:
    app = FastAPI()

    @app.get("/team/{team_id}")
    async def team(team_id: int) -> dict[str, int]:
        async def load() -> dict[str, int]:
            loads.append(team_id)
            await asyncio.sleep(0.001)  # a database round trip
            return {"id": team_id, "points": team_id * 10}

        return await cache.get_or_load(cache.key("tournament", "team", team_id), load)

    return app


async def test_redis_stopped_mid_load_then_restarted(
    cache: Cache, redis_server: RedisServer, clock: FakeClock, health: HealthRegistry
) -> None:
    """Stopping Redis under load gives no error to any caller (values come from L1 or the
    loader), /ready turns degraded, and after a restart the cache recovers by itself."""
    loads: list[int] = []
    transport = httpx.ASGITransport(app=_app(cache, loads))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

        async def burst(ids: range) -> None:
            responses = await asyncio.gather(*(client.get(f"/team/{i}") for i in ids))
            assert [r.status_code for r in responses] == [200] * len(ids)
            assert [r.json()["points"] for r in responses] == [i * 10 for i in ids]

        await burst(range(50))
        stopping = asyncio.create_task(asyncio.to_thread(redis_server.stop))
        while not stopping.done():  # requests keep coming while Redis goes away
            await burst(range(40, 80))
        await stopping
        await burst(range(0, 120))
        assert cache.breaker.is_open
        assert cache.stats.redis_errors >= SETTINGS.breaker_failures
        report = await health.report()
        assert report.status == "degraded"
        assert report.checks["cache.redis"]["status"] != "ok"

        await asyncio.to_thread(redis_server.start)
        clock.advance(SETTINGS.breaker_reset)  # the breaker may now try Redis again
        await eventually(_recovered(cache, client), "the cache to use Redis again")
        assert (await health.report()).status == "ok"


def _recovered(cache: Cache, client: httpx.AsyncClient):
    async def check() -> bool:
        before = cache.stats.namespace("tournament").l2_hits
        cache.l1.clear()
        await client.get("/team/1")  # fills L2 once Redis is back...
        cache.l1.clear()
        await client.get("/team/1")  # ...and is then read from it
        bus = cache.invalidation
        live = bus is not None and bus.live
        return (
            live
            and not cache.breaker.is_open
            and cache.stats.namespace("tournament").l2_hits > before
        )

    return check


async def test_slow_redis_times_out_and_falls_back(cache: Cache, redis_server: RedisServer):
    """A Redis that stops answering (SIGSTOP) costs a call redis_timeout, then the breaker
    opens and callers get loader values without waiting on Redis at all."""
    k = cache.key("profile", uuid.uuid4().hex)
    redis_server.pause()
    try:
        values = [await cache.get_or_load(k + str(i), _const(i)) for i in range(10)]
        assert values == list(range(10))
        assert cache.breaker.is_open
        assert await cache.get(k, "dflt") == "dflt"
    finally:
        redis_server.resume()


def _const(value: int):
    async def load() -> int:
        return value

    return load


async def test_invalidation_during_outage_is_replayed(
    cache: Cache, redis_server: RedisServer, clock: FakeClock
) -> None:
    """A delete that cannot reach Redis is applied locally, queued, and replayed once Redis
    answers again, so the old value does not come back from L2."""
    other = Cache(SETTINGS, redis_at(redis_server.url))
    await other.start()
    try:
        k = cache.key("profile", uuid.uuid4().hex)
        await cache.set(k, "old")
        redis_server.pause()
        await cache.delete(k)  # no exception, although Redis does not answer
        assert cache._levels.pending
        assert await cache.get(k) is None  # L2 is not read while the delete is pending
        redis_server.resume()
        clock.advance(SETTINGS.breaker_reset)
        await eventually(lambda: not cache._levels.pending, "the replay")
        assert await other.get(k) is None
    finally:
        redis_server.resume()
        await other.stop()


async def test_start_with_redis_unreachable_degrades() -> None:
    """A cache started while Redis is unreachable works L1-only and reports degraded."""
    port = allocate_port()
    health = HealthRegistry(HealthSettings(cache_ttl=0))
    cache = Cache(SETTINGS, redis_at(f"redis://127.0.0.1:{port}"), health=health)
    try:
        await cache.start()
        loads = 0

        async def load() -> str:
            nonlocal loads
            loads += 1
            return "v"

        k = cache.key("profile", "x")
        assert [await cache.get_or_load(k, load) for _ in range(3)] == ["v"] * 3
        assert loads == 1  # L1 still serves (capped at degraded_l1_ttl)
        assert (await health.report()).status == "degraded"
    finally:
        await cache.stop()
        release_port(port)
