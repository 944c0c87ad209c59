"""The relay: committed events published to a target in log order, from one or more relays."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tenfold import ConfigurationError, CoreSettings, Platform, Settings
from tenfold.events import (
    EventConsumer,
    EventRelay,
    EventsExtension,
    EventSource,
    EventsSettings,
    EventStore,
    MemoryStream,
    NewEvent,
    RecordedEvent,
    RedisStream,
    RelayStats,
)
from tenfold.redis import RedisHub
from tenfold.testing import RedisCluster, RedisServer

PUBLISH_TARGETS = ["redis", "cluster", "memory"]


@pytest.fixture(params=PUBLISH_TARGETS)
async def stream(
    request: pytest.FixtureRequest,
) -> AsyncIterator[RedisStream | MemoryStream]:
    """A fresh stream key on a hub of the harness Redis or Cluster, or an in-process stream."""
    if request.param == "memory":
        yield MemoryStream()
        return
    if request.param == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        hub = RedisHub.from_cluster(cluster.startup_nodes)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        hub = RedisHub.from_url(server.url)
    await hub.start()
    yield RedisStream(hub.client, f"test:{uuid.uuid4().hex}:events", maxlen=0)
    await hub.stop()


async def published(source: EventSource) -> list[RecordedEvent]:
    """Every event in ``source``, in stream order."""
    from tenfold.events import START

    return [event for _, event in await source.read(START, 100_000)]


async def test_rolled_back_append_is_never_published(
    store: EventStore, stream: RedisStream | MemoryStream
) -> None:
    """Events appended in a transaction that rolls back are not published; committed ones are."""

    class Abort(Exception):
        pass

    async def append_then_abort() -> None:
        async with store.db.session() as session:
            await store.append("order-1", [NewEvent("Placed")], 0, session=session)
            raise Abort

    with pytest.raises(Abort):
        await append_then_abort()
    await store.append("order-1", [NewEvent("Placed", {"n": 1})], 0)
    relay = EventRelay(store, stream, batch_size=10)

    assert await relay.drain() == 1
    events = await published(stream)
    assert [(e.stream_id, e.version, e.data) for e in events] == [("order-1", 1, {"n": 1})]
    assert relay.stats.relayed == 1


async def test_events_are_published_in_log_order_and_stream_order(
    store: EventStore, stream: RedisStream | MemoryStream
) -> None:
    """The target receives the global log in order, so each stream's versions arrive in order."""
    streams = [f"cart-{i}" for i in range(4)]

    async def fill(stream_id: str) -> None:
        for version in range(10):
            await store.append(stream_id, [NewEvent("Added", {"v": version + 1})], version)

    await asyncio.gather(*(fill(s) for s in streams))
    relay = EventRelay(store, stream, batch_size=7)

    assert await relay.drain() == 40
    events = await published(stream)
    assert [e.position for e in events] == sorted(e.position for e in events)
    assert [e.id for e in events] == [e.id for e in await store.read_all(limit=100)]
    for stream_id in streams:
        assert [e.version for e in events if e.stream_id == stream_id] == list(range(1, 11))
    assert await relay.drain() == 0


async def test_relay_resumes_after_its_checkpoint(
    store: EventStore, stream: RedisStream | MemoryStream
) -> None:
    """A second relay of the same target publishes only what the first had not."""
    await store.append("a", [NewEvent("E"), NewEvent("E")], 0)
    assert await EventRelay(store, stream).drain() == 2
    await store.append("a", [NewEvent("E")], 2)

    assert await EventRelay(store, stream).drain() == 1
    assert [e.version for e in await published(stream)] == [1, 2, 3]


async def test_concurrent_relays_publish_each_event_once_in_order(
    pg_store: EventStore, stream: RedisStream | MemoryStream
) -> None:
    """Two relays draining while appends commit take turns: every event once, in log order."""
    relays = [EventRelay(pg_store, stream, batch_size=5) for _ in range(2)]
    appending = True

    async def append(stream_id: str) -> None:
        for version in range(25):
            await pg_store.append(stream_id, [NewEvent("Tick")], version)

    async def relay_loop(relay: EventRelay) -> int:
        count = 0
        while appending:
            count += await relay.relay_batch()
            await asyncio.sleep(0)
        return count + await relay.drain()

    loops = [asyncio.create_task(relay_loop(r)) for r in relays]
    await asyncio.gather(*(append(f"s{i}") for i in range(8)))
    appending = False
    counts = await asyncio.gather(*loops)

    events = await published(stream)
    assert sum(counts) == len(events) == 200
    assert len({e.id for e in events}) == 200
    assert [e.position for e in events] == sorted(e.position for e in events)
    for i in range(8):
        assert [e.version for e in events if e.stream_id == f"s{i}"] == list(range(1, 26))


async def test_relay_stats_are_exposed_as_metrics() -> None:
    """The collector reports events relayed and the lag of the last batch, per target."""
    stats = RelayStats("app:events", namespace="shop")
    stats.relayed, stats.lag = 3, 1.5

    samples = {s.name: s for m in stats.collect() for s in m.samples}
    assert samples["shop_events_relayed_total"].value == 3
    assert samples["shop_events_relayed_total"].labels == {"target": "app:events"}
    assert samples["shop_events_relay_lag_seconds"].value == 1.5


def _embedded_platform(tmp_path: Path) -> Platform:
    composed = CoreSettings.compose([*Settings.sections.items(), ("events", EventsSettings)])
    settings = composed.load(
        db={"url": SecretStr(f"sqlite+aiosqlite:///{tmp_path}/app.db")},
        events=EventsSettings(relay_enabled=True, relay_interval=0.05),
    )
    return Platform.build(settings, extensions=[EventsExtension()], configure_logs=False)


async def test_embedded_relay_publishes_to_in_process_consumers(tmp_path: Path) -> None:
    """On SQLite without Redis, the platform's relay feeds a consumer in the same process."""
    totals: dict[str, int] = {}

    async def count(event: RecordedEvent, session: object) -> None:
        totals[event.stream_id] = totals.get(event.stream_id, 0) + event.data["n"]

    async with _embedded_platform(tmp_path) as platform:
        stream = platform.get(MemoryStream)
        assert platform.get(EventRelay).running
        consumer = EventConsumer(platform.db, stream, "totals", count)
        store = platform.get(EventStore)
        for version in range(5):
            await store.append("acct-1", [NewEvent("Deposited", {"n": 10})], version)
        async with asyncio.timeout(30):  # a hang guard, not a threshold
            while consumer.applied < 5:
                await consumer.poll()
                await stream.wait(0.05)

    assert totals == {"acct-1": 50}
    assert consumer.duplicates == 0


async def test_the_redis_stream_is_trimmed_to_about_maxlen(
    store: EventStore, redis_server: RedisServer
) -> None:
    """Each XADD trims the stream to about ``maxlen`` entries (whole nodes, so at least that)."""
    hub = RedisHub.from_url(redis_server.url)
    await hub.start()
    stream = RedisStream(hub.client, f"test:{uuid.uuid4().hex}:events", maxlen=10)
    try:
        for version in range(0, 600, 100):
            await store.append("big", [NewEvent("Tick")] * 100, version)
        await EventRelay(store, stream, batch_size=250).drain()
        length = await hub.client.xlen(stream.key)
    finally:
        await hub.stop()

    assert 10 <= length < 600


def test_a_redis_target_without_redis_fails_when_the_platform_is_built(tmp_path: Path) -> None:
    """TENFOLD_EVENTS__RELAY_TARGET=redis with no Redis configured names the setting at build."""
    composed = CoreSettings.compose([*Settings.sections.items(), ("events", EventsSettings)])
    settings = composed.load(
        db={"url": SecretStr(f"sqlite+aiosqlite:///{tmp_path}/app.db")},
        events=EventsSettings(relay_target="redis"),
    )

    with pytest.raises(ConfigurationError) as caught:
        Platform.build(settings, extensions=[EventsExtension()], configure_logs=False)
    assert caught.value.setting == "TENFOLD_EVENTS__RELAY_TARGET"
