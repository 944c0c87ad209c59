"""The Presence contract, run against memory, Redis and Redis Cluster.

``PresenceContract`` holds the tests; each ``Test*`` subclass says how to
build two "instances" and how time passes: the memory one moves its injected
clock, the Redis ones wait (a TTL of about a second) since expiry runs on
Redis's own clock. Redis-only behaviour (keys, pipelining) is in the subclasses.
"""

from __future__ import annotations

import abc
import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tenfold.realtime import MemoryPresence, Presence, RedisPresence
from tenfold.realtime._presence import TOUCH_CHUNK
from tenfold.redis import RedisHub
from tenfold.testing import ManualClock


@pytest.fixture
def channel() -> str:
    return f"t:{uuid.uuid4().hex[:10]}"


def info(user: str) -> dict[str, Any]:
    return {"user": user, "conn": f"conn-{user}"}


class PresenceContract(abc.ABC):
    """Behaviour every ``Presence`` must have."""

    ttl: float

    @abc.abstractmethod
    async def make(self, request: pytest.FixtureRequest) -> tuple[Presence, Presence]:
        """Two instances' presences over the same shared state."""

    @abc.abstractmethod
    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the presences' clock."""

    async def aclose(self) -> None:
        """Release what ``make`` opened."""
        return None

    @pytest.fixture
    async def pair(
        self, request: pytest.FixtureRequest
    ) -> AsyncIterator[tuple[Presence, Presence]]:
        pair = await self.make(request)
        yield pair
        await self.aclose()

    @pytest.fixture
    def presence(self, pair: tuple[Presence, Presence]) -> Presence:
        return pair[0]

    async def test_is_a_presence(self, presence: Presence) -> None:
        """The backend satisfies the Presence protocol and has its TTL."""
        assert isinstance(presence, Presence)
        assert presence.ttl == self.ttl

    async def test_an_unknown_channel_is_empty(self, presence: Presence, channel: str) -> None:
        """A channel nobody joined has no members and a count of 0."""
        assert await presence.members(channel) == {}
        assert await presence.count(channel) == 0

    async def test_join_shows_members_with_their_info(
        self, presence: Presence, channel: str
    ) -> None:
        """Joined clients are the channel's members, each with its info, and count them."""
        for user in ("u-1", "u-2", "u-3"):
            await presence.join(channel, f"c-{user}", info(user))
        expected = {f"c-{user}": info(user) for user in ("u-1", "u-2", "u-3")}
        assert await presence.members(channel) == expected
        assert await presence.count(channel) == 3

    async def test_join_again_replaces_the_info(self, presence: Presence, channel: str) -> None:
        """A second join of one client keeps one entry, with the new info."""
        await presence.join(channel, "c-1", {"user": "old"})
        await presence.join(channel, "c-1", {"user": "new", "tags": [1, 2]})
        assert await presence.members(channel) == {"c-1": {"user": "new", "tags": [1, 2]}}
        assert await presence.count(channel) == 1

    async def test_leave_removes_only_that_client(self, presence: Presence, channel: str) -> None:
        """Leave removes its client's entry; leaving twice or leaving unknown is harmless."""
        await presence.join(channel, "c-1", info("u-1"))
        await presence.join(channel, "c-2", info("u-2"))
        await presence.leave(channel, "c-1")
        await presence.leave(channel, "c-1")
        await presence.leave(channel, "never-joined")
        assert await presence.members(channel) == {"c-2": info("u-2")}
        assert await presence.count(channel) == 1

    async def test_channels_are_separate(self, presence: Presence, channel: str) -> None:
        """Entries of one channel are not members of another."""
        await presence.join(channel, "c-1", info("u-1"))
        await presence.join(channel + ":b", "c-2", info("u-2"))
        assert list(await presence.members(channel)) == ["c-1"]
        assert list(await presence.members(channel + ":b")) == ["c-2"]

    async def test_info_must_be_a_dict(self, presence: Presence, channel: str) -> None:
        """Info that is not a JSON object is refused before anything is stored."""
        with pytest.raises(TypeError):
            await presence.join(channel, "c-1", ["not", "a", "dict"])  # type: ignore[arg-type]
        assert await presence.count(channel) == 0

    async def test_two_instances_see_each_others_members(
        self, pair: tuple[Presence, Presence], channel: str
    ) -> None:
        """Members joined on one instance are seen by the other, and so are leaves."""
        a, b = pair
        await a.join(channel, "c-a", info("u-a"))
        await b.join(channel, "c-b", info("u-b"))
        both = {"c-a": info("u-a"), "c-b": info("u-b")}
        assert await a.members(channel) == both
        assert await b.members(channel) == both
        await b.leave(channel, "c-a")
        assert await a.members(channel) == {"c-b": info("u-b")}
        assert await a.count(channel) == 1

    async def test_an_untouched_entry_disappears_after_the_ttl(
        self, pair: tuple[Presence, Presence], channel: str
    ) -> None:
        """An entry whose instance stops touching it (it died) is gone after the TTL;
        the other instance's touched entry stays."""
        dead, alive = pair
        await dead.join(channel, "c-dead", info("u-1"))
        await alive.join(channel, "c-alive", info("u-2"))
        await self.advance(self.ttl * 0.6)
        assert await alive.touch([(channel, "c-alive")]) == []
        await self.advance(self.ttl * 0.6)
        assert await alive.members(channel) == {"c-alive": info("u-2")}
        assert await dead.count(channel) == 1

    async def test_touch_keeps_entries_alive(self, presence: Presence, channel: str) -> None:
        """Entries touched more often than the TTL outlive it several times over."""
        entries = [(channel, f"c-{i}") for i in range(5)]
        for _, client_id in entries:
            await presence.join(channel, client_id, info(client_id))
        for _ in range(4):
            await self.advance(self.ttl * 0.5)
            assert await presence.touch(entries) == []
        assert await presence.count(channel) == 5
        assert set(await presence.members(channel)) == {client_id for _, client_id in entries}

    async def test_touch_returns_gone_entries_and_never_revives_them(
        self, presence: Presence, channel: str
    ) -> None:
        """Touching an expired (not yet read) or unknown entry returns it and adds nothing;
        a join brings it back."""
        await presence.join(channel, "c-1", info("u-1"))
        await self.advance(self.ttl * 1.2)
        gone = await presence.touch([(channel, "c-1"), (channel, "c-unknown")])
        assert sorted(gone) == [(channel, "c-1"), (channel, "c-unknown")]
        assert await presence.members(channel) == {}
        await presence.join(channel, "c-1", info("u-1"))
        assert await presence.count(channel) == 1

    async def test_touch_many_channels_at_once(self, presence: Presence, channel: str) -> None:
        """One touch refreshes entries of many channels, some big, and names only the gone."""
        channels = [f"{channel}:{i}" for i in range(40)]
        big = [(channels[0], f"c-{i}") for i in range(TOUCH_CHUNK + 20)]
        small = [(name, "c-x") for name in channels[1:]]
        for name, client_id in big + small:
            await presence.join(name, client_id, {})
        gone = await presence.touch([*big, *small, (channels[5], "c-missing")])
        assert gone == [(channels[5], "c-missing")]
        assert await presence.count(channels[0]) == TOUCH_CHUNK + 20
        assert [await presence.count(name) for name in channels[1:]] == [1] * 39

    async def test_count_equals_the_number_of_live_members(
        self, presence: Presence, channel: str
    ) -> None:
        """Count is len(members) before and after half of the entries expire."""
        for i in range(100):
            await presence.join(channel, f"old-{i}", {"i": i})
        await self.advance(self.ttl * 0.6)
        for i in range(50):
            await presence.join(channel, f"new-{i}", {"i": i})
        assert await presence.count(channel) == len(await presence.members(channel)) == 150
        await self.advance(self.ttl * 0.6)
        assert await presence.count(channel) == 50
        assert set(await presence.members(channel)) == {f"new-{i}" for i in range(50)}


class TestMemoryPresence(PresenceContract):
    ttl = 10.0

    async def make(self, request: pytest.FixtureRequest) -> tuple[Presence, Presence]:
        self.clock = ManualClock()
        presence = MemoryPresence(ttl=self.ttl, clock=self.clock)
        return presence, presence  # one process: every "instance" shares it

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def test_an_entry_expires_exactly_at_its_ttl(self, channel: str) -> None:
        """An entry is live until join + ttl, and gone at that instant."""
        clock = ManualClock()
        presence = MemoryPresence(ttl=5.0, clock=clock)
        await presence.join(channel, "c-1", {})
        clock.advance(4.999)
        assert await presence.count(channel) == 1
        clock.advance(0.001)
        assert await presence.count(channel) == 0


class RedisPresenceContract(PresenceContract):
    # Expiry runs on Redis's clock, so these tests wait: short, but long enough
    # that a busy machine does not miss a heartbeat.
    ttl = 1.2

    hubs: list[RedisHub]

    @abc.abstractmethod
    def hub(self, request: pytest.FixtureRequest) -> RedisHub: ...

    async def make(self, request: pytest.FixtureRequest) -> tuple[Presence, Presence]:
        self.hubs = [self.hub(request), self.hub(request)]
        prefix = f"test:pr:{uuid.uuid4().hex[:6]}:"
        a, b = (RedisPresence(hub, prefix=prefix, ttl=self.ttl) for hub in self.hubs)
        return a, b

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def aclose(self) -> None:
        for hub in self.hubs:
            await hub.aclose()

    async def test_touch_of_many_channels_is_pipelined(
        self, presence: RedisPresence, channel: str
    ) -> None:
        """Touching 60 channels takes one round trip to Redis, not one per channel."""
        entries = [(f"{channel}:{i}", "c-1") for i in range(60)]
        for name, client_id in entries:
            await presence.join(name, client_id, {})
        before = presence.hub.scripts.round_trips
        assert await presence.touch(entries) == []
        assert presence.hub.scripts.round_trips - before == 1

    async def test_keys_expire_with_their_last_entry(
        self, presence: RedisPresence, channel: str
    ) -> None:
        """When nothing touches a channel's entries, its keys leave Redis by themselves."""
        await presence.join(channel, "c-1", info("u-1"))
        client = presence.hub.client
        assert await client.exists(*presence.keys(channel)) == 2
        await self.advance(self.ttl * 1.2)
        assert await client.exists(*presence.keys(channel)) == 0


class TestRedisPresence(RedisPresenceContract):
    def hub(self, request: pytest.FixtureRequest) -> RedisHub:
        server = request.getfixturevalue("redis_server")
        return RedisHub.from_url(server.url, socket_timeout=2.0)

    async def test_count_reads_no_member_list(self, presence: RedisPresence, channel: str) -> None:
        """Count runs ZCARD and never HGETALL, so a big channel's members are not read."""
        for i in range(50):
            await presence.join(channel, f"c-{i}", {})
        client = presence.hub.client
        await client.config_resetstat()
        assert await presence.count(channel) == 50
        stats = await client.info("commandstats")
        assert "cmdstat_zcard" in stats
        assert "cmdstat_hgetall" not in stats


class TestRedisClusterPresence(RedisPresenceContract):
    def hub(self, request: pytest.FixtureRequest) -> RedisHub:
        cluster = request.getfixturevalue("redis_cluster")
        return RedisHub.from_cluster(cluster.startup_nodes, socket_timeout=2.0)

    async def test_a_channels_keys_share_one_slot(
        self, presence: RedisPresence, channel: str
    ) -> None:
        """Both keys of a channel hash to one Cluster slot, so one script can use them."""
        slots = {presence.hub.client.keyslot(key) for key in presence.keys(channel)}
        assert len(slots) == 1
