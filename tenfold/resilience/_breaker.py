"""The circuit breaker: failure rate and slow-call rate over a sliding window.

    CLOSED --(rates over threshold, >= minimum_calls)--> OPEN
    OPEN --(open_for elapsed, seen on the next call or ``state`` read)--> HALF_OPEN
    HALF_OPEN --(half_open_probes finished, rates under threshold)--> CLOSED
    HALF_OPEN --(half_open_probes finished, a rate over threshold)--> OPEN

In half-open only ``half_open_probes`` calls are let through; the others get
``CircuitOpen`` at once. An outcome is credited to the state it started in: a
slow call that began before the breaker opened cannot close it again.
A probe that is cancelled frees its slot without counting.

With ``shared=`` (a ``RedisBreakerState``) the opens and closes of every
same-named breaker on other instances are followed too: see ``_shared``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from tenfold.resilience._errors import CircuitOpen
from tenfold.resilience._events import (
    CallFinished,
    CallRejected,
    Hook,
    StateChanged,
    emit,
    log_event,
)

if TYPE_CHECKING:
    from tenfold.resilience._shared import RedisBreakerState

__all__ = ["CircuitBreaker", "CountWindow", "TimeWindow"]

P = ParamSpec("P")
T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

#: Which exceptions count as failures: types, or a predicate on the exception.
FailurePredicate = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)


@dataclass(frozen=True, slots=True)
class CountWindow:
    """Judge the breaker on the last ``size`` calls."""

    size: int = 100


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Judge the breaker on the calls that ended in the last ``seconds``."""

    seconds: float = 60.0


class _Window:
    """Outcomes (end time, failed, slow) with running totals."""

    def __init__(self, spec: CountWindow | TimeWindow) -> None:
        self._spec = spec
        self._items: deque[tuple[float, bool, bool]] = deque()
        self.failures = 0
        self.slow = 0

    def add(self, now: float, failed: bool, slow: bool) -> None:
        self._items.append((now, failed, slow))
        self.failures += failed
        self.slow += slow
        self.evict(now)

    def evict(self, now: float) -> None:
        items, spec = self._items, self._spec
        while items and (
            len(items) > spec.size
            if isinstance(spec, CountWindow)
            else items[0][0] <= now - spec.seconds
        ):
            _, failed, slow = items.popleft()
            self.failures -= failed
            self.slow -= slow

    def __len__(self) -> int:
        return len(self._items)

    def rates(self) -> tuple[float, float]:
        n = len(self._items)
        return (self.failures / n, self.slow / n) if n else (0.0, 0.0)


class CircuitBreaker:
    """Async-native circuit breaker; use ``await breaker.call(fn, *args)``.

    ``failure_rate`` and ``slow_rate`` are fractions (0..1] of the window; a
    call is slow when it takes at least ``slow_call_seconds``. The breaker can
    only trip once the window holds ``minimum_calls`` outcomes. It stays open
    for ``open_for`` seconds, then lets ``half_open_probes`` calls through and
    judges them alone. ``failure_on`` picks the exceptions that count as
    failures; others count as successes (a 404 is not the upstream failing).
    ``clock`` is injected so tests move time instead of sleeping.
    ``shared`` shares opens and closes with the same-named breakers of other
    instances (see ``RedisBreakerState``); calls never wait for it.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_rate: float = 0.5,
        slow_rate: float = 1.0,
        slow_call_seconds: float = 10.0,
        window: CountWindow | TimeWindow = CountWindow(100),
        minimum_calls: int = 10,
        open_for: float = 30.0,
        half_open_probes: int = 3,
        failure_on: FailurePredicate = Exception,
        clock: Callable[[], float] = time.monotonic,
        hooks: Sequence[Hook] = (log_event,),
        shared: RedisBreakerState | None = None,
    ) -> None:
        if not (0 < failure_rate <= 1 and 0 < slow_rate <= 1):
            raise ValueError("failure_rate and slow_rate are fractions in (0, 1]")
        if minimum_calls < 1 or half_open_probes < 1:
            raise ValueError("minimum_calls and half_open_probes must be at least 1")
        self.name = name
        self.failure_rate = failure_rate
        self.slow_rate = slow_rate
        self.slow_call_seconds = slow_call_seconds
        self.window_spec = window
        self.minimum_calls = minimum_calls
        self.open_for = open_for
        self.half_open_probes = half_open_probes
        self._is_failure = _failure_predicate(failure_on)
        self._clock = clock
        self.hooks = tuple(hooks)
        self._state = CLOSED
        self._generation = 0  # bumped on every transition; stale outcomes are dropped
        self._window = _Window(window)
        self._open_until = 0.0
        self._probes_started = 0
        self._shared = shared
        if shared is not None:
            shared.register(self)

    def __repr__(self) -> str:
        failure, slow = self._window.rates()
        return (
            f"<CircuitBreaker {self.name!r} {self.state} calls={len(self._window)}"
            f" failure_rate={failure:.2f} slow_rate={slow:.2f}>"
        )

    @property
    def state(self) -> str:
        """closed, open or half_open (an expired open period reads as half_open)."""
        if self._state == OPEN and self._clock() >= self._open_until:
            self._transition(HALF_OPEN)
        return self._state

    @property
    def is_open(self) -> bool:
        """True while calls would be refused outright (not while half-open)."""
        return self.state == OPEN

    def acquire(self) -> int:
        """Admit one call or raise ``CircuitOpen``; returns a ticket for ``record``."""
        state = self.state
        if state == CLOSED:
            return self._generation
        if state == HALF_OPEN and self._probes_started < self.half_open_probes:
            self._probes_started += 1
            return self._generation
        emit(self.hooks, CallRejected("circuit_breaker", self.name, state))
        retry_after = self._open_until - self._clock() if state == OPEN else 1.0
        raise CircuitOpen(self.name, state=state, retry_after=retry_after)

    def record(self, ticket: int, seconds: float, error: BaseException | None) -> None:
        """Count the outcome of an admitted call (``error`` None for success)."""
        failed = error is not None and self._is_failure(error)
        slow = seconds >= self.slow_call_seconds
        if self.hooks:
            outcome = ("slow_" if slow else "") + ("failure" if failed else "success")
            emit(self.hooks, CallFinished(self.name, outcome, seconds))
        if ticket != self._generation:
            return
        self._window.add(self._clock(), failed, slow)
        if self._state == CLOSED:
            if len(self._window) >= self.minimum_calls and self._over_threshold():
                self._transition(OPEN)
        elif self._state == HALF_OPEN and len(self._window) >= self.half_open_probes:
            self._transition(OPEN if self._over_threshold() else CLOSED)

    def release(self, ticket: int) -> None:
        """Give back an admitted call's slot without an outcome (it was cancelled)."""
        if ticket == self._generation and self._state == HALF_OPEN:
            self._probes_started -= 1

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        ticket = self.acquire()
        start = self._clock()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self.record(ticket, self._clock() - start, exc)
            raise
        except BaseException:
            self.release(ticket)
            raise
        self.record(ticket, self._clock() - start, None)
        return result

    def reset(self) -> None:
        """Close the breaker and forget the window (an operator's override)."""
        self._transition(CLOSED)

    def _over_threshold(self) -> bool:
        failure, slow = self._window.rates()
        return failure >= self.failure_rate or slow >= self.slow_rate

    def _apply_shared(self, open_for: float | None) -> None:
        """Another instance opened this breaker for ``open_for`` more seconds, or closed it."""
        if open_for is None:
            if self._state != CLOSED:
                self._transition(CLOSED, announce=False)
        elif self._state == OPEN:
            self._open_until = max(self._open_until, self._clock() + open_for)
        else:
            self._transition(OPEN, announce=False)
            self._open_until = self._clock() + open_for

    def _transition(self, new: str, *, announce: bool = True) -> None:
        failure, slow = self._window.rates()
        previous, now = self._state, self._clock()
        self._state = new
        self._generation += 1
        # Half-open judges its probes alone, however long they take.
        spec = CountWindow(self.half_open_probes) if new == HALF_OPEN else self.window_spec
        self._window = _Window(spec)
        self._probes_started = 0
        if new == OPEN:
            self._open_until = now + self.open_for
        if previous != new:
            if announce and self._shared is not None and new != HALF_OPEN:
                self._shared.announce(self, self.open_for if new == OPEN else None)
            emit(self.hooks, StateChanged(self.name, previous, new, now, failure, slow))


def _failure_predicate(failure_on: FailurePredicate) -> Callable[[BaseException], bool]:
    if isinstance(failure_on, type | tuple):
        types = failure_on
        return lambda exc: isinstance(exc, types)
    return failure_on
