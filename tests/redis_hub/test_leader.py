"""Leader leases: one leader per name, fencing tokens, stepping down on time and on errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tenfold import ConfigurationError
from tenfold.redis import LeaderLease, RedisHub
from tenfold.testing import ManualClock, RedisCluster, RedisServer

BOUND = 10.0  # only against hangs: no test asserts how long anything took


def unique() -> str:
    return f"job-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def hub(redis_server: RedisServer) -> AsyncIterator[RedisHub]:
    hub = RedisHub.from_url(redis_server.url)
    try:
        yield hub
    finally:
        await hub.aclose()


class Rounds:
    """A ``sleep`` for a run loop that counts its rounds, so a test can wait for some."""

    def __init__(self) -> None:
        self.count = 0
        self.ticked = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.count += 1
        self.ticked.set()
        await asyncio.sleep(seconds)

    async def wait_for(self, rounds: int) -> None:
        target = self.count + rounds
        while self.count < target:
            self.ticked.clear()
            await asyncio.wait_for(self.ticked.wait(), BOUND)


class Hooks:
    """Records a run loop's hook calls and wakes whoever waits for them."""

    def __init__(self, watch: LeaderLease | None = None) -> None:
        self.calls: list[object] = []
        self.elected = asyncio.Event()
        self.lost = asyncio.Event()
        self.watch = watch
        self.watched_was_leader: bool | None = None

    def on_elected(self, token: int) -> None:
        if self.watch is not None:
            self.watched_was_leader = self.watch.is_leader
        self.calls.append(token)
        self.elected.set()

    async def on_lost(self) -> None:
        self.calls.append("lost")
        self.lost.set()


async def test_one_of_two_acquires(hub: RedisHub) -> None:
    """Two holders of one name acquiring at once: exactly one gets a token."""
    name = unique()
    a, b = LeaderLease(hub, name, ttl=5), LeaderLease(hub, name, ttl=5)
    tokens = await asyncio.gather(a.acquire(), b.acquire())
    assert sorted(t is None for t in tokens) == [False, True]
    assert [a.is_leader, b.is_leader].count(True) == 1
    assert {a.token, b.token} == {None, *[t for t in tokens if t is not None]}


async def test_release_hands_over_with_larger_tokens(hub: RedisHub) -> None:
    """Release lets the other holder acquire, and each tenure's token exceeds the last."""
    name = unique()
    a, b = LeaderLease(hub, name, ttl=5), LeaderLease(hub, name, ttl=5)
    first = await a.acquire()
    assert first is not None
    assert await b.acquire() is None
    assert await b.release() is False  # not the owner: the key stays
    assert await a.renew() is True
    assert await a.release() is True
    assert a.is_leader is False
    assert a.token is None
    second = await b.acquire()
    assert second is not None
    assert second > first
    await b.release()
    third = await a.acquire()
    assert third is not None
    assert third > second


async def test_renew_by_a_non_owner_fails(hub: RedisHub, redis_server: RedisServer) -> None:
    """A holder whose key now belongs to another cannot renew it, and steps down."""
    name = unique()
    a, b = LeaderLease(hub, name, ttl=5), LeaderLease(hub, name, ttl=5)
    assert await b.renew() is False  # never acquired
    assert await b.acquire() is not None
    redis_server.command("DEL", b.key)  # b's key is gone while b still believes it leads
    assert await a.acquire() is not None
    assert b.is_leader is True
    assert await b.renew() is False
    assert b.is_leader is False
    assert await a.renew() is True  # b's attempt did not touch a's lease


async def test_local_deadline_passes_before_redis_expires(hub: RedisHub) -> None:
    """Past ttl - margin on its clock a holder no longer leads, though Redis still holds its key."""
    name = unique()
    clock = ManualClock()
    a = LeaderLease(hub, name, ttl=30, margin=1, clock=clock)
    b = LeaderLease(hub, name, ttl=30)
    assert await a.acquire() is not None
    clock.advance(28.9)
    assert a.is_leader is True
    clock.advance(0.1)  # a paused process wakes up here
    assert a.is_leader is False
    assert a.token is None
    assert await b.acquire() is None  # nobody else can have been elected yet
    assert await a.renew() is False  # a lapsed tenure is not revived by a renewal


async def test_stalled_leader_loses_after_ttl(hub: RedisHub) -> None:
    """A leader that stops renewing is replaced after the TTL with a larger token,
    and by its own clock it stopped leading before the other was elected."""
    name = unique()
    stalled = LeaderLease(hub, name, ttl=0.4, renew_every=0.1)
    old = await stalled.acquire()
    assert old is not None
    other = LeaderLease(hub, name, ttl=0.4, renew_every=0.05)
    hooks = Hooks(watch=stalled)
    async with other.leading(hooks.on_elected, hooks.on_lost):
        await asyncio.wait_for(hooks.elected.wait(), BOUND)
        assert hooks.watched_was_leader is False
        assert stalled.is_leader is False
        token = other.token
        assert token is not None
        assert token > old
    assert await stalled.acquire() is not None  # leaving leading() released the lease


async def test_run_loops_fail_over_when_the_leader_stops(hub: RedisHub) -> None:
    """Of two run loops one leads; stopping it hands leadership to the other."""
    name = unique()
    rounds = [Rounds() for _ in range(2)]
    leases = [LeaderLease(hub, name, ttl=3, renew_every=0.05, sleep=r.sleep) for r in rounds]
    hooks = [Hooks() for _ in leases]
    tasks = [
        asyncio.create_task(lease.run(h.on_elected, h.on_lost))
        for lease, h in zip(leases, hooks, strict=True)
    ]
    try:
        done, _ = await asyncio.wait(
            [asyncio.create_task(h.elected.wait()) for h in hooks],
            timeout=BOUND,
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert done
        winner = 0 if leases[0].is_leader else 1
        loser = 1 - winner
        await rounds[winner].wait_for(5)  # several renewals: the leader keeps its tenure
        await rounds[loser].wait_for(2)
        assert leases[loser].is_leader is False
        assert hooks[loser].calls == []
        assert hooks[winner].calls == [leases[winner].token]
        first = leases[winner].token
        tasks[winner].cancel()
        await asyncio.gather(tasks[winner], return_exceptions=True)
        await asyncio.wait_for(hooks[loser].elected.wait(), BOUND)
        second = leases[loser].token
        assert first is not None
        assert second is not None
        assert second > first
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_redis_outage_steps_down_without_raising(redis_server: RedisServer) -> None:
    """Redis stopping makes the run loop step down (on_lost), keep running, and lead again later."""
    hub = RedisHub.from_url(redis_server.url, socket_timeout=0.2)
    lease = LeaderLease(hub, unique(), ttl=0.6, renew_every=0.05)
    hooks = Hooks()
    try:
        async with lease.leading(hooks.on_elected, hooks.on_lost):
            await asyncio.wait_for(hooks.elected.wait(), BOUND)
            hooks.elected.clear()
            await asyncio.to_thread(redis_server.stop)
            await asyncio.wait_for(hooks.lost.wait(), BOUND)
            assert lease.is_leader is False
            await asyncio.to_thread(redis_server.start)
            await asyncio.wait_for(hooks.elected.wait(), BOUND)
            assert lease.is_leader is True
        assert hooks.calls[1] == "lost"
        assert len(hooks.calls) == 3
    finally:
        await hub.aclose()


async def test_hung_renewal_steps_down_at_the_deadline(redis_server: RedisServer) -> None:
    """A renewal Redis never answers ends at the tenure's deadline: on_lost, not a hang."""
    hub = RedisHub.from_url(redis_server.url, socket_timeout=BOUND * 3)  # longer than the test
    lease = LeaderLease(hub, unique(), ttl=0.6, renew_every=0.05)
    hooks = Hooks()
    try:
        async with lease.leading(hooks.on_elected, hooks.on_lost):
            await asyncio.wait_for(hooks.elected.wait(), BOUND)
            hooks.elected.clear()
            redis_server.pause()
            try:
                await asyncio.wait_for(hooks.lost.wait(), BOUND)
                assert lease.is_leader is False
            finally:
                redis_server.resume()
            await asyncio.wait_for(hooks.elected.wait(), BOUND)
    finally:
        await hub.aclose()


async def test_stopping_while_redis_hangs_waits_at_most_the_ttl(redis_server: RedisServer) -> None:
    """A leader cancelled while Redis hangs gives up releasing after ttl, not the socket timeout."""
    hub = RedisHub.from_url(redis_server.url, socket_timeout=BOUND * 3)  # longer than the test
    lease = LeaderLease(hub, unique(), ttl=2, renew_every=0.5)
    hooks = Hooks()
    task = asyncio.create_task(lease.run(hooks.on_elected, hooks.on_lost))
    try:
        await asyncio.wait_for(hooks.elected.wait(), BOUND)
        redis_server.pause()
        task.cancel()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), BOUND)
    finally:
        redis_server.resume()
        task.cancel()
        await hub.aclose()


async def test_a_failing_hook_stops_the_loop_and_releases(hub: RedisHub) -> None:
    """An error raised by a hook escapes run() after the lease is released."""
    name = unique()
    lease = LeaderLease(hub, name, ttl=30)

    def broken(token: int) -> None:
        raise LookupError(token)

    with pytest.raises(LookupError):
        await asyncio.wait_for(lease.run(on_elected=broken), BOUND)
    assert await LeaderLease(hub, name, ttl=30).acquire() is not None


async def test_cluster_keys_share_a_slot(redis_cluster: RedisCluster) -> None:
    """On a Cluster, acquire, renew and release work (both keys in one slot)."""
    hub = RedisHub.from_cluster(redis_cluster.startup_nodes)
    name = unique()
    a, b = LeaderLease(hub, name, ttl=5), LeaderLease(hub, name, ttl=5)
    try:
        first = await a.acquire()
        assert first is not None
        assert await b.acquire() is None
        assert await a.renew() is True
        assert await a.release() is True
        second = await b.acquire()
        assert second is not None
        assert second > first
    finally:
        await hub.aclose()


def test_renewing_slower_than_the_tenure_is_refused() -> None:
    """A lease that would renew no sooner than its tenure ends fails when built."""
    hub = RedisHub.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match="renew_every"):
        LeaderLease(hub, "x", ttl=1, renew_every=0.95)
