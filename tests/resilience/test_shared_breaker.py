"""Breaker opens and closes shared through a real Redis: each state is one "instance"."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis

from tenfold import RedisSettings
from tenfold._components import Component
from tenfold.redis import RedisHub
from tenfold.resilience import (
    CircuitBreaker,
    CircuitOpen,
    CountWindow,
    Event,
    RedisBreakerState,
    StateChanged,
)
from tenfold.testing import FaultProxy, RedisCluster, RedisServer

from .conftest import FakeClock

#: Generous bound: turns a hang into a failure; never a measurement.
BOUND = 10.0


class Boom(Exception):
    pass


async def ok() -> str:
    return "ok"


async def fail() -> str:
    raise Boom("down")


async def fail_n(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            await breaker.call(fail)


def make(
    state: RedisBreakerState | None, clock: FakeClock, name: str = "upstream", **options: object
) -> CircuitBreaker:
    defaults: dict[str, object] = {
        "window": CountWindow(10),
        "minimum_calls": 4,
        "open_for": 30.0,
        "half_open_probes": 2,
        "clock": clock,
        "hooks": (),
    }
    return CircuitBreaker(name, shared=state, **{**defaults, **options})  # type: ignore[arg-type]


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` every 10 ms until true (at most BOUND s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def prefix() -> str:
    """Keys and channel unique to the test, so tests sharing a Redis never see each other."""
    return f"t{uuid.uuid4().hex[:12]}:cb:"


@pytest.fixture
async def instance(
    redis_server: RedisServer, prefix: str
) -> AsyncIterator[Callable[..., Awaitable[RedisBreakerState]]]:
    """Factory of started states, each with its own Redis client: one per "instance"."""
    async with AsyncExitStack() as stack:

        async def start(**options: object) -> RedisBreakerState:
            defaults: dict[str, object] = {
                "prefix": prefix,
                "health_interval": 0.2,
                "reconnect_backoff": 0.05,
                "start_timeout": BOUND,
            }
            state = RedisBreakerState.from_url(redis_server.url, **{**defaults, **options})  # type: ignore[arg-type]
            return await stack.enter_async_context(state)

        yield start


async def test_open_on_one_instance_rejects_on_another(
    instance: Callable[..., Awaitable[RedisBreakerState]],
) -> None:
    """When A trips, B refuses calls without running them once B has heard."""
    sa, sb = await instance(), await instance()
    a, b = make(sa, FakeClock()), make(sb, FakeClock())
    await fail_n(a, 4)
    assert a.state == "open"
    await eventually(lambda: b.state == "open", "B to follow A's open")
    called = False

    async def counted() -> str:
        nonlocal called
        called = True
        return "ok"

    with pytest.raises(CircuitOpen) as info:
        await b.call(counted)
    assert not called
    assert 0 < info.value.retry_after <= 30.0
    assert sb.redis_errors == 0
    assert sa.redis_errors == 0


async def test_shared_open_ends_in_half_open_on_the_local_clock(
    instance: Callable[..., Awaitable[RedisBreakerState]],
) -> None:
    """B stays open for the time A's open had left, then probes on its own."""
    clock_b = FakeClock()
    sa, sb = await instance(), await instance()
    a, b = make(sa, FakeClock()), make(sb, clock_b)
    await fail_n(a, 4)
    await eventually(lambda: b.state == "open", "B to follow A's open")
    clock_b.advance(29.0)
    assert b.state == "open"
    clock_b.advance(1.0)
    assert b.state == "half_open"
    assert await b.call(ok) == "ok"


async def test_close_after_probes_closes_the_others(
    instance: Callable[..., Awaitable[RedisBreakerState]],
) -> None:
    """A's successful half-open probes close B too, even while B's open period runs."""
    clock_a = FakeClock()
    events: list[Event] = []
    sa, sb = await instance(), await instance()
    a, b = make(sa, clock_a), make(sb, FakeClock(), hooks=(events.append,))
    await fail_n(a, 4)
    await eventually(lambda: b.state == "open", "B to follow A's open")
    clock_a.advance(30.0)
    assert await a.call(ok) == "ok"
    assert await a.call(ok) == "ok"
    assert a.state == "closed"
    await eventually(lambda: b.state == "closed", "B to follow A's close")
    assert await b.call(ok) == "ok"
    changes = [(e.previous, e.current) for e in events if isinstance(e, StateChanged)]
    assert changes == [("closed", "open"), ("open", "closed")]


async def test_failed_probes_on_another_instance_reopen(
    instance: Callable[..., Awaitable[RedisBreakerState]],
) -> None:
    """A's failed probes open it again, and B (already half-open) follows."""
    clock_a, clock_b = FakeClock(), FakeClock()
    sa, sb = await instance(), await instance()
    a, b = make(sa, clock_a), make(sb, clock_b)
    await fail_n(a, 4)
    await eventually(lambda: b.state == "open", "B to follow A's open")
    clock_a.advance(30.0)
    clock_b.advance(30.0)
    assert b.state == "half_open"
    await fail_n(a, 2)
    assert a.state == "open"
    await eventually(lambda: b.state == "open", "B to follow A's second open")


async def test_late_instance_learns_an_open_breaker_at_start(
    instance: Callable[..., Awaitable[RedisBreakerState]], redis_server: RedisServer, prefix: str
) -> None:
    """C, started after A opened, refuses calls as soon as start() returns."""
    sa, sb = await instance(), await instance()
    a, b = make(sa, FakeClock()), make(sb, FakeClock())
    await fail_n(a, 4)
    await eventually(lambda: b.state == "open", "A's open to be written and delivered")
    sc = RedisBreakerState.from_url(redis_server.url, prefix=prefix, start_timeout=BOUND)
    c = make(sc, FakeClock())
    async with sc:
        assert c.state == "open"
        later = make(sc, FakeClock())  # built after start: the local copy suffices
        assert later.state == "open"


async def test_breaker_built_after_start_reads_its_key(
    instance: Callable[..., Awaitable[RedisBreakerState]],
) -> None:
    """A breaker first built after its state started still learns that its name is open."""
    sa, sb = await instance(), await instance()
    a = make(sa, FakeClock(), name="payments")
    await fail_n(a, 4)
    await eventually(lambda: "payments" in sb.open_until, "B's local copy to hold the open")
    sc = await instance()
    late = make(sc, FakeClock(), name="payments")
    await eventually(lambda: late.state == "open", "the late breaker to read its key")


async def test_same_named_breakers_in_one_instance_follow_each_other(
    instance: Callable[..., Awaitable[RedisBreakerState]],
) -> None:
    """Two breakers of one name on one state open and close together, Redis or not."""
    state = await instance()
    clock = FakeClock()
    first, second = make(state, clock), make(state, clock)
    await fail_n(first, 4)
    assert second.state == "open"
    first.reset()
    assert second.state == "closed"


async def test_unrelated_names_and_garbage_are_ignored(
    instance: Callable[..., Awaitable[RedisBreakerState]], redis_server: RedisServer, prefix: str
) -> None:
    """Another breaker's open and an unreadable message change nothing here."""
    sa, sb = await instance(), await instance()
    a, b = make(sa, FakeClock(), name="one"), make(sb, FakeClock(), name="two")
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.publish(prefix + "events", b"not json")
    finally:
        await client.aclose()
    await fail_n(a, 4)
    await eventually(lambda: "one" in sb.open_until, "B to hear about 'one'")
    assert b.state == "closed"
    assert await b.call(ok) == "ok"


async def test_redis_down_keeps_breakers_local(
    instance: Callable[..., Awaitable[RedisBreakerState]], redis_server: RedisServer
) -> None:
    """With Redis stopped, breakers trip and close on local state and nothing raises."""
    clock_a = FakeClock()
    sa, sb = await instance(), await instance()
    a, b = make(sa, clock_a), make(sb, FakeClock())
    await asyncio.to_thread(redis_server.stop)
    await fail_n(a, 4)
    assert a.state == "open"
    with pytest.raises(CircuitOpen):
        await a.call(ok)
    clock_a.advance(30.0)
    assert await a.call(ok) == "ok"
    assert await a.call(ok) == "ok"
    assert a.state == "closed"
    await eventually(lambda: sa.redis_errors > 0 and not sa.live, "A to count the outage")
    assert b.state == "closed"


async def test_sharing_resumes_after_redis_returns(
    instance: Callable[..., Awaitable[RedisBreakerState]], redis_server: RedisServer
) -> None:
    """After an outage both instances resubscribe on their own and share again."""
    sa, sb = await instance(), await instance()
    a, b = make(sa, FakeClock()), make(sb, FakeClock())
    await asyncio.to_thread(redis_server.stop)
    await eventually(lambda: not sa.live and not sb.live, "both to notice the outage")
    await asyncio.to_thread(redis_server.start)
    await eventually(lambda: sa.live and sb.live, "both to resubscribe")
    await fail_n(a, 4)
    await eventually(lambda: b.state == "open", "B to follow A's open")


async def test_missed_messages_are_read_back_after_a_cut(
    instance: Callable[..., Awaitable[RedisBreakerState]], redis_server: RedisServer, prefix: str
) -> None:
    """A subscription cut by the server is re-made, and an open it missed is read back."""
    sb = RedisBreakerState.from_url(redis_server.url, prefix=prefix, start_timeout=BOUND)
    b = make(sb, FakeClock())
    await sb.start()
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        assert sb.live
        assert b.state == "closed"
        # An open whose message B never got: the key alone, no PUBLISH.
        await client.set(prefix + "upstream", "elsewhere", px=30_000)
        await client.client_kill_filter(_type="pubsub")
        await eventually(lambda: b.state == "open", "B to read the key after resubscribing")
        assert sb.connections >= 2
    finally:
        await client.aclose()
        await sb.stop()


async def test_blackholed_redis_is_noticed_and_left_alone(
    fault_proxy: Callable[..., FaultProxy], redis_server: RedisServer, prefix: str
) -> None:
    """A silent Redis is detected by PING; breakers never wait for it; sharing resumes."""
    proxy = fault_proxy(redis_server.host, redis_server.port)
    url, clock_a = f"redis://{proxy.address}/0", FakeClock()
    options = {"prefix": prefix, "health_interval": 0.2, "reconnect_backoff": 0.05}
    async with (
        RedisBreakerState.from_url(url, start_timeout=BOUND, **options) as sa,  # type: ignore[arg-type]
        RedisBreakerState.from_url(redis_server.url, start_timeout=BOUND, **options) as sb,  # type: ignore[arg-type]
    ):
        a, b = make(sa, clock_a), make(sb, FakeClock())
        proxy.blackhole()
        await eventually(lambda: not sa.live, "A to notice the silence")
        await fail_n(a, 4)
        assert a.state == "open"
        clock_a.advance(30.0)
        await a.call(ok)
        await a.call(ok)
        assert a.state == "closed"
        proxy.heal()
        await eventually(lambda: sa.live, "A to resubscribe")
        await fail_n(a, 4)
        await eventually(lambda: b.state == "open", "B to follow A's open")


async def test_start_without_redis_does_not_raise(prefix: str) -> None:
    """A state whose Redis is unreachable starts, counts the error, and breakers work."""
    state = RedisBreakerState.from_url(
        "redis://127.0.0.1:1/0", prefix=prefix, start_timeout=BOUND, reconnect_backoff=0.05
    )
    breaker = make(state, FakeClock())
    async with state:
        assert not state.live
        assert state.redis_errors >= 1
        await fail_n(breaker, 4)
        assert breaker.state == "open"
        await eventually(lambda: state.redis_errors >= 2, "the failed write to be counted")


async def test_from_hub_and_settings(redis_server: RedisServer, prefix: str) -> None:
    """The state runs on a caller's hub (left open) or on TENFOLD_REDIS__* settings."""
    hub = RedisHub.from_url(redis_server.url)
    try:
        async with RedisBreakerState(hub, prefix=prefix, start_timeout=BOUND) as mine:
            settings = RedisSettings(url=redis_server.url)  # type: ignore[arg-type]
            async with RedisBreakerState.from_settings(
                settings, prefix=prefix, start_timeout=BOUND
            ) as other:
                assert mine.live
                assert other.live
                a, b = make(mine, FakeClock()), make(other, FakeClock())
                await fail_n(a, 4)
                await eventually(lambda: b.state == "open", "B to follow A's open")
        await hub.ping()  # still the caller's, still open
    finally:
        await hub.aclose()


def test_is_a_component() -> None:
    """The state fits the platform's Component protocol."""
    state = RedisBreakerState(RedisHub.from_url("redis://127.0.0.1:1"), name="breakers")
    assert isinstance(state, Component)
    assert state.name == "breakers"


async def test_cluster(redis_cluster: RedisCluster, prefix: str) -> None:
    """On Redis Cluster, an open on one instance reaches the other."""
    nodes, clock_a = redis_cluster.startup_nodes, FakeClock()
    async with (
        RedisBreakerState.from_cluster(nodes, prefix=prefix, start_timeout=BOUND) as sa,
        RedisBreakerState.from_cluster(nodes, prefix=prefix, start_timeout=BOUND) as sb,
    ):
        assert sa.live
        assert sb.live
        a, b = make(sa, clock_a), make(sb, FakeClock())
        await fail_n(a, 4)
        await eventually(lambda: b.state == "open", "B to follow A's open on Cluster")
        clock_a.advance(30.0)
        await a.call(ok)
        await a.call(ok)
        await eventually(lambda: b.state == "closed", "B to follow A's close on Cluster")
