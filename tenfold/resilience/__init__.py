"""Resilience policies for calls to other services.

- ``CircuitBreaker`` (with ``CountWindow`` / ``TimeWindow``): failure-rate and
  slow-call-rate breaker with half-open probes and an injected clock.
- ``Retry``: exponential backoff with full jitter, deadline, Retry-After;
  ``set_retries_active`` turns it off process-wide for tests.
- ``Timeout`` and ``Bulkhead``: bounds on duration and concurrency.
- ``Policy``: all of them in one declared order; ``FallbackChain`` of
  ``Provider``s skips those whose breaker is open.
- Events (``StateChanged``, ``CallFinished``, ``CallRejected``,
  ``RetryScheduled``) go to ``Hook``s: ``log_event`` and ``ResilienceStats``
  (a Prometheus collector).

See docs/resilience.md.
"""

from tenfold.resilience._breaker import CircuitBreaker, CountWindow, TimeWindow
from tenfold.resilience._errors import (
    BulkheadFull,
    CircuitOpen,
    DeadlineExceeded,
    NoProviderAvailable,
    RetriesExhausted,
)
from tenfold.resilience._events import (
    CallFinished,
    CallRejected,
    Event,
    Hook,
    ResilienceStats,
    RetryScheduled,
    StateChanged,
    log_event,
)
from tenfold.resilience._fallback import FallbackChain, Provider
from tenfold.resilience._limits import Bulkhead, Timeout
from tenfold.resilience._policy import Policy
from tenfold.resilience._retry import Retry, retries_active, set_retries_active

__all__ = [
    "Bulkhead",
    "BulkheadFull",
    "CallFinished",
    "CallRejected",
    "CircuitBreaker",
    "CircuitOpen",
    "CountWindow",
    "DeadlineExceeded",
    "Event",
    "FallbackChain",
    "Hook",
    "NoProviderAvailable",
    "Policy",
    "Provider",
    "ResilienceStats",
    "RetriesExhausted",
    "Retry",
    "RetryScheduled",
    "StateChanged",
    "TimeWindow",
    "Timeout",
    "log_event",
    "retries_active",
    "set_retries_active",
]
