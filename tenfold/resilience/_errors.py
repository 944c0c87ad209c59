"""Errors raised by the resilience policies and outbound clients, and how a client sees them.

DependencyUnavailable (tenfold._errors)
├── CircuitOpen             the breaker refuses calls (``retry_after`` = time to half-open)
├── BulkheadFull            no slot and no room in the wait queue
├── DeadlineExceeded        a time limit expired (the ``TimeoutError`` is ``__cause__``)
├── RetriesExhausted        attempts or the retry deadline ran out (last error is ``__cause__``)
├── NoProviderAvailable     every provider of a fallback chain failed or was skipped
├── QuotaExhausted          the provider's quota would reject the call; it was not sent
│   └── SharedQuotaUnavailable  the shared quota's Redis failed and ``fail_open`` is off
├── UpstreamUnreachable     connecting or sending failed (the httpx error is ``__cause__``)
├── UpstreamTimeout         httpx timed out (the httpx error is ``__cause__``)
└── UpstreamError           the provider answered 429 or 5xx (``response``, ``retry_after``)

``PROBLEMS`` answers each with a 503 problem (``Retry-After`` from
``retry_after``, 1 s by default), except that the ``Upstream*`` errors send
``Retry-After`` only when the provider gave one. An ``UpstreamError`` is a 503
whatever the provider answered: its 429 limits us, not our client, and its
500 is a failing dependency, not our client's fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tenfold._errors import DependencyUnavailable, TenfoldError
from tenfold.web import Problem, ProblemEntry, retry_after_header

if TYPE_CHECKING:
    import httpx

__all__ = [
    "PROBLEMS",
    "BulkheadFull",
    "CircuitOpen",
    "DeadlineExceeded",
    "NoProviderAvailable",
    "QuotaExhausted",
    "RetriesExhausted",
    "SharedQuotaUnavailable",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
]


class CircuitOpen(DependencyUnavailable):
    """The circuit breaker ``name`` is open (or its half-open probes are taken)."""

    def __init__(self, name: str, *, state: str, retry_after: float) -> None:
        super().__init__(
            f"circuit {name!r} is {state}", dependency=name, retry_after=max(0.0, retry_after)
        )
        self.name = name
        self.state = state


class BulkheadFull(DependencyUnavailable):
    """The bulkhead ``name`` has no free slot and its wait queue is full."""

    def __init__(self, name: str, *, max_concurrent: int, max_waiting: int) -> None:
        super().__init__(f"bulkhead {name!r} is full", dependency=name)
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_waiting = max_waiting


class DeadlineExceeded(DependencyUnavailable):
    """A call to ``name`` did not finish within ``seconds``."""

    def __init__(self, name: str, *, seconds: float) -> None:
        super().__init__(f"{name!r} took longer than {seconds:g}s", dependency=name)
        self.name = name
        self.seconds = seconds


class RetriesExhausted(DependencyUnavailable):
    """Retrying ``name`` gave up after ``attempts`` (``reason``: attempts or deadline).

    The last exception is ``__cause__``; when a result predicate asked for the
    retries, the last result is ``last_result``.
    """

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

    def __init__(self, name: str, *, errors: dict[str, BaseException]) -> None:
        super().__init__(f"no provider of {name!r} is available", dependency=name)
        self.name = name
        self.errors = errors


class QuotaExhausted(DependencyUnavailable):
    """The upstream ``provider`` would reject the request; it was not sent."""

    def __init__(self, provider: str, *, window: str, retry_after: float) -> None:
        super().__init__(
            f"{provider!r} quota {window!r} is used up",
            dependency=provider,
            retry_after=max(0.0, retry_after),
        )
        self.provider = provider
        self.window = window


class SharedQuotaUnavailable(QuotaExhausted):
    """The shared quota's Redis failed and ``fail_open`` is off; the call was not sent."""

    def __init__(self, provider: str, *, retry_after: float) -> None:
        super().__init__(provider, window="shared", retry_after=retry_after)
        self.message = f"{provider!r} quota cannot be checked: its Redis is unavailable"
        self.args = (self.message,)


class UpstreamUnreachable(DependencyUnavailable):
    """Connecting to or talking with the provider failed before a response."""

    def __init__(self, provider: str, *, request: httpx.Request) -> None:
        super().__init__(f"{provider!r} is unreachable", dependency=provider, retry_after=None)
        self.provider = provider
        self.request = request


class UpstreamTimeout(DependencyUnavailable):
    """The provider did not answer within the client's httpx timeout."""

    def __init__(self, provider: str, *, request: httpx.Request) -> None:
        super().__init__(f"{provider!r} timed out", dependency=provider, retry_after=None)
        self.provider = provider
        self.request = request


class UpstreamError(DependencyUnavailable):
    """The provider answered 429 or 5xx (``status_code``); ``retry_after`` is its
    ``Retry-After`` in seconds, if it sent one."""

    def __init__(
        self, provider: str, *, response: httpx.Response, retry_after: float | None
    ) -> None:
        super().__init__(
            f"{provider!r} answered {response.status_code}",
            dependency=provider,
            retry_after=retry_after,
        )
        self.provider = provider
        self.response = response
        self.status_code = response.status_code


_T = "https://tenfold.dev/problems/"


def _unavailable(slug: str, *, default_retry_after: float | None = 1.0) -> Problem[Any]:
    return Problem(
        503,
        "Service Unavailable",
        type=_T + slug,
        expose_detail=True,
        headers=retry_after_header(default_retry_after),
    )


_UPSTREAM_ERROR = _unavailable("upstream-error", default_retry_after=None)


#: The resilience errors as problem+json (``tenfold.web.ProblemRegistry`` table).
PROBLEMS: Mapping[type[TenfoldError], ProblemEntry] = {
    CircuitOpen: _unavailable("circuit-open"),
    BulkheadFull: _unavailable("bulkhead-full"),
    DeadlineExceeded: _unavailable("deadline-exceeded"),
    RetriesExhausted: _unavailable("retries-exhausted"),
    NoProviderAvailable: _unavailable("no-provider-available"),
    QuotaExhausted: _unavailable("upstream-quota-exhausted"),
    SharedQuotaUnavailable: _unavailable("upstream-quota-unavailable"),
    # Nobody knows when an unreachable or failing provider is back, unless it said so.
    UpstreamUnreachable: _unavailable("upstream-unreachable", default_retry_after=None),
    UpstreamTimeout: _unavailable("upstream-timeout", default_retry_after=None),
    # A failing provider is our dependency failing: 503 whatever it answered (its 429 is
    # not a limit on our client, its 500 not our bug), with its Retry-After if it gave one.
    UpstreamError: _unavailable("upstream-error", default_retry_after=None),
}
