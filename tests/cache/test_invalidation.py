"""Cross-instance L1 invalidation: propagation, disconnects, and 3 real app processes."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tenfold import CacheSettings, RedisSettings
from tenfold.cache._cache import Cache
from tenfold.cache._l1 import MISS
from tenfold.testing import RedisServer, allocate_port, release_port

from .conftest import BOUND, eventually, with_test_namespaces

APP_DIR = Path(__file__).parent


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[Cache, Cache]]:
    """Two instances on one Redis, each with its own L1."""
    settings = with_test_namespaces(CacheSettings(warm_check_interval=None))
    redis = RedisSettings(url=redis_server.url, health_interval=0.2, reconnect_backoff=0.1)
    caches = [Cache(settings, redis) for _ in range(2)]
    for cache in caches:
        await cache.start()
    yield caches[0], caches[1]
    for cache in caches:
        await cache.stop()


async def test_invalidation_reaches_the_other_instance(pair: tuple[Cache, Cache]) -> None:
    """A delete on one instance drops the key from the other's L1, with the lag recorded."""
    one, two = pair
    k = one.key("profile", uuid.uuid4().hex)
    await one.set(k, "old")
    # The set's own invalidation message may land while two reads: then that read is not
    # copied to L1 (it cannot tell its read was newer), the next one is.
    await eventually(lambda: _read_into_l1(two, k, "old"), "two to hold the value in L1")
    await one.delete(k)
    await eventually(lambda: k not in two.l1, "the other L1 to drop the key")
    assert two.invalidation is not None
    assert two.invalidation.applied >= 1
    assert two.stats.invalidations_received >= 1


async def test_fill_racing_a_remote_invalidation_stays_out_of_l1(pair: tuple[Cache, Cache]):
    """A value read from L2 just before a remote invalidation is applied is not put in L1."""
    one, two = pair
    k = one.key("profile", uuid.uuid4().hex)
    await one.set(k, "old")
    levels = two._levels
    epoch = levels.epoch
    env, value = await levels.open(await levels.backend.get(k), {})  # type: ignore[union-attr]
    await one.delete(k)
    await eventually(lambda: levels.epoch != epoch, "the invalidation to arrive")
    levels.remember(k, two.namespace(k), env, value, 10, epoch)  # the read noted the old epoch
    assert k not in two.l1


async def test_lost_channel_clears_l1_then_reconnects(
    pair: tuple[Cache, Cache], redis_server: RedisServer
) -> None:
    """When the invalidation channel drops, L1 is cleared at once and the instance
    resubscribes by itself."""
    one, _ = pair
    k = one.key("profile", uuid.uuid4().hex)
    await one.set(k, "before")
    assert k in one.l1
    bus = one.invalidation
    assert bus is not None
    assert bus.live
    connections = bus.connections
    redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
    await eventually(lambda: not bus.live or bus.connections > connections, "the loss")
    assert k not in one.l1  # cleared: nothing older than the disconnect is served
    await eventually(lambda: bus.live and bus.connections > connections, "the reconnect")
    assert await one.get(k) == "before"  # from L2, which the channel loss did not affect


async def test_entries_filled_while_channel_down_are_capped(redis_server: RedisServer) -> None:
    """While the channel is down, L1 entries live at most degraded_l1_ttl."""
    now = [1000.0]
    settings = with_test_namespaces(CacheSettings(degraded_l1_ttl=1.0, warm_check_interval=None))
    cache = Cache(settings, RedisSettings(url=redis_server.url), clock=lambda: now[0])
    await cache.start()
    try:
        cache._levels.channel_changed(live=False)  # as the listener does on a loss
        k = cache.key("profile", uuid.uuid4().hex)
        await cache.set(k, "v")
        assert cache.l1.get(k) == "v"
        now[0] += 1.5
        assert cache.l1.get(k) is MISS
    finally:
        await cache.stop()


def _start_instance(port: int, prefix: str, url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TF_CACHE_TEST_REDIS": url, "TF_CACHE_TEST_PREFIX": prefix}
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(APP_DIR)]
    command += ["_instance_app:app", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


async def _acknowledged(client: httpx.AsyncClient, origin: str, seq: int) -> float:
    """Wait until the instance behind ``client`` applied message ``seq``; its lag in seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while loop.time() < deadline:
        body = (await client.get("/applied")).json()
        for o, s, lag in body["recent"]:
            if o == origin and s == seq:
                return float(lag)
        await asyncio.sleep(0.002)
    raise AssertionError(f"message {seq} of {origin} was never applied")


@pytest.mark.slow
async def test_three_app_processes_never_serve_old_value_after_ack(
    redis_server: RedisServer,
) -> None:
    """3 uvicorn processes: after a write + invalidation on one, once the others acknowledged
    it every instance returns the new value; prints the measured propagation bound."""
    prefix = uuid.uuid4().hex[:8]
    ports = [allocate_port() for _ in range(3)]
    servers = [_start_instance(port, prefix, redis_server.url) for port in ports]
    clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", timeout=BOUND) for p in ports]
    try:
        for client in clients:
            await eventually(_live(client), "an instance to start and subscribe")
        lags: list[float] = []
        for i in range(30):
            old_values = {(await c.get("/value/p")).json()["value"] for c in clients}
            assert old_values == {None if i == 0 else f"v{i - 1}"}  # every L1 holds the old one
            writer = clients[i % 3]
            ack = (await writer.post(f"/write/p/v{i}")).json()
            assert (await writer.get("/value/p")).json()["value"] == f"v{i}"
            for other in clients:
                if other is not writer:
                    lags.append(await _acknowledged(other, ack["origin"], ack["seq"]))
            for client in clients:
                assert (await client.get("/value/p")).json()["value"] == f"v{i}"
        lags.sort()
        print(
            f"\ninvalidation propagation over {len(lags)} deliveries (publish -> L1 drop): "
            f"median {statistics.median(lags) * 1e3:.2f} ms, "
            f"p95 {lags[int(len(lags) * 0.95)] * 1e3:.2f} ms, max {lags[-1] * 1e3:.2f} ms"
        )
    finally:
        for client in clients:
            await client.aclose()
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=BOUND)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        for port in ports:
            release_port(port)


async def _read_into_l1(cache: Cache, k: str, value: str) -> bool:
    assert await cache.get(k) == value
    return cache.l1.get(k) == value


def _live(client: httpx.AsyncClient):
    async def check() -> bool:
        try:
            return bool((await client.get("/applied")).json()["live"])
        except httpx.TransportError:
            return False

    return check
