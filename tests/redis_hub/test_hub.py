"""The Redis hub: one client, one in-flight bound and one pub/sub connection per process."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from tenfold import Platform, RedisSettings, Settings
from tenfold.cache import Cache
from tenfold.ratelimit import LimiterBackend, Rate, Rule
from tenfold.redis import RedisHub, RedisUnavailable
from tenfold.resilience import UpstreamRegistry
from tenfold.testing import RecordingListener, RedisCluster, RedisServer

BOUND = 10.0


def clients(server: RedisServer, name: str) -> list[dict[str, str]]:
    """CLIENT LIST entries whose name is ``name``, as dicts."""
    found = []
    for line in server.command("CLIENT", "LIST").decode().splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields.get("name") == name:
            found.append(fields)
    return found


async def eventually(check: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


async def test_many_channels_share_one_pubsub_connection(redis_server: RedisServer) -> None:
    """Listeners on several channels use one connection, subscribed to each channel once."""
    name = f"hub-{uuid.uuid4().hex[:8]}"
    hub = RedisHub.from_url(redis_server.url, client_name=name)
    listeners = [RecordingListener() for _ in range(4)]
    channels = ["a", "b", "c", "a"]
    try:
        subs = [
            hub.pubsub.listen(f"{name}:{c}", lst)
            for c, lst in zip(channels, listeners, strict=True)
        ]
        for sub in subs:
            assert await sub.wait_live(BOUND)
        subscribers = [c for c in clients(redis_server, name) if c["sub"] != "0"]
        assert len(subscribers) == 1
        assert subscribers[0]["sub"] == "3"  # a, b, c: the second listener of a adds nothing
        await hub.publish(f"{name}:a", b"to a")
        for listener in (listeners[0], listeners[3]):
            assert (await listener.next_kind("message"))[2] == b"to a"
        assert listeners[1].messages() == []
        # The last listener of a channel leaving unsubscribes it; the last of all, the connection.
        subs[1].close()
        await eventually(
            lambda: [c["sub"] for c in clients(redis_server, name) if c["sub"] != "0"] == ["2"],
            "b to be unsubscribed",
        )
        for sub in subs:
            sub.close()
        await eventually(
            lambda: all(c["sub"] == "0" for c in clients(redis_server, name)),
            "the pub/sub connection to close",
        )
    finally:
        await hub.aclose()
    assert clients(redis_server, name) == []


async def test_restart_is_reported_then_read_back(redis_server: RedisServer) -> None:
    """A restart: on_lost for every listener, then on_live again (the read-back hook)."""
    hub = RedisHub.from_url(redis_server.url, health_interval=0.2)
    first, second = RecordingListener(), RecordingListener()
    try:
        subs = [hub.pubsub.listen("x", first), hub.pubsub.listen("y", second)]
        for sub in subs:
            assert await sub.wait_live(BOUND)
        await asyncio.to_thread(redis_server.restart)
        for listener in (first, second):
            await listener.next_kind("lost")
            await listener.next_kind("live")
        await hub.publish("y", b"after")
        assert (await second.next_kind("message"))[2] == b"after"
        assert hub.pubsub.connections >= 2
        assert hub.pubsub.losses >= 1
    finally:
        await hub.aclose()


async def test_in_flight_bound_is_shared(redis_server: RedisServer) -> None:
    """Past max_in_flight commands (any user of the hub) callers wait, then fail unavailable."""
    hub = RedisHub.from_url(
        redis_server.url, max_connections=1, pool_timeout=0.2, socket_timeout=BOUND
    )
    try:
        redis_server.pause()
        stuck = asyncio.create_task(hub.publish("c", b"1"))
        await asyncio.sleep(0.05)
        with pytest.raises(RedisUnavailable, match="no free connection"):
            await asyncio.wait_for(hub.scripts.eval(["k"], [], "return 1", "0" * 40), BOUND)
        redis_server.resume()
        await asyncio.wait_for(stuck, BOUND)
    finally:
        redis_server.resume()
        await hub.aclose()


async def test_errors_never_name_the_server(redis_server: RedisServer) -> None:
    """A failed command's message names the command and error class, never host or port."""
    hub = RedisHub.from_url(f"redis://127.0.0.1:{redis_server.port}/0")
    try:
        await asyncio.to_thread(redis_server.stop)
        with pytest.raises(RedisUnavailable) as caught:
            await hub.ping()
        assert "127.0.0.1" not in str(caught.value)
        assert str(redis_server.port) not in str(caught.value)
        assert caught.value.__cause__ is not None  # the driver's error, for the logs
    finally:
        await asyncio.to_thread(redis_server.start)
        await hub.aclose()


async def test_cluster_pubsub_and_scripts(redis_cluster: RedisCluster) -> None:
    """On a Cluster the hub subscribes on one node and hears publishes sent to any."""
    hub = RedisHub.from_cluster(redis_cluster.startup_nodes)
    listener = RecordingListener()
    try:
        sub = hub.pubsub.listen("cluster-channel", listener)
        assert await sub.wait_live(BOUND)
        for node in redis_cluster.nodes:
            node.command("PUBLISH", "cluster-channel", f"from {node.port}")
        seen = {(await listener.next_kind("message"))[2] for _ in redis_cluster.nodes}
        assert seen == {f"from {node.port}".encode() for node in redis_cluster.nodes}
        assert await hub.scripts.eval(["{t}a"], [2], "return ARGV[1] * 2", "0" * 40) == 4
    finally:
        await hub.aclose()


async def test_platform_holds_one_pool_and_one_pubsub_connection(
    redis_server: RedisServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cache, limiter, breaker state, quota and idempotency share one client and one pub/sub."""
    monkeypatch.chdir(tmp_path)
    redis_server.flushall()
    settings = Settings.load(redis=RedisSettings(url=redis_server.url))
    async with Platform.open(settings, configure_logs=False) as platform:
        hub = platform.get(RedisHub)
        cache = platform.get(Cache)
        assert cache.backend.hub is hub  # type: ignore[union-attr]
        upstreams = platform.get(UpstreamRegistry)
        assert upstreams.breaker_state is not None
        assert upstreams.breaker_state.hub is hub
        client = platform.upstream("provider", base_url="http://127.0.0.1:9", quota=True)
        assert client.quota.hub is hub  # type: ignore[union-attr]
        # Use everything once: the cache (and its wake-up channel), the limiter, idempotency.
        await cache.get_or_load(cache.key("x", 1), _load)
        await platform.get(LimiterBackend).hit("k", Rule(Rate.parse("5/minute")))
        await platform.idempotency.store.release("s", "k", "fp")  # type: ignore[attr-defined]
        async with platform.db.session() as session:  # type: ignore[attr-defined]
            await session.execute(sa.text("SELECT 1"))
        mine = clients(redis_server, f"tenfold-{os.getpid()}")
        pubsub = [c for c in mine if c["sub"] != "0"]
        assert len(pubsub) == 1  # invalidation and breaker channels, one connection
        assert int(pubsub[0]["sub"]) == 2
        assert len(mine) - 1 <= hub.slots.size  # the command pool never exceeds its bound


async def _load() -> int:
    return 1


async def test_closing_while_a_subscription_change_is_in_flight_is_quiet(
    redis_server: RedisServer,
) -> None:
    """A listener leaving just as the connection closes raises nothing anywhere."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        for _ in range(20):
            hub = RedisHub.from_url(redis_server.url)
            subs = [hub.pubsub.listen(c, RecordingListener()) for c in ("a", "b", "c")]
            for sub in subs:
                assert await sub.wait_live(BOUND)
            subs[1].close()  # an UNSUBSCRIBE, sent by a task of its own...
            await hub.aclose()  # ...while the connection closes under it
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
    finally:
        loop.set_exception_handler(previous)
    assert errors == []
