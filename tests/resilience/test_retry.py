"""Retry: attempts, what is retried, full-jitter bounds, deadline, Retry-After and the switch."""

from __future__ import annotations

import random

import httpx
import pytest

from tenfold import Backoff, DatabaseUnavailable, DependencyUnavailable
from tenfold.resilience import (
    BulkheadFull,
    CircuitOpen,
    DeadlineExceeded,
    Event,
    QuotaExhausted,
    RetriesExhausted,
    Retry,
    RetryScheduled,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    set_retries_active,
    transient,
)

from .conftest import FakeClock

_REQUEST = httpx.Request("GET", "http://upstream.test/")


class Flaky(ConnectionError):
    """A transient failure: retried by default."""

    def __init__(self) -> None:
        super().__init__("flaky")


class Fatal(Exception):
    pass


class SlowWithAHint(TimeoutError):
    """A transient error whose class merely defaults a retry_after, as tenfold's 503s once did."""

    retry_after = 1.0


def upstream_error(status: int, retry_after: float | None = None) -> UpstreamError:
    response = httpx.Response(status, request=_REQUEST)
    return UpstreamError("upstream", response=response, retry_after=retry_after)


def make(clock: FakeClock, **options: object) -> Retry:
    defaults: dict[str, object] = {
        "sleep": clock.sleep,
        "clock": clock,
        "rng": random.Random(42),
        "hooks": (),
    }
    return Retry("upstream", **{**defaults, **options})  # type: ignore[arg-type]


def failing(times: int, error: Exception | None = None) -> tuple[list[int], object]:
    calls: list[int] = []

    async def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error or Flaky()
        return "ok"

    return calls, fn


async def test_succeeds_after_failures(clock: FakeClock) -> None:
    """A call that fails twice then succeeds takes three attempts and two waits."""
    calls, fn = failing(2)
    assert await make(clock, attempts=3).call(fn) == "ok"  # type: ignore[arg-type]
    assert len(calls) == 3
    assert len(clock.slept) == 2


async def test_gives_up_after_max_attempts(clock: FakeClock) -> None:
    """After max attempts RetriesExhausted is raised from the last error."""
    calls, fn = failing(10)
    with pytest.raises(RetriesExhausted) as info:
        await make(clock, attempts=4).call(fn)  # type: ignore[arg-type]
    assert len(calls) == 4
    assert info.value.attempts == 4
    assert info.value.reason == "attempts"
    assert isinstance(info.value.__cause__, Flaky)


async def test_does_not_retry_unselected_errors(clock: FakeClock) -> None:
    """An error that retry_on does not select propagates after one attempt."""
    calls, fn = failing(10, Fatal())
    with pytest.raises(Fatal):
        await make(clock, retry_on=Flaky).call(fn)  # type: ignore[arg-type]
    assert len(calls) == 1


async def test_retry_on_predicate(clock: FakeClock) -> None:
    """A callable retry_on decides per exception."""
    calls, fn = failing(10, Fatal())
    with pytest.raises(RetriesExhausted):
        await make(clock, retry_on=lambda e: isinstance(e, Fatal)).call(fn)  # type: ignore[arg-type]
    assert len(calls) == 3


async def test_full_jitter_bounds(clock: FakeClock) -> None:
    """Each wait lies in [0, min(max_wait, base * multiplier ** (n - 1))]."""
    retry = make(clock, base=0.5, multiplier=2.0, max_wait=3.0, rng=random.Random(7))
    waits = [retry.delay(n) for n in range(1, 8) for _ in range(200)]
    caps = [min(3.0, 0.5 * 2 ** (n - 1)) for n in range(1, 8) for _ in range(200)]
    assert all(0.0 <= w <= cap for w, cap in zip(waits, caps, strict=True))
    # Full jitter spreads over the whole range, not just near the cap.
    assert min(waits[-200:]) < 0.5
    assert max(waits[-200:]) > 2.5


async def test_seeded_rng_is_reproducible(clock: FakeClock) -> None:
    """The same seed gives the same waits."""
    first = make(clock, rng=random.Random(1))
    second = make(clock, rng=random.Random(1))
    assert [first.delay(n) for n in range(1, 6)] == [second.delay(n) for n in range(1, 6)]


async def test_backoff_value_sets_the_waits(clock: FakeClock) -> None:
    """A Backoff given as backoff= decides every wait; without jitter they are exact."""
    _, fn = failing(3)
    retry = make(clock, attempts=4, backoff=Backoff(base=0.5, multiplier=3.0, jitter="none"))
    assert await retry.call(fn) == "ok"  # type: ignore[arg-type]
    assert clock.slept == [0.5, 1.5, 4.5]


def test_backoff_keywords_build_a_full_jitter_backoff() -> None:
    """base, multiplier and max_wait build the Backoff; the defaults are 0.1, 2 and 10 s."""
    assert Retry().backoff == Backoff(base=0.1, multiplier=2.0, max=10.0, jitter="full")
    assert Retry(base=0.5, max_wait=3.0).backoff == Backoff(base=0.5, max=3.0)
    assert repr(Retry("llm", base=0.5)) == (
        "Retry('llm', attempts=3, backoff=Backoff(base=0.5, multiplier=2.0, max=10.0,"
        " jitter='full'), deadline=None)"
    )


def test_backoff_and_its_keywords_do_not_mix() -> None:
    """Giving both backoff= and base/multiplier/max_wait is refused when the Retry is built."""
    with pytest.raises(ValueError, match="either backoff= or base"):
        Retry(backoff=Backoff(), base=0.2)


async def test_deadline_is_respected(clock: FakeClock) -> None:
    """No wait is taken that would end past the deadline; the retries stop there."""
    calls, fn = failing(100)
    retry = make(clock, attempts=100, base=1.0, max_wait=1.0, rng=random.Random(3), deadline=5.0)
    start = clock.now
    with pytest.raises(RetriesExhausted) as info:
        await retry.call(fn)  # type: ignore[arg-type]
    assert info.value.reason == "deadline"
    assert clock.now - start <= 5.0
    assert len(calls) > 3


async def test_retry_after_is_honoured(clock: FakeClock) -> None:
    """A provider's Retry-After on an UpstreamError is the wait used, instead of the backoff."""
    _, fn = failing(2, upstream_error(503, retry_after=7.0))
    assert await make(clock).call(fn) == "ok"  # type: ignore[arg-type]
    assert clock.slept == [7.0, 7.0]


async def test_retry_after_beyond_max_is_not_waited(clock: FakeClock) -> None:
    """A retry_after above max_retry_after re-raises the error at once."""
    error = upstream_error(429, retry_after=3600.0)
    calls, fn = failing(2, error)
    with pytest.raises(UpstreamError) as raised:
        await make(clock, max_retry_after=60.0).call(fn)  # type: ignore[arg-type]
    assert raised.value is error
    assert len(calls) == 1
    assert clock.slept == []


async def test_upstream_error_without_retry_after_backs_off(clock: FakeClock) -> None:
    """An UpstreamError whose response had no Retry-After waits the jittered backoff."""
    _, fn = failing(2, upstream_error(503))
    assert await make(clock, base=0.1).call(fn) == "ok"  # type: ignore[arg-type]
    assert [w <= cap for w, cap in zip(clock.slept, [0.1, 0.2], strict=True)] == [True, True]


async def test_a_class_default_retry_after_is_not_obeyed(clock: FakeClock) -> None:
    """A retry_after that only a class defaults to is ignored: waits stay within the jitter cap."""
    _, fn = failing(2, SlowWithAHint())
    assert await make(clock, base=0.1).call(fn) == "ok"  # type: ignore[arg-type]
    assert len(clock.slept) == 2
    assert all(w <= 0.1 * 2**n for n, w in enumerate(clock.slept))


async def test_deadline_exceeded_waits_the_backoff_not_a_second(clock: FakeClock) -> None:
    """An expired time limit is retried after jittered waits within base's cap, never 1.0 s."""
    _, fn = failing(2, DeadlineExceeded("upstream", seconds=0.01))
    assert await make(clock, base=0.1).call(fn) == "ok"  # type: ignore[arg-type]
    assert len(clock.slept) == 2
    assert clock.slept[0] <= 0.1
    assert clock.slept[1] <= 0.2


async def test_unexpected_errors_are_not_retried_by_default(clock: FakeClock) -> None:
    """A KeyError gets one attempt and propagates unchanged, without a wait."""
    error = KeyError("user_id")
    calls, fn = failing(10, error)
    with pytest.raises(KeyError) as raised:
        await make(clock).call(fn)  # type: ignore[arg-type]
    assert raised.value is error
    assert len(calls) == 1
    assert clock.slept == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (UpstreamUnreachable("p", request=_REQUEST), True),
        (UpstreamTimeout("p", request=_REQUEST), True),
        (DeadlineExceeded("p", seconds=1.0), True),
        (upstream_error(429), True),
        (upstream_error(502), True),
        (upstream_error(503), True),
        (upstream_error(504), True),
        (upstream_error(500), False),
        (upstream_error(501), False),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (httpx.ConnectError("refused", request=_REQUEST), True),
        (httpx.ReadTimeout("slow", request=_REQUEST), True),
        (httpx.RemoteProtocolError("closed early", request=_REQUEST), True),
        (httpx.UnsupportedProtocol("ftp://"), False),
        (httpx.LocalProtocolError("bad header"), False),
        (DatabaseUnavailable(), False),
        (DependencyUnavailable(), False),
        (CircuitOpen("p", state="open", retry_after=30.0), False),
        (BulkheadFull("p", max_concurrent=1, max_waiting=0), False),
        (QuotaExhausted("p", window="15m", retry_after=60.0), False),
        (KeyError("k"), False),
        (ValueError("v"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_transient(error: BaseException, expected: bool) -> None:
    """transient selects connection errors, timeouts and 429/502/503/504, and nothing else."""
    assert transient(error) is expected


async def test_result_predicate(clock: FakeClock) -> None:
    """retry_if_result retries on a returned value and reports the last one."""
    results = iter([None, None, "ok"])

    async def fn() -> str | None:
        return next(results)

    assert await make(clock, retry_if_result=lambda r: r is None).call(fn) == "ok"

    async def pending() -> str:
        return "pending"

    with pytest.raises(RetriesExhausted) as info:
        await make(clock, attempts=2, retry_if_result=lambda r: r == "pending").call(pending)
    assert (info.value.attempts, info.value.last_result) == (2, "pending")


async def test_switch_turns_retries_off(clock: FakeClock) -> None:
    """With retries inactive, one attempt is made and its error is raised unchanged."""
    set_retries_active(False)
    calls, fn = failing(10)
    with pytest.raises(Flaky):
        await make(clock).call(fn)  # type: ignore[arg-type]
    assert len(calls) == 1


async def test_retries_emit_events(clock: FakeClock) -> None:
    """Each retry emits a RetryScheduled event with its attempt and wait."""
    events: list[Event] = []
    _, fn = failing(2, upstream_error(503, retry_after=1.0))
    await make(clock, hooks=(events.append,)).call(fn)  # type: ignore[arg-type]
    assert [(e.attempt, e.wait) for e in events if isinstance(e, RetryScheduled)] == [
        (1, 1.0),
        (2, 1.0),
    ]
