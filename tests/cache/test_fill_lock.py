"""The cross-process fill lock when Redis stops mid-attempt, and waiters that stop waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tenfold import CacheSettings, RedisSettings
from tenfold.cache._cache import Cache
from tenfold.cache._errors import CacheUnavailable
from tenfold.cache._redis import RedisBackend
from tenfold.testing import RedisServer

from .conftest import BOUND, with_test_namespaces

#: A lock that outlives any test: a reader that waited for it would fail on BOUND instead.
HOUR = 3600.0


@pytest.fixture
async def peer(redis_server: RedisServer) -> AsyncIterator[RedisBackend]:
    """Another instance's view of the same Redis."""
    backend = RedisBackend.from_url(redis_server.url, socket_timeout=2.0)
    yield backend
    await backend.aclose()


async def test_a_lock_attempt_whose_reply_is_lost_leaves_no_lock(
    redis_server: RedisServer, peer: RedisBackend
) -> None:
    """A try_lock cut short while Redis is SIGSTOPped holds no lock once Redis runs again."""
    key = "t" + uuid.uuid4().hex
    holder = RedisBackend.from_url(redis_server.url, socket_timeout=2.0, timeout=0.1)
    try:
        # A pooled connection and a cached script, so the attempt below reaches the socket.
        warm = await holder.try_lock(key + "-warm", 1.0)
        assert warm is not None
        assert await holder.unlock(key + "-warm", warm)
        redis_server.pause()
        try:
            with pytest.raises(CacheUnavailable):
                await holder.try_lock(key, HOUR)
        finally:
            redis_server.resume()
        async with asyncio.timeout(BOUND):
            # Without the release the late attempt's lock would block this for an hour.
            assert await peer.wait_for(key, HOUR) is None
        token = await peer.try_lock(key, 1.0)
        assert token is not None, "the lock is still held by an attempt nobody owns"
        assert await peer.unlock(key, token)
    finally:
        await holder.aclose()


async def test_a_waiter_loads_itself_after_lock_wait(
    redis_server: RedisServer, peer: RedisBackend
) -> None:
    """A miss whose key another instance keeps locked loads after LOCK_WAIT, not LOCK_TTL."""
    settings = with_test_namespaces(
        CacheSettings(lock_ttl=HOUR, lock_wait=0.05, warm_check_interval=None)
    )
    cache = Cache(settings, RedisSettings(url=redis_server.url))
    await cache.start()
    loads: list[str] = []

    async def load() -> dict[str, str]:
        loads.append("loaded")
        return {"v": "fresh"}

    try:
        key = cache.key("profile", uuid.uuid4().hex)
        token = await peer.try_lock(key, HOUR)  # a holder that never finishes
        assert token is not None
        async with asyncio.timeout(BOUND):
            assert await cache.get_or_load(key, load) == {"v": "fresh"}
        assert loads == ["loaded"]
        assert cache.stats.namespace("profile").lock_waits == 1
        assert await peer.get(key) is not None  # stored for the other instances too
        assert await peer.unlock(key, token)  # the waiter never took the holder's lock
    finally:
        await cache.stop()
