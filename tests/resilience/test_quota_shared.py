"""RedisUpstreamQuota on a real Redis: each quota, on its own client, is one "instance".

The wall clock is injected (a fixed quarter hour), so windows never roll during a
test; Redis-side TTLs run on real time but last until the window's end plus a margin.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from tenfold import RedisSettings
from tenfold._errors import ConfigurationError
from tenfold.resilience import ExternalClient, QuotaExhausted, UpstreamError
from tenfold.resilience._quota_shared import RedisUpstreamQuota, SharedQuotaUnavailable
from tenfold.testing import RedisCluster, RedisServer

from ._upstream import FakeUpstream, serve_upstream

# A quarter-hour boundary plus 100 s, as every instance's wall clock.
BOUNDARY = (1_700_000_000 // 900) * 900.0
START = BOUNDARY + 100.0

Make = Callable[..., Awaitable[RedisUpstreamQuota]]


def strava(limit: str, usage: str) -> dict[str, str]:
    return {"X-RateLimit-Limit": limit, "X-RateLimit-Usage": usage}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with serve_upstream() as fake:
        yield fake


@pytest.fixture
def prefix() -> str:
    """Keys unique to the test, so tests sharing a Redis never see each other's."""
    return f"t{uuid.uuid4().hex[:12]}:quota:"


@pytest.fixture
async def instance(redis_server: RedisServer, prefix: str) -> AsyncIterator[Make]:
    """Factory of quotas for "strava", each with its own Redis client: one per instance."""
    async with AsyncExitStack() as stack:

        async def make(**options: object) -> RedisUpstreamQuota:
            defaults: dict[str, object] = {"prefix": prefix, "clock": lambda: START}
            quota = RedisUpstreamQuota.from_url(
                "strava",
                redis_server.url,
                **{**defaults, **options},  # type: ignore[arg-type]
            )
            stack.push_async_callback(quota.aclose)
            return quota

        yield make


async def call_until_refused(
    upstream: FakeUpstream, quotas: list[RedisUpstreamQuota], calls: int
) -> list[QuotaExhausted]:
    """``calls`` GETs, taking turns across ``quotas``; returns the local refusals."""
    refused: list[QuotaExhausted] = []
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                ExternalClient("strava", base_url=upstream.url, quota=quota)
            )
            for quota in quotas
        ]
        for n in range(calls):
            try:
                await clients[n % len(clients)].get("/activities")
            except QuotaExhausted as exc:
                refused.append(exc)
    return refused


async def test_two_instances_together_send_exactly_the_quota(
    instance: Make, upstream: FakeUpstream
) -> None:
    """With a 15-minute quota of 10, two instances send 10 in all; the 11th is never sent."""
    upstream.quota_15m = 10
    a, b = await instance(max_wait=0.0), await instance(max_wait=0.0)
    refused = await call_until_refused(upstream, [a, b], 12)
    assert upstream.requests == 10
    assert [exc.window for exc in refused] == ["15m", "15m"]
    assert refused[0].retry_after == pytest.approx(800.0)
    assert [a.remaining()["15m"], b.remaining()["15m"]] == [0, 0]
    assert [a.redis_errors, b.redis_errors] == [0, 0]


async def test_concurrent_bursts_from_two_instances_cannot_overshoot(
    instance: Make, upstream: FakeUpstream
) -> None:
    """Once the quota is known, 2 x 8 concurrent calls send only what is left."""
    upstream.quota_15m = 10
    a, b = await instance(max_wait=0.0), await instance(max_wait=0.0)
    await call_until_refused(upstream, [a], 1)
    async with (
        ExternalClient("strava", base_url=upstream.url, quota=a) as ca,
        ExternalClient("strava", base_url=upstream.url, quota=b) as cb,
    ):
        calls = [client.get("/x") for client in (ca, cb) for _ in range(8)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert upstream.requests == 10
    assert sum(isinstance(r, QuotaExhausted) for r in results) == 7


async def test_out_of_order_answers_never_lower_the_usage(instance: Make) -> None:
    """A late answer reporting less usage than another instance saw changes nothing."""
    a, b = await instance(), await instance()
    await a.arecord(200, strava("10,1000", "7,7"))
    await b.arecord(200, strava("10,1000", "3,3"))
    assert b.remaining() == {"15m": 3, "daily": 993}
    await b.before_request()
    assert b.remaining() == {"15m": 2, "daily": 992}
    await a.arecord(200, strava("20,1000", "5,5"))
    assert a.remaining()["15m"] == 12  # the limit is the latest reported; usage stays 8


async def test_reservations_count_for_every_instance(instance: Make) -> None:
    """A reservation on one instance is counted before any answer, so others see it."""
    a, b = await instance(max_wait=0.0), await instance(max_wait=0.0)
    await a.arecord(200, strava("10,1000", "8,8"))
    await a.before_request()
    await b.before_request()
    with pytest.raises(QuotaExhausted):
        await a.before_request()
    # B's call never got an answer (connection error): its reservation stays counted.
    await b.arecord(None, None)
    with pytest.raises(QuotaExhausted):
        await b.before_request()


async def test_full_daily_window_refuses_until_utc_midnight(instance: Make) -> None:
    """A used-up daily window refuses on every instance until the next UTC midnight."""
    a, b = await instance(max_wait=0.0), await instance(max_wait=0.0)
    await a.arecord(200, strava("100,1000", "5,1000"))
    with pytest.raises(QuotaExhausted) as info:
        await b.before_request()
    assert info.value.window == "daily"
    assert info.value.retry_after == pytest.approx((START // 86400 + 1) * 86400 - START)


async def test_draft_headers_are_shared(instance: Make) -> None:
    """The IETF draft RateLimit-* window is shared like the Strava ones."""
    a, b = await instance(max_wait=0.0), await instance(max_wait=0.0)
    headers = {"RateLimit-Limit": "50", "RateLimit-Remaining": "0", "RateLimit-Reset": "7"}
    await a.arecord(200, headers)
    with pytest.raises(QuotaExhausted) as info:
        await b.before_request()
    assert info.value.window == "ratelimit"
    assert info.value.retry_after == pytest.approx(7.0)


async def test_retry_after_on_one_instance_blocks_the_other(
    instance: Make, upstream: FakeUpstream
) -> None:
    """A 429 with Retry-After seen by A makes B refuse locally, without sending."""
    upstream.mode, upstream.retry_after = "429", "30"
    a, b = await instance(max_wait=0.0), await instance(max_wait=0.0)
    async with ExternalClient("strava", base_url=upstream.url, quota=a) as client:
        with pytest.raises(UpstreamError):
            await client.get("/activities")
    async with ExternalClient("strava", base_url=upstream.url, quota=b) as client:
        with pytest.raises(QuotaExhausted) as info:
            await client.get("/activities")
    assert upstream.requests == 1
    assert info.value.window == "retry-after"
    assert 25.0 < info.value.retry_after <= 30.0


async def test_every_key_has_a_ttl_and_one_hash_tag(
    instance: Make, redis_server: RedisServer, prefix: str
) -> None:
    """All of a provider's keys carry the {provider} hash tag and expire."""
    quota = await instance()
    await quota.arecord(429, {**strava("10,1000", "1,1"), "Retry-After": "5"})
    await quota.arecord(200, {"RateLimit-Remaining": "3", "RateLimit-Reset": "9"})
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        keys = sorted(k.decode() for k in await client.keys(prefix + "*"))
        ttls = [await client.pttl(key) for key in keys]
    finally:
        await client.aclose()
    names = ["block", "daily", "ratelimit", "15m"]
    assert sorted(keys) == sorted(f"{prefix}{{strava}}:{name}" for name in names)
    assert all(ttl > 0 for ttl in ttls)


async def test_redis_time_is_the_clock_by_default(instance: Make) -> None:
    """Without an injected clock, windows follow Redis TIME and still refuse in time."""
    a, b = await instance(clock=None, max_wait=0.0), await instance(clock=None, max_wait=0.0)
    await a.arecord(200, strava("100,1000", "5,1000"))
    with pytest.raises(QuotaExhausted) as info:
        await b.before_request()
    assert info.value.window == "daily"
    assert 0.0 < info.value.retry_after <= 86400.0


async def test_short_wait_is_slept_then_reserved(instance: Make) -> None:
    """A refusal shorter than max_wait is slept through and the reservation retried."""
    now = [BOUNDARY + 899.5]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    a = await instance(clock=lambda: now[0], sleep=sleep, max_wait=1.0)
    await a.arecord(200, strava("10,1000", "10,10"))
    await a.before_request()
    assert slept == [pytest.approx(0.5)]
    assert a.remaining()["15m"] == 9


async def test_redis_down_falls_back_to_a_local_quota(
    instance: Make, upstream: FakeUpstream, redis_server: RedisServer
) -> None:
    """With Redis stopped, calls go through a per-process quota and no Redis error leaks."""
    upstream.quota_15m = 10
    a = await instance(max_wait=0.0, retry_interval=0.0)
    await asyncio.to_thread(redis_server.stop)
    refused = await call_until_refused(upstream, [a], 11)
    assert upstream.requests == 10
    assert [exc.window for exc in refused] == ["15m"]
    assert a.degraded
    assert a.redis_errors >= 10
    assert a.local_reservations == 10
    assert a.remaining()["15m"] == 0


async def test_sharing_resumes_when_redis_returns(
    instance: Make, upstream: FakeUpstream, redis_server: RedisServer
) -> None:
    """After the outage the next call uses Redis again and learns the shared usage."""
    upstream.quota_15m = 10
    a, b = await instance(max_wait=0.0, retry_interval=0.0), await instance(max_wait=0.0)
    await asyncio.to_thread(redis_server.stop)
    await call_until_refused(upstream, [a], 3)
    await asyncio.to_thread(redis_server.start)
    await call_until_refused(upstream, [a], 1)
    assert not a.degraded
    await b.before_request()  # the fourth answer taught Redis a usage of 4
    assert b.remaining()["15m"] == 5


async def test_fail_closed_refuses_without_sending(
    instance: Make, upstream: FakeUpstream, redis_server: RedisServer
) -> None:
    """fail_open=False refuses while Redis is down, with the Redis error as the cause."""
    a = await instance(fail_open=False)
    await asyncio.to_thread(redis_server.stop)
    async with ExternalClient("strava", base_url=upstream.url, quota=a) as client:
        with pytest.raises(SharedQuotaUnavailable) as info:
            await client.get("/activities")
        with pytest.raises(SharedQuotaUnavailable):  # within retry_interval: Redis not asked
            await client.get("/activities")
    assert upstream.requests == 0
    assert info.value.__cause__ is not None
    assert a.redis_errors == 1


async def test_sync_record_sends_the_lesson_in_a_task(instance: Make) -> None:
    """record() (the UpstreamQuota signature) teaches the others once its task ran."""
    a, b = await instance(max_wait=0.0), await instance(max_wait=0.0)
    a.record(200, strava("10,1000", "10,10"))
    await a.aclose()
    with pytest.raises(QuotaExhausted):
        await b.before_request()


async def test_from_settings(redis_server: RedisServer, prefix: str) -> None:
    """TENFOLD_REDIS__URL builds a standalone quota; no Redis configured says what to set."""
    settings = RedisSettings(url=SecretStr(redis_server.url))
    quota = RedisUpstreamQuota.from_settings("strava", settings, prefix=prefix)
    try:
        await quota.before_request()
        assert quota.redis_errors == 0
    finally:
        await quota.aclose()
    with pytest.raises(ConfigurationError, match="TENFOLD_REDIS__URL"):
        RedisUpstreamQuota.from_settings("strava", RedisSettings())


async def test_cluster_two_instances_send_exactly_the_quota(
    redis_cluster: RedisCluster, upstream: FakeUpstream, prefix: str
) -> None:
    """On Redis Cluster too, two instances together send exactly the advertised 10."""
    upstream.quota_15m = 10
    settings = RedisSettings(cluster_nodes=redis_cluster.startup_nodes, socket_timeout=2.0)
    options = {"prefix": prefix, "clock": lambda: START, "max_wait": 0.0}
    a = RedisUpstreamQuota.from_settings("strava", settings, **options)
    b = RedisUpstreamQuota.from_settings("strava", settings, **options)
    try:
        refused = await call_until_refused(upstream, [a, b], 12)
    finally:
        await a.aclose()
        await b.aclose()
    assert upstream.requests == 10
    assert len(refused) == 2
    assert [a.redis_errors, b.redis_errors] == [0, 0]


async def test_configured_limits_bound_a_cold_start_burst(
    instance: Make, upstream: FakeUpstream
) -> None:
    """Before any response has taught the quota, two instances bursting concurrently still
    send no more than the configured 10 between them."""
    upstream.quota_15m = 10
    a = await instance(max_wait=0.0, limits={"15m": 10})
    b = await instance(max_wait=0.0, limits={"15m": 10})
    async with (
        ExternalClient("strava", base_url=upstream.url, quota=a) as ca,
        ExternalClient("strava", base_url=upstream.url, quota=b) as cb,
    ):
        results = await asyncio.gather(
            *(client.get("/activities") for client in [ca, cb] * 8), return_exceptions=True
        )
    refused = [r for r in results if isinstance(r, QuotaExhausted)]
    assert upstream.requests == 10
    assert len(refused) == 6
