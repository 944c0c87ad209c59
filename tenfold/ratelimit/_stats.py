"""``RateLimitStats``: decisions by policy and outcome, as a cheap Prometheus collector.

Recording is one dict increment on the event loop's thread (no lock, unlike a
prometheus_client ``Counter``); a scrape copies the dict and builds the family.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["OUTCOMES", "RateLimitStats"]

#: ``allowed``: every rule admitted; ``limited``: refused (429); ``unavailable``:
#: the backend failed (the request was then served or refused as the policy says).
OUTCOMES = ("allowed", "limited", "unavailable")


class RateLimitStats(Collector):
    """``<ns>_ratelimit_decisions_total`` by ``policy`` and ``outcome``.

    Register it with ``Metrics.register_collector`` and pass it to
    ``RateLimitMiddleware(stats=...)``.
    """

    def __init__(self, namespace: str = "tenfold") -> None:
        self._name = f"{namespace}_ratelimit_decisions" if namespace else "ratelimit_decisions"
        #: Decisions so far, by ``(policy, outcome)``.
        self.counts: Counter[tuple[str, str]] = Counter()

    def __repr__(self) -> str:
        return f"<RateLimitStats {sum(self.counts.values())} decisions>"

    def record(self, policy: str, outcome: str) -> None:
        self.counts[policy, outcome] += 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            self._name,
            "Rate-limit decisions by policy and outcome (allowed, limited, unavailable).",
            labels=("policy", "outcome"),
        )
        for (policy, outcome), count in list(self.counts.items()):
            family.add_metric((policy, outcome), count)
        yield family
