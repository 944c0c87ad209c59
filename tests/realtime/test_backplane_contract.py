"""The Backplane contract, run against memory, Redis and Redis Cluster."""

from __future__ import annotations

import abc
import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tenfold.realtime._backplane import Backplane, MemoryBackplane
from tenfold.realtime._model import Publication, StreamPosition
from tenfold.realtime._redis import RedisBackplane
from tenfold.redis import RedisHub

HISTORY = 20


class Collector:
    """A channel listener that keeps what it is told."""

    def __init__(self) -> None:
        self.publications: list[Publication] = []
        self.lives = 0
        self.arrived = asyncio.Event()

    def on_live(self, channel: str) -> None:
        self.lives += 1

    def on_publication(self, publication: Publication) -> None:
        self.publications.append(publication)
        self.arrived.set()

    def on_lost(self, channel: str, reason: str) -> None:
        pass

    async def wait_for(self, count: int) -> list[Publication]:
        async with asyncio.timeout(10):
            while len(self.publications) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.publications


@pytest.fixture
def channel() -> str:
    return f"t:{uuid.uuid4().hex[:10]}"


class BackplaneContract(abc.ABC):
    @abc.abstractmethod
    async def make(self, request: pytest.FixtureRequest) -> tuple[Backplane, RedisHub | None]: ...

    @pytest.fixture
    async def backplane(self, request: pytest.FixtureRequest) -> AsyncIterator[Backplane]:
        backplane, hub = await self.make(request)
        yield backplane
        if hub is not None:
            await hub.aclose()

    async def test_is_a_backplane(self, backplane: Backplane) -> None:
        """The backend satisfies the Backplane protocol."""
        assert isinstance(backplane, Backplane)

    async def test_offsets_count_from_one_in_one_epoch(
        self, backplane: Backplane, channel: str
    ) -> None:
        """Publications get offsets 1, 2, 3 in the channel's epoch, which top reports."""
        before = await backplane.top(channel)
        assert before.offset == 0
        pubs = [await backplane.publish(channel, f"m{i}".encode()) for i in range(3)]
        assert [p.offset for p in pubs] == [1, 2, 3]
        assert {p.epoch for p in pubs} == {before.epoch}
        assert await backplane.top(channel) == StreamPosition(3, before.epoch)

    async def test_recover_returns_exactly_what_was_missed(
        self, backplane: Backplane, channel: str
    ) -> None:
        """A client at offset 4 of 10 gets publications 5..10 with their bytes, in order."""
        pubs = [await backplane.publish(channel, f"m{i}".encode()) for i in range(10)]
        recovery = await backplane.recover(channel, pubs[3].position)
        assert not recovery.resync
        assert [p.offset for p in recovery.publications] == list(range(5, 11))
        assert [p.data for p in recovery.publications] == [f"m{i}".encode() for i in range(4, 10)]
        assert recovery.top == pubs[-1].position

    async def test_recover_at_the_top_gets_nothing(
        self, backplane: Backplane, channel: str
    ) -> None:
        """A client that saw the last publication misses nothing and needs no resync."""
        last = [await backplane.publish(channel, b"x") for _ in range(3)][-1]
        recovery = await backplane.recover(channel, last.position)
        assert (recovery.publications, recovery.resync) == ([], False)

    async def test_recover_past_the_history_bound_resyncs(
        self, backplane: Backplane, channel: str
    ) -> None:
        """Missing more than the history holds is a resync, never a partial list."""
        first = await backplane.publish(channel, b"first")
        for _ in range(HISTORY + 5):
            await backplane.publish(channel, b"x")
        recovery = await backplane.recover(channel, first.position)
        assert recovery.resync
        assert recovery.publications == []
        # At exactly the history bound, everything is still there.
        top = recovery.top
        edge = StreamPosition(top.offset - HISTORY, top.epoch)
        assert len((await backplane.recover(channel, edge)).publications) == HISTORY

    async def test_recover_from_another_epoch_resyncs(
        self, backplane: Backplane, channel: str
    ) -> None:
        """A position of a lost history (the epoch changed) is a resync."""
        old = await backplane.publish(channel, b"old")
        await backplane.forget(channel)
        new = await backplane.publish(channel, b"new")
        assert new.epoch != old.epoch
        assert new.offset == 1
        recovery = await backplane.recover(channel, old.position)
        assert recovery.resync
        assert (await backplane.recover(channel, StreamPosition(5, "nonsense"))).resync

    async def test_recover_from_the_future_resyncs(
        self, backplane: Backplane, channel: str
    ) -> None:
        """An offset beyond the channel's top (the client is confused) is a resync."""
        pub = await backplane.publish(channel, b"x")
        assert (await backplane.recover(channel, StreamPosition(9, pub.epoch))).resync

    async def test_listeners_get_live_publications_in_order(
        self, backplane: Backplane, channel: str
    ) -> None:
        """A listener hears every publication after it went live, in offset order."""
        collector = Collector()
        subscription = backplane.listen(channel, collector)
        assert await subscription.wait_live(5)
        for i in range(20):
            await backplane.publish(channel, str(i).encode())
        got = await collector.wait_for(20)
        assert [p.offset for p in got] == list(range(1, 21))
        assert [p.data for p in got] == [str(i).encode() for i in range(20)]
        assert {p.channel for p in got} == {channel}
        subscription.close()
        await backplane.publish(channel, b"after")
        await asyncio.sleep(0.1)
        assert len(collector.publications) == 20

    async def test_channels_are_separate(self, backplane: Backplane, channel: str) -> None:
        """Offsets and listeners are per channel."""
        other = channel + ":b"
        collector = Collector()
        subscription = backplane.listen(other, collector)
        assert await subscription.wait_live(5)
        await backplane.publish(channel, b"a")
        pub = await backplane.publish(other, b"b")
        assert pub.offset == 1
        assert [p.data for p in await collector.wait_for(1)] == [b"b"]
        subscription.close()


class TestMemoryBackplane(BackplaneContract):
    async def make(self, request: pytest.FixtureRequest) -> tuple[Backplane, RedisHub | None]:
        return MemoryBackplane(history_size=HISTORY), None


class TestRedisBackplane(BackplaneContract):
    async def make(self, request: pytest.FixtureRequest) -> tuple[Backplane, RedisHub | None]:
        server = request.getfixturevalue("redis_server")
        hub = RedisHub.from_url(server.url, socket_timeout=2.0)
        return RedisBackplane(hub, prefix="test:rt:", history_size=HISTORY), hub


class TestRedisClusterBackplane(BackplaneContract):
    async def make(self, request: pytest.FixtureRequest) -> tuple[Backplane, RedisHub | None]:
        cluster = request.getfixturevalue("redis_cluster")
        hub = RedisHub.from_cluster(cluster.startup_nodes, socket_timeout=2.0)
        return RedisBackplane(hub, prefix="test:rt:", history_size=HISTORY), hub
