"""RedisBackend coalescing: concurrent decisions share a pipeline and stay exact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tenfold.ratelimit import Decision, Rate, RateLimiterUnavailable, RedisBackend, Rule
from tenfold.testing import RedisServer

DAY = 86_400.0


@pytest.fixture(params=["redis", "cluster"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[RedisBackend]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url
        made = RedisBackend.from_url(url, socket_timeout=2.0)
    else:
        nodes = request.getfixturevalue("redis_cluster").startup_nodes
        made = RedisBackend.from_cluster(nodes, socket_timeout=2.0)
    yield made
    await made.aclose()


def flush_scripts(request: pytest.FixtureRequest, backend: RedisBackend) -> None:
    """SCRIPT FLUSH on every server ``backend`` talks to, as a restart would."""
    if backend.cluster:
        servers = request.getfixturevalue("redis_cluster").nodes
    else:
        servers = [request.getfixturevalue("redis_server")]
    for server in servers:
        server.command("SCRIPT", "FLUSH")


async def until_sent(backend: RedisBackend, round_trips: int) -> None:
    """Yield to the loop until ``backend`` has sent more than ``round_trips`` round trips."""
    for _ in range(100):
        if backend.round_trips > round_trips:
            await asyncio.sleep(0)  # the pipeline's write happens in the step that counted it
            return
        await asyncio.sleep(0)
    raise AssertionError("the batch was never sent")


async def test_concurrent_hits_admit_exactly_the_limit(backend: RedisBackend, ns: str) -> None:
    """60 concurrent hits on each of 3 keys at a limit of 20 admit exactly 20 per key, coalesced."""
    rule = Rule(Rate(20, DAY))
    await backend.hit(ns + ":warm-up", rule)
    before = backend.round_trips
    keys = [f"{ns}:{k}" for k in "abc"] * 60
    decisions = await asyncio.gather(*(backend.hit(key, rule) for key in keys))
    for key in set(keys):
        mine = [d for k, d in zip(keys, decisions, strict=True) if k == key]
        assert sum(d.allowed for d in mine) == 20
        assert sorted(d.remaining for d in mine if d.allowed) == list(range(20))
    # 180 decisions, at most 128 per pipeline: 2 pipelines (+ an EVAL resend on a Cluster
    # node that never ran the script).
    assert backend.round_trips - before <= 4


async def test_lone_decision_is_one_round_trip(backend: RedisBackend, ns: str) -> None:
    """A decision with nothing else pending costs one round trip, as before coalescing."""
    rule = Rule(Rate(5, DAY))
    await backend.hit(ns, rule)
    before = backend.round_trips
    assert (await backend.hit(ns, rule)).remaining == 3
    assert backend.round_trips == before + 1


async def test_multi_rule_decisions_coalesce(backend: RedisBackend, ns: str) -> None:
    """Concurrent all-or-nothing decisions in one pipeline still spend only when all admit."""
    minute, day = Rule(Rate(10, DAY), burst=3), Rule(Rate(4, DAY))
    pairs = [(f"{{{ns}}}:ip", minute), (f"{{{ns}}}:user", day)]
    results = await asyncio.gather(*(backend.hit_many(pairs) for _ in range(8)))
    assert sum(all(d.allowed for d in ds) for ds in results) == 3
    after = await backend.hit_many(pairs)
    assert [d.remaining for d in after] == [0, 1]


async def test_script_flush_between_batches(
    request: pytest.FixtureRequest, backend: RedisBackend, ns: str
) -> None:
    """After SCRIPT FLUSH a batch is resent with EVAL once, then EVALSHA works again."""
    rule = Rule(Rate(30, DAY))
    first = await asyncio.gather(*(backend.hit(ns, rule) for _ in range(20)))
    flush_scripts(request, backend)
    before = backend.round_trips
    second = await asyncio.gather(*(backend.hit(ns, rule) for _ in range(20)))
    assert backend.round_trips == before + 2  # the EVALSHA pipeline, then the EVAL resend
    assert sum(d.allowed for d in first + second) == 30
    before = backend.round_trips
    third = await asyncio.gather(*(backend.hit(ns, rule) for _ in range(5)))
    assert backend.round_trips == before + 1
    assert not any(d.allowed for d in third)


async def test_redis_killed_mid_batch(redis_server: RedisServer, ns: str) -> None:
    """Redis dying with a pipeline in flight gives every waiting caller RateLimiterUnavailable."""
    # Timeouts far past the hang guard: the callers must fail because the connection
    # dropped, not because a reply timed out.
    backend = RedisBackend.from_url(redis_server.url, socket_timeout=30.0, connect_timeout=30.0)
    rule = Rule(Rate(100, DAY))
    await backend.hit(ns, rule)
    redis_server.pause()  # the pipeline goes out and waits for a reply
    before = backend.round_trips
    callers = [asyncio.create_task(backend.hit(ns, rule)) for _ in range(20)]
    await until_sent(backend, before)
    redis_server.kill()
    outcomes = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 15)
    assert all(isinstance(o, RateLimiterUnavailable) for o in outcomes), outcomes
    assert all(o.__cause__ is not None for o in outcomes if isinstance(o, BaseException))
    assert len({id(o) for o in outcomes}) == len(outcomes)  # each caller raises its own
    await backend.aclose()


async def test_paused_redis_times_out_every_caller(redis_server: RedisServer, ns: str) -> None:
    """A Redis that stops answering mid-batch times out every caller of the batch, mapped."""
    backend = RedisBackend.from_url(redis_server.url, socket_timeout=0.25)
    rule = Rule(Rate(100, DAY))
    await backend.hit(ns, rule)
    redis_server.pause()
    outcomes = await asyncio.gather(
        *(backend.hit(ns, rule) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(o, RateLimiterUnavailable) for o in outcomes), outcomes
    redis_server.resume()
    await backend.aclose()


async def test_bound_still_applies_to_pipelines(redis_server: RedisServer, ns: str) -> None:
    """With every connection busy, the next batch waits pool_timeout, then is unavailable."""
    backend = RedisBackend.from_url(
        redis_server.url, socket_timeout=2.0, max_connections=1, pool_timeout=0.1
    )
    rule = Rule(Rate(100, DAY))
    await backend.hit(ns, rule)
    redis_server.pause()
    before = backend.round_trips
    first = [asyncio.create_task(backend.hit(ns, rule)) for _ in range(5)]
    await until_sent(backend, before)
    second = await asyncio.gather(
        *(backend.hit(ns, rule) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, RateLimiterUnavailable) for o in second), second
    assert all("no free connection" in str(o) for o in second)
    redis_server.resume()
    assert all(d.allowed for d in await asyncio.gather(*first))
    await backend.aclose()


async def test_cancelled_before_the_send(redis_server: RedisServer, ns: str) -> None:
    """Callers cancelled before their batch is sent (the leader too) spend nothing."""
    backend = RedisBackend.from_url(redis_server.url, socket_timeout=2.0)
    rule = Rule(Rate(100, DAY))
    callers = [asyncio.create_task(backend.hit(ns, rule)) for _ in range(10)]
    await asyncio.sleep(0)  # all have joined the batch; its leader has not sent it yet
    callers[0].cancel()  # the leader
    callers[5].cancel()
    async with asyncio.timeout(5):  # a batch orphaned by its leader would hang here
        outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert [type(o) for o in outcomes].count(asyncio.CancelledError) == 2
    assert all(isinstance(o, Decision) and o.allowed for i, o in enumerate(outcomes) if i % 5)
    assert (await backend.hit(ns, rule)).remaining == 100 - 8 - 1
    await backend.aclose()


async def test_cancelled_in_flight(redis_server: RedisServer, ns: str) -> None:
    """A caller cancelled while its pipeline is in flight leaves the others' replies intact."""
    backend = RedisBackend.from_url(redis_server.url, socket_timeout=2.0)
    rule = Rule(Rate(100, DAY))
    await backend.hit(ns, rule)
    redis_server.pause()
    before = backend.round_trips
    callers = [asyncio.create_task(backend.hit(ns, rule)) for _ in range(10)]
    await until_sent(backend, before)
    callers[3].cancel()
    redis_server.resume()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert isinstance(outcomes.pop(3), asyncio.CancelledError)
    assert all(isinstance(o, Decision) and o.allowed for o in outcomes)
    # The cancelled call was already on the wire: Redis counted it.
    assert (await backend.hit(ns, rule)).remaining == 100 - 1 - 10 - 1
    await backend.aclose()
