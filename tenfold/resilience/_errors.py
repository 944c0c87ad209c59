"""Errors raised by the resilience policies.

DependencyUnavailable (tenfold._errors)               -> 503
├── CircuitOpen          the breaker refuses calls (``retry_after`` = time to half-open)
├── BulkheadFull         no slot and no room in the wait queue
├── DeadlineExceeded     a time limit expired (the ``TimeoutError`` is ``__cause__``)
├── RetriesExhausted     attempts or the retry deadline ran out (last error is ``__cause__``)
└── NoProviderAvailable  every provider of a fallback chain failed or was skipped
"""

from __future__ import annotations

from typing import Any

from tenfold._errors import DependencyUnavailable

__all__ = [
    "BulkheadFull",
    "CircuitOpen",
    "DeadlineExceeded",
    "NoProviderAvailable",
    "RetriesExhausted",
]


class CircuitOpen(DependencyUnavailable):
    """The circuit breaker ``name`` is open (or its half-open probes are taken)."""

    slug = "circuit-open"

    def __init__(self, name: str, *, state: str, retry_after: float) -> None:
        super().__init__(
            f"circuit {name!r} is {state}", dependency=name, retry_after=max(0.0, retry_after)
        )
        self.name = name
        self.state = state


class BulkheadFull(DependencyUnavailable):
    """The bulkhead ``name`` has no free slot and its wait queue is full."""

    slug = "bulkhead-full"

    def __init__(self, name: str, *, max_concurrent: int, max_waiting: int) -> None:
        super().__init__(f"bulkhead {name!r} is full", dependency=name, retry_after=1.0)
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_waiting = max_waiting


class DeadlineExceeded(DependencyUnavailable):
    """A call to ``name`` did not finish within ``seconds``."""

    slug = "deadline-exceeded"

    def __init__(self, name: str, *, seconds: float) -> None:
        super().__init__(f"{name!r} took longer than {seconds:g}s", dependency=name)
        self.name = name
        self.seconds = seconds


class RetriesExhausted(DependencyUnavailable):
    """Retrying ``name`` gave up after ``attempts`` (``reason``: attempts or deadline).

    The last exception is ``__cause__``; when a result predicate asked for the
    retries, the last result is ``last_result``.
    """

    slug = "retries-exhausted"

    def __init__(self, name: str, *, attempts: int, reason: str, last_result: Any = None) -> None:
        super().__init__(f"{name!r} failed after {attempts} attempt(s) ({reason})", dependency=name)
        self.name = name
        self.attempts = attempts
        self.reason = reason
        self.last_result = last_result


class NoProviderAvailable(DependencyUnavailable):
    """Every provider in the fallback chain ``name`` failed or had an open breaker.

    ``errors`` maps each provider's name to the error that made the chain move on.
    """

    slug = "no-provider-available"

    def __init__(self, name: str, *, errors: dict[str, BaseException]) -> None:
        super().__init__(f"no provider of {name!r} is available", dependency=name)
        self.name = name
        self.errors = errors
