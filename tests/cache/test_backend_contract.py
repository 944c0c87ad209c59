"""One contract for every L2 backend: memory, Redis standalone and Redis Cluster.

``BackendContract`` holds the tests; each ``Test*`` subclass only says how to
build its backend (the eventsourcing pattern). Redis-only behaviour (outages,
Cluster slots) lives in the subclasses.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis

from tenfold.cache._backend import CacheBackend
from tenfold.cache._errors import CacheUnavailable
from tenfold.cache._keys import key, tag_key
from tenfold.cache._memory import MemoryBackend
from tenfold.cache._redis import RedisBackend
from tenfold.testing import RecordingListener, RedisCluster, RedisServer

# Generous bounds: they only turn a hang into a failure, they measure nothing.
BOUND = 10.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` (every 20 ms, at most BOUND s) until it is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


def listening(backend: CacheBackend, channel: str) -> tuple[Any, RecordingListener]:
    listener = RecordingListener()
    return backend.listen(channel, listener), listener


class BackendContract:
    """Behaviour every ``CacheBackend`` must have."""

    @pytest.fixture
    def k(self) -> Callable[..., str]:
        """A key factory unique to the test, so tests never see each other's data."""
        run = uuid.uuid4().hex
        return lambda *parts: key("contract", run, *parts)

    async def test_is_a_cache_backend(self, backend: CacheBackend) -> None:
        """The backend satisfies the CacheBackend protocol and names itself."""
        assert isinstance(backend, CacheBackend)
        assert backend.name in {"memory", "redis", "redis-cluster"}

    async def test_get_missing_is_none(self, backend: CacheBackend, k) -> None:
        """A key never set reads as None."""
        assert await backend.get(k("nothing")) is None

    async def test_set_then_get_round_trips_bytes(self, backend: CacheBackend, k) -> None:
        """Any bytes come back unchanged, including NULs and non-UTF-8."""
        value = bytes(range(256)) * 3
        await backend.set(k("a"), value, 60)
        assert await backend.get(k("a")) == value

    async def test_set_overwrites(self, backend: CacheBackend, k) -> None:
        """A second set replaces the first value."""
        await backend.set(k("a"), b"1", 60)
        await backend.set(k("a"), b"2", None)
        assert await backend.get(k("a")) == b"2"

    async def test_get_many_keeps_order_and_misses(self, backend: CacheBackend, k) -> None:
        """get_many answers in the order asked, None for missing keys."""
        await backend.set_many([(k(i), str(i).encode(), 60) for i in range(20)])
        keys = [k(i) for i in (3, 99, 0, 19, 42)]
        assert await backend.get_many(keys) == [b"3", None, b"0", b"19", None]
        assert await backend.get_many([]) == []

    async def test_raw_keys_without_hash_tag_work(self, backend: CacheBackend) -> None:
        """Keys not built by key() (no {hash tag}) still get, set, delete and lock."""
        raw = f"plain:{uuid.uuid4().hex}"
        await backend.set(raw, b"v", 60)
        assert await backend.get(raw) == b"v"
        assert await backend.try_lock(raw, 5) is not None
        assert await backend.delete(raw) == 1
        assert await backend.key_version(raw) == 1

    async def test_ttl_expires_entry(self, backend: CacheBackend, k) -> None:
        """An entry set with a short TTL disappears; one with a long TTL stays."""
        await backend.set(k("short"), b"x", 0.05)
        await backend.set(k("long"), b"y", 3600)

        async def gone() -> bool:
            return await backend.get(k("short")) is None

        await eventually(gone, "the short-TTL entry to expire")
        assert await backend.get(k("long")) == b"y"

    async def test_non_positive_ttl_stores_nothing(self, backend: CacheBackend, k) -> None:
        """A TTL of 0 or less means already expired: nothing is stored, an old value goes."""
        await backend.set(k("a"), b"old", 60)
        await backend.set(k("a"), b"new", 0)
        await backend.set_many([(k("b"), b"x", -1)])
        filled = await backend.set_if_versions(
            k("c"), b"x", 0, key_version=0, tags=[], tag_versions=[]
        )
        assert filled is False
        assert await backend.get_many([k("a"), k("b"), k("c")]) == [None, None, None]

    async def test_delete_counts_and_bumps_key_version(self, backend: CacheBackend, k) -> None:
        """delete returns how many keys existed and bumps each key's version, present or not."""
        await backend.set_many([(k("a"), b"1", 60), (k("b"), b"2", 60)])
        assert await backend.key_version(k("a")) == 0
        assert await backend.delete(k("a"), k("b"), k("missing")) == 2
        assert await backend.get_many([k("a"), k("b")]) == [None, None]
        assert [await backend.key_version(k(n)) for n in ("a", "b", "missing")] == [1, 1, 1]
        assert await backend.delete(k("a")) == 0
        assert await backend.key_version(k("a")) == 2

    async def test_tag_versions_start_at_zero_and_bump(self, backend: CacheBackend, k) -> None:
        """Unknown tags read 0; bump_tags increments each tag once and returns the new versions."""
        t1, t2 = k("tag1"), k("tag2")
        assert await backend.tag_versions([t1, t2]) == [0, 0]
        assert await backend.bump_tags([t1]) == [1]
        assert await backend.bump_tags([t1, t2]) == [2, 1]
        assert await backend.tag_versions([t2, t1]) == [1, 2]
        assert await backend.tag_versions([]) == []

    async def test_get_versioned_reads_value_and_versions(self, backend: CacheBackend, k):
        """get_versioned returns the value, the key's version and the tags' versions together."""
        tags = [k("t1"), k("t2")]
        assert await backend.get_versioned(k("a"), tags) == (None, 0, [0, 0])
        await backend.set(k("a"), b"v", 60)
        await backend.bump_tags(tags[1:])
        await backend.delete(k("b"))
        assert await backend.get_versioned(k("a"), tags) == (b"v", 0, [0, 1])
        assert await backend.get_versioned(k("b"), []) == (None, 1, [])

    async def test_set_if_versions_writes_when_versions_hold(self, backend: CacheBackend, k):
        """A fill whose key and tag versions are unchanged is written."""
        tags = [k("t1"), k("t2")]
        await backend.bump_tags(tags[:1])
        versions = await backend.tag_versions(tags)
        ok = await backend.set_if_versions(
            k("a"), b"fresh", 60, key_version=0, tags=tags, tag_versions=versions
        )
        assert ok is True
        assert await backend.get(k("a")) == b"fresh"

    async def test_set_if_versions_rejects_fill_raced_by_delete(self, backend: CacheBackend, k):
        """A fill that read the key version before a delete is not written."""
        version = await backend.key_version(k("a"))
        await backend.delete(k("a"))  # the invalidation that races the slow loader
        ok = await backend.set_if_versions(
            k("a"), b"stale", 60, key_version=version, tags=[], tag_versions=[]
        )
        assert ok is False
        assert await backend.get(k("a")) is None

    async def test_set_if_versions_rejects_fill_raced_by_tag_bump(self, backend: CacheBackend, k):
        """A fill that read a tag version before the tag was bumped is not written."""
        tags = [k("t1"), k("t2")]
        versions = await backend.tag_versions(tags)
        await backend.bump_tags(tags[1:])
        ok = await backend.set_if_versions(
            k("a"), b"stale", 60, key_version=0, tags=tags, tag_versions=versions
        )
        assert ok is False
        assert await backend.get(k("a")) is None

    async def test_set_if_versions_checks_lengths(self, backend: CacheBackend, k) -> None:
        """tags and tag_versions of different lengths are a programming error."""
        with pytest.raises(ValueError, match="same length"):
            await backend.set_if_versions(
                k("a"), b"v", 60, key_version=0, tags=[k("t")], tag_versions=[]
            )

    async def test_lock_is_exclusive_and_unlock_needs_the_token(self, backend: CacheBackend, k):
        """Only one holder at a time; a wrong token cannot unlock; the right one can."""
        token = await backend.try_lock(k("a"), 30)
        assert isinstance(token, int)
        assert await backend.try_lock(k("a"), 30) is None
        assert await backend.unlock(k("a"), token + 1) is False
        assert await backend.try_lock(k("a"), 30) is None
        assert await backend.unlock(k("a"), token) is True
        assert await backend.unlock(k("a"), token) is False
        again = await backend.try_lock(k("a"), 30)
        assert again is not None
        assert again > token

    async def test_fencing_tokens_increase_across_expiry(self, backend: CacheBackend, k) -> None:
        """A lock that expires can be taken again, with a strictly greater token."""
        tokens = [await backend.try_lock(k("a"), 0.05)]
        for _ in range(3):

            async def relocked() -> bool:
                token = await backend.try_lock(k("a"), 0.05)
                if token is not None:
                    tokens.append(token)
                return token is not None

            await eventually(relocked, "the lock to expire")
        assert all(isinstance(t, int) for t in tokens)
        assert tokens == sorted(set(tokens))

    async def test_unlock_with_stale_token_fails(self, backend: CacheBackend, k) -> None:
        """After a lock expired and another took it, the first holder's unlock does nothing."""
        first = await backend.try_lock(k("a"), 0.05)
        second: list[int] = []

        async def taken_over() -> bool:
            token = await backend.try_lock(k("a"), 30)
            second.extend([token] if token is not None else [])
            return token is not None

        await eventually(taken_over, "the first lock to expire")
        assert first is not None
        assert second[0] > first
        assert await backend.unlock(k("a"), first) is False
        assert await backend.try_lock(k("a"), 30) is None  # still held by the second
        assert await backend.unlock(k("a"), second[0]) is True

    async def test_locks_are_per_key(self, backend: CacheBackend, k) -> None:
        """Locking one key does not lock another."""
        assert await backend.try_lock(k("a"), 30) is not None
        assert await backend.try_lock(k("b"), 30) is not None

    async def test_wait_for_returns_present_value_at_once(self, backend: CacheBackend, k):
        """A key that already has a value is returned without waiting."""
        await backend.set(k("a"), b"v", 60)
        await backend.try_lock(k("a"), 30)
        assert await asyncio.wait_for(backend.wait_for(k("a"), 60), BOUND) == b"v"

    async def test_wait_for_unlocked_missing_key_is_none(self, backend: CacheBackend, k):
        """With no value and no lock holder there is nothing to wait for: None at once."""
        assert await asyncio.wait_for(backend.wait_for(k("a"), 60), BOUND) is None

    async def test_wait_for_wakes_when_holder_sets(self, backend: CacheBackend, k) -> None:
        """Waiters blocked on a locked key get the value another task sets (no timeout needed)."""
        token = await backend.try_lock(k("a"), 60)
        waiters = [asyncio.create_task(backend.wait_for(k("a"), 60)) for _ in range(20)]
        await asyncio.sleep(0.05)  # let them block; the result is the same either way
        assert not any(w.done() for w in waiters)
        await backend.set(k("a"), b"loaded", 60)
        results = await asyncio.wait_for(asyncio.gather(*waiters), BOUND)
        assert results == [b"loaded"] * 20
        assert token is not None
        assert await backend.unlock(k("a"), token)

    async def test_wait_for_wakes_on_guarded_fill(self, backend: CacheBackend, k) -> None:
        """A set_if_versions fill by the lock holder wakes waiters too."""
        await backend.try_lock(k("a"), 60)
        waiter = asyncio.create_task(backend.wait_for(k("a"), 60))
        await asyncio.sleep(0.05)
        await backend.set_if_versions(k("a"), b"v", 60, key_version=0, tags=[], tag_versions=[])
        assert await asyncio.wait_for(waiter, BOUND) == b"v"

    async def test_wait_for_wakes_with_none_on_unlock(self, backend: CacheBackend, k) -> None:
        """When the holder unlocks without a value, waiters get None promptly."""
        token = await backend.try_lock(k("a"), 60)
        waiter = asyncio.create_task(backend.wait_for(k("a"), 60))
        await asyncio.sleep(0.05)
        assert token is not None
        assert await backend.unlock(k("a"), token)
        assert await asyncio.wait_for(waiter, BOUND) is None

    async def test_wait_for_gives_up_when_lock_expires(self, backend: CacheBackend, k) -> None:
        """A holder that died (lock expired, never unlocked) does not hold waiters to timeout."""
        await backend.try_lock(k("a"), 0.2)
        assert await asyncio.wait_for(backend.wait_for(k("a"), 60), BOUND) is None

    async def test_wait_for_times_out(self, backend: CacheBackend, k) -> None:
        """With the lock held and nothing set, wait_for returns None after its timeout."""
        await backend.try_lock(k("a"), 60)
        assert await asyncio.wait_for(backend.wait_for(k("a"), 0.1), BOUND) is None

    async def test_aclose_ends_waiters_with_cache_unavailable(self, make_backend, k) -> None:
        """Closing the backend releases blocked waiters with CacheUnavailable, not a hang."""
        backend = make_backend()
        await backend.try_lock(k("closing"), 60)
        waiter = asyncio.create_task(backend.wait_for(k("closing"), 60))
        await asyncio.sleep(0.05)
        await backend.aclose()
        with pytest.raises(CacheUnavailable):
            await asyncio.wait_for(waiter, BOUND)

    async def test_publish_reaches_every_listener(self, backend: CacheBackend, k) -> None:
        """Each live listener of a channel receives each message, in order, after on_live."""
        channel = k("channel")
        pairs = [listening(backend, channel) for _ in range(2)]
        try:
            for sub, listener in pairs:
                assert await sub.wait_live(BOUND)
                assert await listener.next() == ("live", channel)
            await backend.publish(channel, b"one")
            await backend.publish(channel, b"two")
            await backend.publish(k("other"), b"not for us")
            for _, listener in pairs:
                assert await listener.next() == ("message", channel, b"one")
                assert await listener.next() == ("message", channel, b"two")
        finally:
            for sub, _ in pairs:
                sub.close()

    async def test_closed_subscription_gets_nothing_more(self, backend: CacheBackend, k) -> None:
        """After close() a listener receives no message, while others still do."""
        channel = k("channel")
        (closed, gone), (open_, kept) = listening(backend, channel), listening(backend, channel)
        try:
            assert await closed.wait_live(BOUND)
            assert await open_.wait_live(BOUND)
            closed.close()
            assert not closed.live
            await backend.publish(channel, b"after")
            assert (await kept.next_kind("message"))[2] == b"after"
            assert gone.messages() == []
        finally:
            open_.close()

    async def test_ping(self, backend: CacheBackend) -> None:
        """ping succeeds on a healthy backend."""
        await backend.ping()


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    def make_backend(self) -> Callable[[], MemoryBackend]:
        return MemoryBackend

    @pytest.fixture
    async def backend(self) -> AsyncIterator[MemoryBackend]:
        backend = MemoryBackend()
        yield backend
        await backend.aclose()

    async def test_closed_backend_is_unavailable(self) -> None:
        """After aclose every call raises CacheUnavailable and listeners hear of the loss."""
        backend = MemoryBackend()
        sub, listener = listening(backend, "c")
        assert await sub.wait_live(BOUND)
        await backend.aclose()
        with pytest.raises(CacheUnavailable):
            await backend.get("k")
        assert (await listener.next_kind("lost"))[1] == "c"
        assert not sub.live

    async def test_max_entries_evicts_least_recently_used(self) -> None:
        """With max_entries the least recently read entry goes first."""
        backend = MemoryBackend(max_entries=2)
        await backend.set("a", b"1", None)
        await backend.set("b", b"2", None)
        await backend.get("a")
        await backend.set("c", b"3", None)
        assert await backend.get_many(["a", "b", "c"]) == [b"1", None, b"3"]


class SharedStoreContract(BackendContract):
    """For backends that several processes share: separate instances see one store."""

    async def test_single_flight_across_instances(self, make_backend, k) -> None:
        """Three instances (stand-ins for processes), 60 cold callers: one lock holder loads,
        every other caller gets its value through wait_for."""
        backends = [make_backend() for _ in range(3)]
        loads = 0

        async def get_or_load(backend: CacheBackend) -> bytes | None:
            nonlocal loads
            token = await backend.try_lock(k("hot"), 30)
            if token is None:
                return await backend.wait_for(k("hot"), 30)
            if (value := await backend.get(k("hot"))) is not None:  # filled before we locked
                await backend.unlock(k("hot"), token)
                return value
            loads += 1
            await asyncio.sleep(0.05)  # the loader
            await backend.set_if_versions(
                k("hot"), b"loaded", 60, key_version=0, tags=[], tag_versions=[]
            )
            await backend.unlock(k("hot"), token)
            return b"loaded"

        try:
            callers = [get_or_load(backends[i % 3]) for i in range(60)]
            results = await asyncio.wait_for(asyncio.gather(*callers), BOUND)
            assert loads == 1
            assert results == [b"loaded"] * 60
        finally:
            for backend in backends:
                await backend.aclose()

    async def test_publish_crosses_instances(self, make_backend, k) -> None:
        """A message published by one instance reaches a subscriber of another."""
        publisher, receiver = make_backend(), make_backend()
        sub, listener = listening(receiver, k("bus"))
        try:
            assert await sub.wait_live(BOUND)
            await publisher.publish(k("bus"), b"invalidate")
            assert (await listener.next_kind("message"))[2] == b"invalidate"
        finally:
            sub.close()
            await publisher.aclose()
            await receiver.aclose()


def _redis_backend(server: RedisServer, **options: Any) -> RedisBackend:
    return RedisBackend.from_url(server.url, **options)


class TestRedisBackend(SharedStoreContract):
    @pytest.fixture
    def make_backend(self, redis_server: RedisServer) -> Callable[[], RedisBackend]:
        return lambda: _redis_backend(redis_server)

    @pytest.fixture
    async def backend(self, redis_server: RedisServer) -> AsyncIterator[RedisBackend]:
        backend = _redis_backend(redis_server)
        yield backend
        await backend.aclose()

    async def test_stopped_redis_raises_cache_unavailable(self, redis_server: RedisServer):
        """With Redis stopped every call fails fast with CacheUnavailable; after a restart
        the same backend works again with no manual step."""
        backend = _redis_backend(redis_server)
        try:
            await backend.set("k", b"v", 60)
            await asyncio.to_thread(redis_server.stop)
            calls = [
                backend.get("k"),
                backend.set("k", b"v", 60),
                backend.try_lock("k", 1),
                backend.bump_tags(["t"]),
                backend.ping(),
            ]
            for call in calls:
                with pytest.raises(CacheUnavailable) as caught:
                    await asyncio.wait_for(call, BOUND)
                assert caught.value.dependency == "redis"
                assert isinstance(caught.value.__cause__, redis.RedisError | OSError)
                assert "127.0.0.1" not in str(caught.value)  # never the server's address
            # A waiter cannot listen for the wake-up without the server: unavailable too.
            with pytest.raises(CacheUnavailable):
                await asyncio.wait_for(backend.wait_for("k", 60), BOUND)
            await asyncio.to_thread(redis_server.start)
            await backend.set("k", b"back", 60)
            assert await backend.get("k") == b"back"
        finally:
            await backend.aclose()

    async def test_in_flight_bound_queues_callers(self, redis_server: RedisServer) -> None:
        """More concurrent calls than max_connections wait their turn and all succeed."""
        backend = _redis_backend(redis_server, max_connections=2)
        try:
            await backend.set("tf:test:{bound}", b"v", 60)
            calls = [backend.get("tf:test:{bound}") for _ in range(50)]
            assert await asyncio.wait_for(asyncio.gather(*calls), BOUND) == [b"v"] * 50
        finally:
            await backend.aclose()

    async def test_exhausted_bound_fails_after_pool_timeout(self, redis_server: RedisServer):
        """With every slot held by a call to a hung server, the next caller gets
        CacheUnavailable after pool_timeout instead of queueing without end."""
        backend = _redis_backend(
            redis_server, max_connections=1, socket_timeout=2, pool_timeout=0.05
        )
        try:
            await backend.ping()
            redis_server.pause()
            stuck = asyncio.create_task(backend.get("tf:test:{stuck}"))
            await asyncio.sleep(0.02)
            with pytest.raises(CacheUnavailable, match="no free connection"):
                await asyncio.wait_for(backend.get("tf:test:{next}"), BOUND)
            redis_server.resume()
            assert await asyncio.wait_for(stuck, BOUND) is None
        finally:
            redis_server.resume()
            await backend.aclose()

    async def test_lost_connection_is_reported_then_resubscribed(
        self, redis_server: RedisServer
    ) -> None:
        """A listener whose server goes away gets on_lost, then on_live again once it is back."""
        backend = _redis_backend(redis_server, health_interval=0.2, reconnect_backoff=0.1)
        sub, listener = listening(backend, "tf:test:lost")
        try:
            assert await sub.wait_live(BOUND)
            await asyncio.to_thread(redis_server.stop)
            await listener.next_kind("lost")
            assert not sub.live
            await asyncio.to_thread(redis_server.start)
            await listener.next_kind("live")  # the read-back hook: messages may have been missed
            await backend.publish("tf:test:lost", b"after")
            assert (await listener.next_kind("message"))[2] == b"after"
        finally:
            sub.close()
            await backend.aclose()

    async def test_silent_server_is_detected(self, redis_server: RedisServer) -> None:
        """A server that stops answering (SIGSTOP) is noticed by the PING health check."""
        backend = _redis_backend(redis_server, health_interval=0.1)
        sub, listener = listening(backend, "tf:test:silent")
        try:
            assert await sub.wait_live(BOUND)
            redis_server.pause()
            lost = await listener.next_kind("lost")
            assert "PING" in str(lost[2])
        finally:
            redis_server.resume()
            sub.close()
            await backend.aclose()

    async def test_waiters_fail_when_wakeup_channel_is_lost(self, redis_server: RedisServer):
        """A waiter blocked on a lock learns of a lost wake-up channel as CacheUnavailable."""
        backend = _redis_backend(redis_server)
        try:
            await backend.try_lock("tf:test:{w}", 60)
            waiter = asyncio.create_task(backend.wait_for("tf:test:{w}", 60))
            await asyncio.sleep(0.05)
            await asyncio.to_thread(redis_server.stop)
            with pytest.raises(CacheUnavailable):
                await asyncio.wait_for(waiter, BOUND)
        finally:
            await backend.aclose()


def _cluster_backend(cluster: RedisCluster) -> RedisBackend:
    return RedisBackend.from_cluster(cluster.startup_nodes)


def _slot_owners(cluster: RedisCluster) -> dict[int, int]:
    """Slot -> port of the master serving it, from CLUSTER SLOTS."""
    owners = {}
    for start, end, master, *_ in cluster.nodes[0].command("CLUSTER", "SLOTS"):
        for slot in range(start, end + 1):
            owners[slot] = int(master[1])
    return owners


def _keyslot(cluster: RedisCluster, name: str) -> int:
    return int(cluster.nodes[0].command("CLUSTER", "KEYSLOT", name))


def _spread(
    cluster: RedisCluster, make: Callable[[int], str], redis_name: Callable[[str], str]
) -> list[str]:
    """One name per master, found by asking Redis (CLUSTER KEYSLOT) where each one lands."""
    owners, found = _slot_owners(cluster), {}
    for i in range(1000):
        name = make(i)
        found.setdefault(owners[_keyslot(cluster, redis_name(name))], name)
        if len(found) == len(cluster.nodes):
            return list(found.values())
    raise AssertionError("could not spread names over every master")


class TestRedisClusterBackend(SharedStoreContract):
    @pytest.fixture
    def make_backend(self, redis_cluster: RedisCluster) -> Callable[[], RedisBackend]:
        return lambda: _cluster_backend(redis_cluster)

    @pytest.fixture
    async def backend(self, redis_cluster: RedisCluster) -> AsyncIterator[RedisBackend]:
        backend = _cluster_backend(redis_cluster)
        yield backend
        await backend.aclose()

    async def test_tag_bump_invalidates_fills_on_every_master(
        self, backend: RedisBackend, redis_cluster: RedisCluster
    ) -> None:
        """One bump_tags call moves tag counters that live on all three masters, and stale
        fills of keys on all three masters are then rejected."""
        run = uuid.uuid4().hex
        tags = _spread(redis_cluster, lambda i: f"{run}-{i}", tag_key)
        keys = _spread(redis_cluster, lambda i: key("spread", run, i), str)
        assert len(redis_cluster.nodes) == 3
        before = await backend.tag_versions(tags)
        assert await backend.bump_tags(tags) == [v + 1 for v in before]

        owners = _slot_owners(redis_cluster)
        by_port = {n.port: n for n in redis_cluster.nodes}
        for tag, old in zip(tags, before, strict=True):
            owner = by_port[owners[_keyslot(redis_cluster, tag_key(tag))]]
            assert int(owner.command("GET", tag_key(tag))) == old + 1  # on that master itself

        now = await backend.tag_versions(tags)
        for k in keys:
            stale = await backend.set_if_versions(
                k, b"stale", 60, key_version=0, tags=tags, tag_versions=before
            )
            assert stale is False
            fresh = await backend.set_if_versions(
                k, b"fresh", 60, key_version=0, tags=tags, tag_versions=now
            )
            assert fresh is True
        assert await backend.get_many(keys) == [b"fresh"] * 3

    async def test_entry_and_companions_share_a_slot(self, redis_cluster: RedisCluster) -> None:
        """An entry, its key version and its lock hash to one slot (one script holds them)."""
        k = key("slots", uuid.uuid4().hex, "x")
        slots = {_keyslot(redis_cluster, k + suffix) for suffix in ("", "|kv", "|lock", "|fence")}
        assert len(slots) == 1
