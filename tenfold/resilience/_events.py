"""Events the policies emit, the hook Protocol, a logging hook and the metrics.

Hooks receive frozen, slotted dataclasses. ``log_event`` writes state changes,
retries and rejections as structured log lines; ``ResilienceStats`` is both a
hook and a Prometheus collector (register it with
``Metrics.register_collector``). Counting is a dict lookup and an addition,
as in ``tenfold.observability._stats``: cheap enough to run on every call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tenfold.observability import get_logger

__all__ = [
    "CallFinished",
    "CallRejected",
    "Event",
    "Hook",
    "ResilienceStats",
    "RetryScheduled",
    "StateChanged",
    "emit",
    "log_event",
]

#: The breaker's states, in the order the state gauge lists them.
STATES = ("closed", "open", "half_open")


@dataclass(frozen=True, slots=True)
class StateChanged:
    """Circuit breaker ``breaker`` went from ``previous`` to ``current``."""

    breaker: str
    previous: str
    current: str
    at: float
    failure_rate: float
    slow_rate: float


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A call through breaker ``breaker`` ended with ``outcome``.

    ``outcome`` is success, failure, slow_success or slow_failure; an exception
    that ``failure_on`` does not select counts as a success.
    """

    breaker: str
    outcome: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CallRejected:
    """Policy ``policy`` (a breaker or bulkhead called ``name``) refused a call."""

    policy: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """Retry ``name`` will make attempt ``attempt + 1`` after ``wait`` seconds."""

    name: str
    attempt: int
    wait: float
    error: str


Event = StateChanged | CallFinished | CallRejected | RetryScheduled


class Hook(Protocol):
    """Receives every event of the policies it is given to."""

    def __call__(self, event: Event) -> None: ...


def emit(hooks: Sequence[Hook], event: Event) -> None:
    for hook in hooks:
        hook(event)


_log = get_logger("tenfold.resilience")


def log_event(event: Event) -> None:
    """Log state changes (warning when opening), retries and rejections; not each call."""
    if isinstance(event, StateChanged):
        level = _log.warning if event.current == "open" else _log.info
        level("circuit_state_changed", **asdict(event))
    elif isinstance(event, RetryScheduled):
        _log.info("retry_scheduled", **asdict(event))
    elif isinstance(event, CallRejected):
        _log.debug("call_rejected", **asdict(event))


class ResilienceStats(Collector):
    """Breaker state gauge, calls by outcome, retries and rejections, as a hook.

    Exposed: ``<ns>_circuit_breaker_state`` (breaker, state: 1 for the current
    one), ``<ns>_circuit_breaker_calls_total`` (breaker, outcome),
    ``<ns>_retries_total`` (name) and ``<ns>_resilience_rejections_total``
    (policy, name, reason).
    """

    def __init__(self, namespace: str = "tenfold") -> None:
        self._prefix = f"{namespace}_" if namespace else ""
        self.states: dict[str, str] = {}
        self.calls: dict[tuple[str, str], int] = {}
        self.retries: dict[str, int] = {}
        self.rejections: dict[tuple[str, str, str], int] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, CallFinished):
            key = (event.breaker, event.outcome)
            self.calls[key] = self.calls.get(key, 0) + 1
        elif isinstance(event, StateChanged):
            self.states[event.breaker] = event.current
        elif isinstance(event, RetryScheduled):
            self.retries[event.name] = self.retries.get(event.name, 0) + 1
        else:
            rkey = (event.policy, event.name, event.reason)
            self.rejections[rkey] = self.rejections.get(rkey, 0) + 1

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            self._prefix + "circuit_breaker_state",
            "1 for the breaker's current state, 0 for the others.",
            labels=("breaker", "state"),
        )
        for breaker, current in list(self.states.items()):
            for name in STATES:
                state.add_metric((breaker, name), 1.0 if name == current else 0.0)
        yield state
        yield _counter(
            self._prefix + "circuit_breaker_calls",
            "Calls by outcome.",
            ("breaker", "outcome"),
            self.calls,
        )
        yield _counter(
            self._prefix + "retries",
            "Retries scheduled.",
            ("name",),
            {(k,): v for k, v in list(self.retries.items())},
        )
        yield _counter(
            self._prefix + "resilience_rejections",
            "Calls refused by a policy.",
            ("policy", "name", "reason"),
            self.rejections,
        )


def _counter(
    name: str, doc: str, labels: tuple[str, ...], values: dict[tuple[str, ...], int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in list(values.items()):
        family.add_metric(key, value)
    return family
