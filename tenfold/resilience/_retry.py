"""Retry with exponential backoff and full jitter, a deadline and Retry-After.

Only what ``retry_on`` selects is retried; by default that is ``transient``:
connection errors, timeouts and a provider's 429/502/503/504. Retrying every
exception would repeat bugs (a ``KeyError`` fails the same way each time) and
hide them behind ``RetriesExhausted``.

The wait before attempt ``n + 1`` comes from a ``tenfold.Backoff``, by
default ``uniform(0, min(max_wait, base * multiplier ** (n - 1)))`` (AWS
"full jitter"). A measured ``retry_after`` is
used instead: the provider's ``Retry-After`` on an ``UpstreamError``, a
breaker's time to half-open on a ``CircuitOpen``, a quota's reset on a
``QuotaExhausted``; never an attribute that merely defaults to a number. Above
``max_retry_after`` retrying is pointless and the error is re-raised as it is.
A wait that would end past the ``deadline`` (seconds from the first attempt)
is not taken.

``set_retries_active(False)`` turns retrying off process-wide (one attempt,
errors raised unchanged) for tests; ``set_retries_active(True)`` resets it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import httpx

from tenfold._backoff import Backoff
from tenfold.resilience._errors import (
    CircuitOpen,
    DeadlineExceeded,
    QuotaExhausted,
    RetriesExhausted,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from tenfold.resilience._events import Hook, RetryScheduled, emit, log_event

__all__ = ["Retry", "retries_active", "set_retries_active", "transient"]

P = ParamSpec("P")
T = TypeVar("T")

RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


class _Switch:
    active = True


def set_retries_active(active: bool) -> None:
    """Turn retrying on or off for the whole process (True is the default)."""
    _Switch.active = active


def retries_active() -> bool:
    return _Switch.active


#: The provider statuses that say "try again": too many requests, and a gateway or
#: server that is down or overloaded for now. A 500 is a bug; repeating it costs twice.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure that may pass by itself, so trying again can help.

    True for a provider that was unreachable, timed out or answered 429, 502,
    503 or 504; for a ``Timeout`` that expired (``DeadlineExceeded``); for
    builtin ``TimeoutError`` and ``ConnectionError``; and for httpx's network,
    timeout and remote protocol errors. False for everything else: local
    refusals (``CircuitOpen``, ``BulkheadFull``, ``QuotaExhausted``) and bugs.

    ``DatabaseUnavailable`` is deliberately not transient here: it can mean the
    connection was lost during a commit whose outcome is unknown, so running
    the call again could apply a write twice; the database layer already
    reconnects and fails over by itself.
    """
    if isinstance(exc, UpstreamError):
        return exc.status_code in TRANSIENT_STATUSES
    if isinstance(exc, httpx.TransportError):
        # A bad URL scheme or a request we built wrong fails the same way every time.
        return not isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError)
    return isinstance(
        exc,
        UpstreamUnreachable | UpstreamTimeout | DeadlineExceeded | TimeoutError | ConnectionError,
    )


class Retry:
    """Retry an async call; ``await retry.call(fn, *args)``.

    ``name`` labels events, logs and ``RetriesExhausted``. The waits come
    from ``backoff`` (a ``tenfold.Backoff``; full jitter from 0.1 s, doubling,
    at most 10 s), or from ``base``, ``multiplier`` and ``max_wait``, which
    build one with full jitter; give one or the other. ``retry_on``
    selects the exceptions worth retrying (types or a predicate); by default
    (None) ``transient`` ones, so an open breaker (``CircuitOpen``) ends the
    retries at once and a fallback chain moves on without waiting.
    ``retry_if_result`` asks for another attempt on a returned value.
    ``sleep``, ``clock`` and ``rng`` are injected so tests neither wait nor
    depend on chance.
    """

    def __init__(
        self,
        name: str = "retry",
        *,
        attempts: int = 3,
        backoff: Backoff | None = None,
        base: float | None = None,
        multiplier: float | None = None,
        max_wait: float | None = None,
        deadline: float | None = None,
        retry_on: RetryOn | None = None,
        retry_if_result: Callable[[Any], bool] | None = None,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        hooks: Sequence[Hook] = (log_event,),
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.name = name
        self.attempts = attempts
        self.backoff = _backoff(backoff, base=base, multiplier=multiplier, max_wait=max_wait)
        self.deadline = deadline
        self._should_retry = _predicate(retry_on)
        self.retry_if_result = retry_if_result
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.hooks = tuple(hooks)

    def __repr__(self) -> str:
        return (
            f"Retry({self.name!r}, attempts={self.attempts}, backoff={self.backoff!r},"
            f" deadline={self.deadline})"
        )

    def delay(self, attempt: int) -> float:
        """The backoff wait after failed attempt ``attempt`` (1-based), drawn with ``rng``."""
        return self.backoff.delay(attempt, self._rng)

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)``, retrying as configured."""
        if not _Switch.active:
            return await fn(*args, **kwargs)
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                if not self._should_retry(exc):
                    raise
                wait = self._wait_after(attempt, exc)
                if wait is None:
                    raise
                error: BaseException | None = exc
                last_result = None
            else:
                if self.retry_if_result is None or not self.retry_if_result(result):
                    return result
                wait, error, last_result = self.delay(attempt), None, result
            reason = self._give_up_reason(attempt, started, wait)
            if reason is not None:
                raise RetriesExhausted(
                    self.name, attempts=attempt, reason=reason, last_result=last_result
                ) from error
            emit(
                self.hooks, RetryScheduled(self.name, attempt, wait, _describe(error, last_result))
            )
            await self._sleep(wait)

    def _wait_after(self, attempt: int, exc: BaseException) -> float | None:
        """The wait before the next attempt, or None when Retry-After is too far."""
        retry_after = _measured_retry_after(exc)
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return self.delay(attempt)

    def _give_up_reason(self, attempt: int, started: float, wait: float) -> str | None:
        if attempt >= self.attempts:
            return "attempts"
        if self.deadline is not None and self._clock() + wait - started > self.deadline:
            return "deadline"
        return None


def _backoff(
    backoff: Backoff | None,
    *,
    base: float | None,
    multiplier: float | None,
    max_wait: float | None,
) -> Backoff:
    if backoff is not None:
        if (base, multiplier, max_wait) != (None, None, None):
            raise ValueError("give Retry either backoff= or base/multiplier/max_wait, not both")
        return backoff
    default = Backoff()
    return Backoff(
        base=default.base if base is None else base,
        multiplier=default.multiplier if multiplier is None else multiplier,
        max=default.max if max_wait is None else max_wait,
    )


def _predicate(retry_on: RetryOn | None) -> Callable[[BaseException], bool]:
    if retry_on is None:
        return transient
    if isinstance(retry_on, type | tuple):
        types = retry_on
        return lambda e: isinstance(e, types)
    return retry_on


def _measured_retry_after(exc: BaseException) -> float | None:
    """A wait someone measured: the provider's Retry-After, a breaker's or a quota's."""
    if not isinstance(exc, UpstreamError | CircuitOpen | QuotaExhausted):
        return None
    return None if exc.retry_after is None else float(exc.retry_after)


def _describe(error: BaseException | None, result: Any) -> str:
    if error is not None:
        return f"{type(error).__name__}: {error}"
    return f"result {result!r}"[:200]
