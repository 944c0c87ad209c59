"""ExternalClient against a real fake upstream on loopback: quota, fallback, request id."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tenfold import ContextSnapshot, Principal, restore
from tenfold.resilience import (
    CircuitBreaker,
    ClientStats,
    CountWindow,
    ExternalClient,
    FallbackChain,
    Policy,
    QuotaExhausted,
    RetriesExhausted,
    Retry,
    UpstreamError,
    UpstreamQuota,
    UpstreamTimeout,
    UpstreamUnreachable,
    upstream_failure,
)

from ._upstream import FakeUpstream, serve_upstream
from .conftest import FakeClock

# A quarter-hour boundary plus 100 s, as the quota's wall clock.
START = (1_700_000_000 // 900) * 900.0 + 100.0


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with serve_upstream() as fake:
        yield fake


@pytest.fixture
def upstream_b() -> Iterator[FakeUpstream]:
    with serve_upstream() as fake:
        yield fake


async def test_request_id_is_propagated(upstream: FakeUpstream) -> None:
    """The current request id is sent as X-Request-ID, and none is sent outside a request."""
    async with ExternalClient("a", base_url=upstream.url) as client:
        with restore(ContextSnapshot(request_id="req-42")):
            await client.get("/ping")
        await client.get("/ping")
    assert upstream.seen_headers[0]["x-request-id"] == "req-42"
    assert "x-request-id" not in upstream.seen_headers[1]


async def test_context_travels_as_headers(upstream: FakeUpstream) -> None:
    """Correlation and causation ids and the traceparent go out; the principal never does."""
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    context = ContextSnapshot(
        request_id="req-7",
        principal=Principal("alice", roles={"admin"}),
        correlation_id="flow-1",
        causation_id="msg-3",
        traceparent=traceparent,
    )
    async with ExternalClient("a", base_url=upstream.url) as client:
        with restore(context):
            await client.get("/ping", headers={"X-Correlation-ID": "mine"})
    seen = upstream.seen_headers[0]
    assert seen["x-request-id"] == "req-7"
    assert seen["x-correlation-id"] == "mine"  # the caller's own header wins
    assert seen["x-causation-id"] == "msg-3"
    assert seen["traceparent"] == traceparent
    assert "alice" not in " ".join(seen.values())


async def test_upstream_quota_refuses_the_11th_call_locally(upstream: FakeUpstream) -> None:
    """With a 15-minute quota of 10 advertised, the 11th call is refused and never sent."""
    upstream.quota_15m = 10
    stats = ClientStats()
    quota = UpstreamQuota("strava", clock=lambda: START, max_wait=0.0)
    async with ExternalClient("strava", base_url=upstream.url, quota=quota, stats=stats) as client:
        for _ in range(10):
            assert (await client.get("/activities")).status_code == 200
        with pytest.raises(QuotaExhausted) as info:
            await client.get("/activities")
    assert upstream.requests == 10
    assert info.value.retry_after == pytest.approx(800.0)
    assert stats.requests == {("strava", "ok"): 10, ("strava", "refused"): 1}
    samples = {
        (s.name, tuple(s.labels.values())): s.value for m in stats.collect() for s in m.samples
    }
    assert samples[("tenfold_upstream_quota_remaining", ("strava", "15m"))] == 0.0


async def test_upstream_quota_holds_the_11th_call_until_the_window_resets(
    upstream: FakeUpstream,
) -> None:
    """With a long enough max_wait the 11th call waits for the next 15-minute window."""
    upstream.quota_15m = 10
    wall = FakeClock()
    wall.now = START
    quota = UpstreamQuota("strava", clock=wall, sleep=wall.sleep, max_wait=900.0)
    async with ExternalClient("strava", base_url=upstream.url, quota=quota) as client:
        for _ in range(10):
            await client.get("/activities")
        assert upstream.requests == 10
        await client.get("/activities")
    assert wall.slept == [pytest.approx(800.0)]
    assert upstream.requests == 11


async def test_concurrent_callers_cannot_overshoot_the_quota(upstream: FakeUpstream) -> None:
    """Requests in flight count against the quota, so a burst sends only what is left."""
    upstream.quota_15m = 10
    quota = UpstreamQuota("strava", clock=lambda: START, max_wait=0.0)
    async with ExternalClient("strava", base_url=upstream.url, quota=quota) as client:
        await client.get("/activities")
        results = await asyncio.gather(
            *(client.get("/activities") for _ in range(12)), return_exceptions=True
        )
    assert sum(isinstance(r, QuotaExhausted) for r in results) == 3
    assert upstream.requests == 10


@pytest.mark.parametrize("mode", ["fail", "stall"])
async def test_fallback_skips_a_once_its_breaker_is_open(
    mode: str, upstream: FakeUpstream, upstream_b: FakeUpstream, clock: FakeClock
) -> None:
    """With A down, the chain answers from B and, once A's breaker opens, stops calling A."""
    upstream.mode = mode
    breaker = CircuitBreaker(
        "a",
        window=CountWindow(4),
        minimum_calls=2,
        open_for=30.0,
        failure_on=upstream_failure,
        clock=clock,
        hooks=(),
    )
    a = ExternalClient("a", base_url=upstream.url, policy=Policy(breaker=breaker), timeout=0.2)
    b = ExternalClient("b", base_url=upstream_b.url)
    chain = FallbackChain("llm", [a.as_provider(), b.as_provider()])
    async with a, b:
        for _ in range(2):
            assert (await chain.call("GET", "/complete")).status_code == 200
        assert breaker.is_open
        for _ in range(3):
            assert (await chain.call("GET", "/complete")).status_code == 200
    assert upstream.requests == 2
    assert upstream_b.requests == 5


async def test_retry_honours_retry_after(upstream: FakeUpstream, clock: FakeClock) -> None:
    """A 429 with Retry-After is a failure the retry waits out for exactly that long."""
    upstream.mode = "429"
    upstream.retry_after = "3"
    retry = Retry("a", attempts=2, sleep=clock.sleep, clock=clock, hooks=())
    async with ExternalClient("a", base_url=upstream.url, policy=Policy(retry=retry)) as client:
        with pytest.raises(RetriesExhausted) as info:
            await client.get("/x")
    assert clock.slept == [3.0]
    assert upstream.requests == 2
    cause = info.value.__cause__
    assert isinstance(cause, UpstreamError)
    assert cause.status_code == 429


async def test_transport_errors_are_mapped() -> None:
    """httpx connect errors and timeouts become tenfold errors with the httpx error as cause."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            raise httpx.ReadTimeout("slow", request=request)
        raise httpx.ConnectError("refused", request=request)

    transport = httpx.MockTransport(handler)
    async with ExternalClient("a", base_url="http://a.test", transport=transport) as client:
        with pytest.raises(UpstreamUnreachable) as unreachable:
            await client.get("/x")
        with pytest.raises(UpstreamTimeout) as timeout:
            await client.get("/slow")
    assert isinstance(unreachable.value.__cause__, httpx.ConnectError)
    assert isinstance(timeout.value.__cause__, httpx.ReadTimeout)
