"""Events reach the log and the application's Prometheus metrics."""

from __future__ import annotations

from structlog.testing import capture_logs

from tenfold.observability import Metrics
from tenfold.resilience import (
    CallRejected,
    ResilienceStats,
    RetryScheduled,
    StateChanged,
    log_event,
)


def test_state_change_is_logged_as_a_warning_when_opening() -> None:
    """Opening a breaker logs circuit_state_changed at warning with its rates."""
    with capture_logs() as logs:
        log_event(StateChanged("llm", "closed", "open", 1.0, 0.6, 0.0))
    assert logs == [
        {
            "event": "circuit_state_changed",
            "log_level": "warning",
            "breaker": "llm",
            "previous": "closed",
            "current": "open",
            "at": 1.0,
            "failure_rate": 0.6,
            "slow_rate": 0.0,
        }
    ]


def test_stats_render_through_metrics() -> None:
    """ResilienceStats registered with Metrics shows up in the exposition."""
    metrics = Metrics(namespace="t")
    stats = ResilienceStats("t")
    metrics.register_collector(stats)
    stats(StateChanged("llm", "closed", "open", 1.0, 0.6, 0.0))
    stats(RetryScheduled("llm", 1, 0.5, "ConnectionError"))
    stats(CallRejected("bulkhead", "llm", "full"))
    body, _ = metrics.render()
    text = body.decode()
    assert 't_circuit_breaker_state{breaker="llm",state="open"} 1.0' in text
    assert 't_retries_total{name="llm"} 1.0' in text
    assert 't_resilience_rejections_total{name="llm",policy="bulkhead",reason="full"} 1.0' in text
