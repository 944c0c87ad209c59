"""Policy composition order and the fallback chain."""

from __future__ import annotations

import asyncio
import inspect
import random

import pytest

from tenfold.resilience import (
    PROBLEMS,
    CircuitBreaker,
    CircuitOpen,
    CountWindow,
    DeadlineExceeded,
    FallbackChain,
    NoProviderAvailable,
    Policy,
    Provider,
    RetriesExhausted,
    Retry,
    Timeout,
)
from tenfold.web import ProblemRegistry, problem_for_exception

from .conftest import FakeClock

BOUND = 5.0
#: Loop iterations a call that awaits no I/O and no timer needs, with room to spare.
STEPS = 20


def breaker(clock: FakeClock, name: str = "a") -> CircuitBreaker:
    return CircuitBreaker(
        name,
        window=CountWindow(4),
        minimum_calls=2,
        open_for=30.0,
        clock=clock,
        hooks=(),
    )


async def test_decorator_keeps_signature() -> None:
    """Policy used as a decorator keeps the wrapped function's name and signature."""

    @Policy()
    async def add(a: int, b: int = 1) -> int:
        return a + b

    assert await add(2, b=3) == 5
    assert add.__name__ == "add"
    assert list(inspect.signature(add).parameters) == ["a", "b"]


async def test_retry_is_outside_the_breaker(clock: FakeClock) -> None:
    """Each retry attempt passes the breaker, so once it opens the retries stop calling."""
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("refused")

    policy = Policy(
        retry=Retry(
            "a",
            attempts=10,
            sleep=clock.sleep,
            clock=clock,
            rng=random.Random(0),
            hooks=(),
        ),
        breaker=breaker(clock),
    )
    with pytest.raises(CircuitOpen):
        await policy.call(down)
    assert calls == 2


async def test_retry_can_wait_for_half_open(clock: FakeClock) -> None:
    """When retry_on selects CircuitOpen, the retry waits its retry_after and then probes."""
    attempts = 0

    async def recovers() -> str:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise ConnectionError("refused")
        return "ok"

    policy = Policy(
        retry=Retry(
            "a",
            attempts=5,
            retry_on=Exception,
            sleep=clock.sleep,
            clock=clock,
            rng=random.Random(0),
            hooks=(),
        ),
        breaker=breaker(clock),
    )
    assert await policy.call(recovers) == "ok"
    assert attempts == 3
    # backoff, backoff (the breaker opens), then the rest of open_for
    assert len(clock.slept) == 3
    assert clock.slept[1] + clock.slept[2] == pytest.approx(30.0)


async def test_timeout_is_inside_the_retry(clock: FakeClock) -> None:
    """The time limit bounds each attempt; the retry sees DeadlineExceeded and tries again."""
    attempts = 0

    async def stalls_once() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.sleep(3600)
        return "ok"

    policy = Policy(
        retry=Retry("a", sleep=clock.sleep, clock=clock, hooks=(), rng=random.Random(0)),
        timeout=Timeout(0.01, name="a"),
    )
    async with asyncio.timeout(BOUND):
        assert await policy.call(stalls_once) == "ok"
    assert attempts == 2


async def test_expired_time_limits_are_retried_within_the_jitter_cap(clock: FakeClock) -> None:
    """Each DeadlineExceeded is retried after a jittered wait within the backoff cap, not 1 s."""
    attempts = 0

    async def stalls() -> None:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(3600)

    retry = Retry(base=0.1, sleep=clock.sleep, clock=clock, rng=random.Random(0), hooks=())
    policy = Policy(retry=retry, timeout=Timeout(0.01))
    async with asyncio.timeout(BOUND):
        with pytest.raises(RetriesExhausted) as info:
            await policy.call(stalls)
    assert isinstance(info.value.__cause__, DeadlineExceeded)
    assert attempts == 3
    assert len(clock.slept) == 2
    assert clock.slept[0] <= 0.1
    assert clock.slept[1] <= 0.2


def test_shortest_policy_reads_as_written() -> None:
    """Retry needs no name and Timeout takes its seconds first."""
    policy = Policy(retry=Retry(base=0.1), timeout=Timeout(0.01))
    assert policy.retry is not None
    assert policy.timeout is not None
    assert (policy.retry.name, policy.retry.backoff.base) == ("retry", 0.1)
    assert (policy.timeout.name, policy.timeout.seconds) == ("timeout", 0.01)


async def test_fallback_skips_open_provider_without_awaiting_its_timeout(
    clock: FakeClock,
) -> None:
    """With A's breaker open the chain answers from B at once, never calling A."""
    a_calls = 0

    async def provider_a(prompt: str) -> str:
        nonlocal a_calls
        a_calls += 1
        await asyncio.sleep(3600)  # a stalled upstream
        return "a"

    async def provider_b(prompt: str) -> str:
        return f"b:{prompt}"

    a = Policy(breaker=breaker(clock, "a"), timeout=Timeout(0.01, name="a"))
    chain = FallbackChain("llm", [Provider("a", provider_a, a), Provider("b", provider_b)])
    async with asyncio.timeout(BOUND):
        assert await chain.call("hi") == "b:hi"  # A timed out once
        assert await chain.call("hi") == "b:hi"  # A timed out again: its breaker opens
    assert a.breaker is not None
    assert a.breaker.is_open
    # Answered within a few loop iterations: no timer (A's timeout) can have been awaited.
    third = asyncio.create_task(chain.call("hi"))
    for _ in range(STEPS):
        if third.done():
            break
        await asyncio.sleep(0)
    assert third.done()
    assert third.result() == "b:hi"
    assert a_calls == 2


async def test_fallback_reports_every_error_when_all_fail(clock: FakeClock) -> None:
    """When every provider fails, NoProviderAvailable carries each provider's error."""

    async def down() -> str:
        raise ConnectionError("down")

    chain = FallbackChain("llm", [Provider("a", down), Provider("b", down)])
    with pytest.raises(NoProviderAvailable) as info:
        await chain.call()
    assert set(info.value.errors) == {"a", "b"}


async def test_retries_exhausted_is_a_503() -> None:
    """Resilience errors are DependencyUnavailable: 503 with Retry-After."""
    error = RetriesExhausted("a", attempts=3, reason="attempts")
    response = problem_for_exception(error, ProblemRegistry(PROBLEMS))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
