"""Resilience policies for calls to other services.

- ``CircuitBreaker`` (with ``CountWindow`` / ``TimeWindow``): failure-rate and
  slow-call-rate breaker with half-open probes and an injected clock;
  ``RedisBreakerState`` shares its opens and closes across instances.
- ``Retry``: exponential backoff with full jitter, deadline, Retry-After;
  retries what ``transient`` selects unless told otherwise;
  ``set_retries_active`` turns it off process-wide for tests.
- ``Timeout`` and ``Bulkhead``: bounds on duration and concurrency.
- ``Policy``: all of them in one declared order; ``FallbackChain`` of
  ``Provider``s skips those whose breaker is open.
- Events (``StateChanged``, ``CallFinished``, ``CallRejected``,
  ``RetryScheduled``) go to ``Hook``s: ``log_event`` and ``ResilienceStats``
  (a Prometheus collector).
- ``ExternalClient``: an httpx client per provider behind a ``Policy`` and an
  ``UpstreamQuota`` (refuses with ``QuotaExhausted`` before the provider
  would; ``RedisUpstreamQuota`` shares it across instances); errors
  ``UpstreamError``, ``UpstreamTimeout``,
  ``UpstreamUnreachable``; ``upstream_failure`` for the breaker;
  ``ClientStats`` (a Prometheus collector).
- ``UpstreamRegistry``: an app's ``ExternalClient`` s with policies from
  ``TENFOLD_UPSTREAM__*`` (``platform.upstream(name, base_url=...)``), closed
  at shutdown; ``UpstreamOverrides`` names what one call may override.
- ``PROBLEMS``: how each of these errors is answered (503 problems with
  ``Retry-After``), for a ``tenfold.web.ProblemRegistry``.

See docs/resilience.md.
"""

from tenfold.resilience._breaker import CircuitBreaker, CountWindow, TimeWindow
from tenfold.resilience._client import ClientStats, ExternalClient, upstream_failure
from tenfold.resilience._errors import (
    PROBLEMS,
    BulkheadFull,
    CircuitOpen,
    DeadlineExceeded,
    NoProviderAvailable,
    QuotaExhausted,
    RetriesExhausted,
    SharedQuotaUnavailable,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
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
from tenfold.resilience._extension import UpstreamExtension
from tenfold.resilience._fallback import FallbackChain, Provider
from tenfold.resilience._limits import Bulkhead, Timeout
from tenfold.resilience._policy import Policy
from tenfold.resilience._quota import QuotaTracker, UpstreamQuota
from tenfold.resilience._quota_shared import RedisUpstreamQuota
from tenfold.resilience._registry import UpstreamOverrides, UpstreamRegistry
from tenfold.resilience._retry import Retry, retries_active, set_retries_active, transient
from tenfold.resilience._settings import UpstreamPolicy, UpstreamSettings
from tenfold.resilience._shared import RedisBreakerState

__all__ = [
    "PROBLEMS",
    "Bulkhead",
    "BulkheadFull",
    "CallFinished",
    "CallRejected",
    "CircuitBreaker",
    "CircuitOpen",
    "ClientStats",
    "CountWindow",
    "DeadlineExceeded",
    "Event",
    "ExternalClient",
    "FallbackChain",
    "Hook",
    "NoProviderAvailable",
    "Policy",
    "Provider",
    "QuotaExhausted",
    "QuotaTracker",
    "RedisBreakerState",
    "RedisUpstreamQuota",
    "ResilienceStats",
    "RetriesExhausted",
    "Retry",
    "RetryScheduled",
    "SharedQuotaUnavailable",
    "StateChanged",
    "TimeWindow",
    "Timeout",
    "UpstreamError",
    "UpstreamExtension",
    "UpstreamOverrides",
    "UpstreamPolicy",
    "UpstreamQuota",
    "UpstreamRegistry",
    "UpstreamSettings",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "log_event",
    "retries_active",
    "set_retries_active",
    "transient",
    "upstream_failure",
]
