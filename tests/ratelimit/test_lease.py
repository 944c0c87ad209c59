"""LeasedBackend: few round trips, and admissions within the documented bound."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tenfold.ratelimit import (
    Decision,
    LeasedBackend,
    LimiterBackend,
    MemoryBackend,
    Rate,
    RateLimiterUnavailable,
    RedisBackend,
    Rule,
)
from tenfold.testing import RedisServer

from .conftest import FakeClock

DAY = 86_400.0


class SlowMemoryBackend(MemoryBackend):
    """A memory backend whose decisions yield to the loop, as a network round trip would."""

    async def hit_many(
        self, key_rules: Sequence[tuple[str, Rule]], cost: int = 1
    ) -> list[Decision]:
        await asyncio.sleep(0.001)
        return await super().hit_many(key_rules, cost)


async def test_most_decisions_are_local(clock: FakeClock) -> None:
    """With a lease of 10, 100 admitted hits take 10 round trips to the shared limiter."""
    leased = LeasedBackend(MemoryBackend(clock=clock), lease_size=10, clock=clock)
    rule = Rule(Rate(1000, DAY))
    assert all([(await leased.hit("k", rule)).allowed for _ in range(100)])
    assert leased.refills == 10


async def test_takes_what_is_left(clock: FakeClock) -> None:
    """Near the limit a lease takes the remaining tokens rather than none."""
    leased = LeasedBackend(MemoryBackend(clock=clock), lease_size=10, clock=clock)
    rule = Rule(Rate(15, DAY))
    allowed = [(await leased.hit("k", rule)).allowed for _ in range(20)]
    assert allowed == [True] * 15 + [False] * 5
    refused = await leased.hit("k", rule)
    assert refused.remaining == 0
    assert refused.retry_after > 0


async def test_lease_expires(clock: FakeClock) -> None:
    """Unspent tokens older than max_age are dropped; the next hit takes a new lease."""
    shared = MemoryBackend(clock=clock)
    leased = LeasedBackend(shared, lease_size=5, max_age=1.0, clock=clock)
    rule = Rule(Rate(10, DAY))
    assert (await leased.hit("k", rule)).allowed
    clock.advance(1.0)
    assert (await leased.hit("k", rule)).allowed
    assert leased.refills == 2
    assert not (await shared.hit("k", rule)).allowed  # both leases (10 tokens) are gone


async def test_multi_rule_is_all_or_nothing(clock: FakeClock) -> None:
    """A request is admitted only when every rule's lease holds the cost."""
    leased = LeasedBackend(MemoryBackend(clock=clock), lease_size=4, clock=clock)
    small, large = Rule(Rate(2, DAY)), Rule(Rate(100, DAY))
    pairs = [("k", small), ("k", large)]
    results = [await leased.hit_many(pairs) for _ in range(4)]
    assert [all(d.allowed for d in r) for r in results] == [True, True, False, False]


async def test_windowed_bound_with_several_instances(clock: FakeClock) -> None:
    """Over any window, 4 leasing instances admit at most limit + lease_size * 4."""
    shared = MemoryBackend(clock=clock)
    rule = Rule(Rate(50, 10.0), algorithm="sliding_window")
    lease, n = 5, 4
    instances = [
        LeasedBackend(shared, lease_size=lease, max_age=60.0, clock=clock) for _ in range(n)
    ]
    admitted: list[float] = []
    for step in range(600):  # 60 s, a hit on every instance each 0.1 s
        for instance in instances[step % 2 :: 2] if step % 7 else instances:
            if (await instance.hit("k", rule)).allowed:
                admitted.append(clock.now)
        clock.advance(0.1)
    worst = max(sum(t <= a < t + 10.0 for a in admitted) for t in admitted)
    assert worst <= 50 + lease * n
    assert len(admitted) >= 6 * 50 - lease * n  # and it does not starve either


@pytest.mark.parametrize("prefetch", [False, True])
@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_bound_on_redis_with_separate_backends(
    request: pytest.FixtureRequest, kind: str, ns: str, prefetch: bool
) -> None:
    """Three instances, each with its own RedisBackend, never exceed the shared limit."""
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        make = lambda: RedisBackend.from_url(server.url, socket_timeout=2.0)  # noqa: E731
    else:
        nodes = request.getfixturevalue("redis_cluster").startup_nodes
        make = lambda: RedisBackend.from_cluster(nodes, socket_timeout=2.0)  # noqa: E731
    instances: list[LimiterBackend] = [
        LeasedBackend(make(), lease_size=20, prefetch=prefetch) for _ in range(3)
    ]
    rule = Rule(Rate(500, DAY))

    async def fire(backend: LimiterBackend, hits: int) -> int:
        return sum([(await backend.hit(ns, rule)).allowed for _ in range(hits)])

    below = await asyncio.gather(*(fire(b, 140) for b in instances))
    assert sum(below) == 420
    refills = sum(b.refills for b in instances)  # type: ignore[attr-defined]
    # Foreground only: one round trip per lease of 20; prefetch tops up half leases.
    assert refills == 3 * 7 if not prefetch else 3 * 7 <= refills <= 3 * 14
    counts = await asyncio.gather(*(fire(b, 400) for b in instances))
    # Every admission was granted by Redis; at most lease_size per instance is stranded.
    assert 500 - 20 * 3 <= sum(below) + sum(counts) <= 500
    for backend in instances:
        await backend.aclose()


async def test_concurrent_hits_on_one_instance(clock: FakeClock) -> None:
    """Concurrent requests on one instance share its leases: one refill per lease, no excess."""
    shared = SlowMemoryBackend(clock=clock)
    leased = LeasedBackend(shared, lease_size=10, prefetch=False, clock=clock)
    rule = Rule(Rate(50, DAY))

    async def hit() -> bool:
        await asyncio.sleep(0)
        return (await leased.hit("k", rule)).allowed

    first = await asyncio.gather(*(hit() for _ in range(40)))
    assert all(first)
    assert leased.refills == 4
    rest = await asyncio.gather(*(hit() for _ in range(40)))
    assert sum(rest) == 10
    assert not (await shared.hit("k", rule)).allowed


async def test_refusal_is_answered_locally_until_retry_after(clock: FakeClock) -> None:
    """Once the shared limiter refuses, hits until its retry-after cost no round trip."""
    shared = MemoryBackend(clock=clock)
    leased = LeasedBackend(shared, lease_size=5, clock=clock)
    rule = Rule(Rate(5, 10.0))  # one token back every 2 s
    assert all([(await leased.hit("k", rule)).allowed for _ in range(5)])
    refused = await leased.hit("k", rule)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(2.0)
    trips = leased.refills
    clock.advance(1.0)
    again = [await leased.hit("k", rule) for _ in range(50)]
    assert not any(d.allowed for d in again)
    assert again[0].retry_after == pytest.approx(1.0)
    assert leased.refills == trips  # all fifty answered locally
    clock.advance(1.0)
    assert (await leased.hit("k", rule)).allowed  # the refusal has lapsed: asked again
    assert leased.refills > trips


async def test_cached_refusal_does_not_cover_a_cheaper_request(clock: FakeClock) -> None:
    """A refusal for cost 3 is not reused for a cost-1 request that may still fit."""
    shared = MemoryBackend(clock=clock)
    leased = LeasedBackend(shared, lease_size=1, clock=clock)
    rule = Rule(Rate(4, 40.0))
    assert (await leased.hit("k", rule, cost=2)).allowed
    assert not (await leased.hit("k", rule, cost=3)).allowed
    assert (await leased.hit("k", rule, cost=1)).allowed


async def test_default_lease_is_a_twentieth_of_the_burst(clock: FakeClock) -> None:
    """Without lease_size a lease is burst // 20 tokens, at least 1 and at most 100."""
    leased = LeasedBackend(MemoryBackend(clock=clock), clock=clock)
    assert leased.lease_for(Rule("100/minute")) == 5
    assert leased.lease_for(Rule("10/minute")) == 1
    assert leased.lease_for(Rule("1000000/minute")) == 100
    assert leased.lease_for(Rule("1000000/minute"), rate=20_000.0) == 5000  # 0.25 s of it
    assert leased.lease_for(Rule("10000/minute"), rate=20_000.0) == 500  # 5% of the burst
    assert LeasedBackend(MemoryBackend(), lease_size=7).lease_for(Rule("5/minute")) == 5
    rule = Rule(Rate(100, DAY))
    assert all([(await leased.hit("k", rule)).allowed for _ in range(100)])
    assert leased.refills == 20


class GatedBackend(MemoryBackend):
    """A memory backend whose decisions wait for ``gate``, as a slow Redis would."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.gate = asyncio.Event()
        self.calls = 0

    async def hit_many(
        self, key_rules: Sequence[tuple[str, Rule]], cost: int = 1
    ) -> list[Decision]:
        self.calls += 1
        await self.gate.wait()
        return await super().hit_many(key_rules, cost)


async def test_prefetch_tops_up_without_making_requests_wait(clock: FakeClock) -> None:
    """At half a lease a background refill starts; requests keep spending what is left
    meanwhile, and the lease never holds more than its size."""
    shared = GatedBackend(clock)
    leased = LeasedBackend(shared, lease_size=10, clock=clock)
    rule = Rule(Rate(1000, DAY))
    shared.gate.set()
    assert all([(await leased.hit("k", rule)).allowed for _ in range(5)])  # 5 left: prefetch
    shared.gate.clear()
    await asyncio.sleep(0)  # the prefetch starts and waits on the gate
    assert shared.calls == 2
    # The round trip is stuck, yet the 5 tokens left are spent with no waiting at all.
    spent = [await asyncio.wait_for(leased.hit("k", rule), 0.1) for _ in range(4)]
    assert all(d.allowed for d in spent)
    shared.gate.set()
    await asyncio.sleep(0.01)
    # The prefetch took what was missing when it started (5): 1 + 5 tokens now, never > 10.
    lease = leased._leases["k", rule.ident]
    assert lease.tokens == 6
    assert leased.refills == 2
    assert (await shared.hit("k", rule)).remaining == 1000 - 15 - 1  # 15 granted in all


async def test_failed_prefetch_surfaces_on_the_next_foreground_refill(
    redis_server: RedisServer, ns: str
) -> None:
    """A prefetch that finds Redis down is counted, never raised into the loop; the
    request that then finds the lease empty gets RateLimiterUnavailable."""
    leased = LeasedBackend(RedisBackend.from_url(redis_server.url), lease_size=10)
    rule = Rule(Rate(1000, DAY))
    assert all([(await leased.hit(ns, rule)).allowed for _ in range(4)])
    redis_server.stop()
    try:
        assert all([(await leased.hit(ns, rule)).allowed for _ in range(2)])  # prefetch fails
        await asyncio.sleep(0.5)
        assert leased.prefetch_failures == 1
        for _ in range(4):
            await leased.hit(ns, rule)  # the tokens left, then a foreground refill
        with pytest.raises(RateLimiterUnavailable):
            await leased.hit(ns, rule)
    finally:
        redis_server.start()
        await leased.aclose()


async def test_hot_key_lease_grows_with_its_rate_within_five_percent(clock: FakeClock) -> None:
    """At 10,000 hits/s a lease grows to a quarter second of traffic, so round trips stay
    few, and never past a twentieth of the burst."""
    shared = MemoryBackend(clock=clock)
    leased = LeasedBackend(shared, prefetch=False, clock=clock)
    rule = Rule(Rate(10_000_000, DAY))  # burst 10M: ceiling 500,000
    for _ in range(20_000):
        assert (await leased.hit("k", rule)).allowed
        clock.advance(0.0001)
    lease = leased._leases["k", rule.ident]
    assert 2000 <= lease.size <= 2600  # ~0.25 s at 10,000/s
    assert leased.refills < 20
    small = Rule(Rate(1000, DAY))  # ceiling 50
    for _ in range(900):
        assert (await leased.hit("s", small)).allowed
        clock.advance(0.0001)
    assert leased._leases["s", small.ident].size == 50
