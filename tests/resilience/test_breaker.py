"""The circuit breaker's state machine, under an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from tenfold.resilience import (
    CallFinished,
    CircuitBreaker,
    CircuitOpen,
    CountWindow,
    Event,
    ResilienceStats,
    StateChanged,
    TimeWindow,
)

from .conftest import FakeClock


class Boom(Exception):
    pass


def make(clock: FakeClock, **options: object) -> CircuitBreaker:
    defaults: dict[str, object] = {
        "window": CountWindow(10),
        "minimum_calls": 4,
        "open_for": 30.0,
        "half_open_probes": 2,
        "slow_call_seconds": 5.0,
        "clock": clock,
        "hooks": (),
    }
    return CircuitBreaker("upstream", **{**defaults, **options})  # type: ignore[arg-type]


async def ok(clock: FakeClock | None = None, took: float = 0.0) -> str:
    if clock is not None:
        clock.advance(took)
    return "ok"


async def fail() -> str:
    raise Boom("down")


async def fail_n(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            await breaker.call(fail)


async def test_stays_closed_below_minimum_calls(clock: FakeClock) -> None:
    """Failures fewer than minimum_calls never trip the breaker, whatever the rate."""
    breaker = make(clock)
    await fail_n(breaker, 3)
    assert breaker.state == "closed"


async def test_failure_rate_opens_then_half_opens_then_closes(clock: FakeClock) -> None:
    """Closed → open at the failure rate, half-open after open_for, closed after good probes."""
    events: list[Event] = []
    breaker = make(clock, hooks=(events.append,))
    assert await breaker.call(ok) == "ok"
    assert await breaker.call(ok) == "ok"
    await fail_n(breaker, 2)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as info:
        await breaker.call(ok)
    assert info.value.retry_after == pytest.approx(30.0)
    clock.advance(30.0)
    assert breaker.state == "half_open"
    await breaker.call(ok)
    await breaker.call(ok)
    assert breaker.state == "closed"
    changes = [(e.previous, e.current) for e in events if isinstance(e, StateChanged)]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


async def test_failure_rate_below_threshold_stays_closed(clock: FakeClock) -> None:
    """A failure rate under the threshold over a full window keeps the breaker closed."""
    breaker = make(clock, failure_rate=0.5)
    for _ in range(3):
        await breaker.call(ok)
        await breaker.call(ok)
        await fail_n(breaker, 1)
    assert breaker.state == "closed"


async def test_failed_probe_reopens(clock: FakeClock) -> None:
    """A half-open breaker whose probes fail opens again for another open_for."""
    breaker = make(clock)
    await fail_n(breaker, 4)
    clock.advance(30.0)
    await fail_n(breaker, 2)
    assert breaker.state == "open"
    clock.advance(29.0)
    assert breaker.state == "open"


async def test_slow_calls_trip_the_breaker(clock: FakeClock) -> None:
    """Successful but slow calls open the breaker at the slow-call rate."""
    breaker = make(clock, slow_rate=0.75)
    for _ in range(3):
        await breaker.call(ok, clock, 6.0)
    await breaker.call(ok, clock, 0.1)
    assert breaker.state == "open"


async def test_half_open_admits_only_n_probes(clock: FakeClock) -> None:
    """While half-open, only half_open_probes calls run; the rest get CircuitOpen at once."""
    breaker = make(clock, half_open_probes=2)
    await fail_n(breaker, 4)
    clock.advance(30.0)
    gate = asyncio.Event()
    started = 0

    async def probe() -> str:
        nonlocal started
        started += 1
        await gate.wait()
        return "ok"

    probes = [asyncio.create_task(breaker.call(probe)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen) as info:
        await breaker.call(probe)
    assert info.value.state == "half_open"
    assert started == 2
    gate.set()
    assert await asyncio.gather(*probes) == ["ok", "ok"]
    assert breaker.state == "closed"


async def test_cancelled_probe_frees_its_slot(clock: FakeClock) -> None:
    """A cancelled half-open probe gives its slot back without counting."""
    breaker = make(clock, half_open_probes=1)
    await fail_n(breaker, 4)
    clock.advance(30.0)
    task = asyncio.create_task(breaker.call(asyncio.sleep, 3600))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await breaker.call(ok) == "ok"
    assert breaker.state == "closed"


async def test_outcome_from_before_a_transition_is_ignored(clock: FakeClock) -> None:
    """A call admitted while closed that ends after the breaker opened does not count."""
    breaker = make(clock, half_open_probes=1)
    ticket = breaker.acquire()
    await fail_n(breaker, 4)
    clock.advance(30.0)
    breaker.record(ticket, 0.0, None)
    assert breaker.state == "half_open"


async def test_time_window_forgets_old_calls(clock: FakeClock) -> None:
    """With a time window, failures older than the window no longer count."""
    breaker = make(clock, window=TimeWindow(10.0))
    await fail_n(breaker, 3)
    clock.advance(11.0)
    await fail_n(breaker, 1)
    for _ in range(3):
        await breaker.call(ok)
    assert breaker.state == "closed"


async def test_failure_on_selects_counted_errors(clock: FakeClock) -> None:
    """Errors that failure_on does not select count as successes and still propagate."""
    breaker = make(clock, failure_on=lambda exc: not isinstance(exc, Boom))
    await fail_n(breaker, 6)
    assert breaker.state == "closed"


async def test_stats_count_outcomes_and_state(clock: FakeClock) -> None:
    """ResilienceStats counts calls by outcome and shows the current state."""
    stats = ResilienceStats("t")
    breaker = make(clock, hooks=(stats,))
    await fail_n(breaker, 4)
    with pytest.raises(CircuitOpen):
        await breaker.call(ok)
    assert stats.calls == {("upstream", "failure"): 4}
    assert stats.states == {"upstream": "open"}
    assert stats.rejections == {("circuit_breaker", "upstream", "open"): 1}
    families = {m.name: m for m in stats.collect()}
    state = {s.labels["state"]: s.value for s in families["t_circuit_breaker_state"].samples}
    assert state == {"closed": 0.0, "open": 1.0, "half_open": 0.0}


def test_call_finished_is_frozen() -> None:
    """Hook events are frozen, slotted dataclasses."""
    event = CallFinished("b", "success", 0.1)
    with pytest.raises(AttributeError):
        event.outcome = "failure"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")
