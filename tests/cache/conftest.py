"""Fixtures for the Cache tests: a controllable clock and caches over every kind of L2."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tenfold import CacheSettings, RedisSettings
from tenfold.cache import NamespacePolicy
from tenfold.cache._cache import Cache
from tenfold.cache._memory import MemoryBackend
from tenfold.cache._redis import RedisBackend

#: Generous bound: turns a hang into a failure; never a measurement.
BOUND = 10.0

BACKENDS = ["l1-only", "memory", "redis", "cluster"]

#: The named namespaces these tests use, each with the policy the tests rely on. tenfold
#: declares none, so every cache built here declares them, as an app does its own.
TEST_NAMESPACES: dict[str, NamespacePolicy] = {
    "tournament": NamespacePolicy(ttl=300, stale_ttl=60),
    "leaderboard": NamespacePolicy(ttl=5, stale_ttl=5),
    "profile": NamespacePolicy(ttl=3600, stale_ttl=300),
    "immutable": NamespacePolicy(ttl=None),
}


def with_test_namespaces(settings: CacheSettings | None = None) -> CacheSettings:
    """``settings`` (by default the defaults) with ``TEST_NAMESPACES`` declared."""
    return (settings or CacheSettings()).with_namespaces(**TEST_NAMESPACES)


class FakeClock:
    """Monotonic and wall time that only move when told to."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = time.time()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


async def eventually(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Poll ``check`` every 10 ms until true (at most BOUND s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ns() -> str:
    """A namespace unique to the test, so tests sharing a Redis never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def make_cache(
    request: pytest.FixtureRequest, kind: str, clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[Cache]]]:
    """Build started caches on the test's backend kind; caches on one test share one L2.

    Without ``settings`` a cache has the defaults plus ``TEST_NAMESPACES``.
    """
    made: list[Cache] = []
    memory = MemoryBackend() if kind == "memory" else None

    def backend() -> Any:
        if kind == "memory":
            return _Unclosed(memory)
        if kind == "redis":
            server = request.getfixturevalue("redis_server")
            return RedisBackend.from_url(server.url, socket_timeout=2.0, health_interval=0.2)
        if kind == "cluster":
            cluster = request.getfixturevalue("redis_cluster")
            return RedisBackend.from_cluster(cluster.startup_nodes, socket_timeout=2.0)
        return None

    async def make(
        settings: CacheSettings | None = None, *, use_clock: bool = True, **options: Any
    ) -> Cache:
        if use_clock:
            options.setdefault("clock", clock.monotonic)
            options.setdefault("wall_clock", clock.time)
        settings = settings or with_test_namespaces()
        cache = Cache(settings, RedisSettings(), backend=backend(), **options)
        await cache.start()
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.stop()
    if memory is not None:
        await memory.aclose()


class _Unclosed:
    """A shared MemoryBackend that one cache's stop() must not close for the others."""

    def __init__(self, inner: MemoryBackend) -> None:
        self._inner = inner
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def aclose(self) -> None:
        return None
