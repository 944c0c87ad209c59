"""Cache figures kept as plain counters, turned into Prometheus families at scrape time.

A cache hit must stay well under a microsecond, so the hot path only does
``stats.l1_hits += 1`` on a slotted object found once per namespace; the lock
prometheus_client takes per increment would cost more than the hit itself.
Same pattern as ``tenfold.observability._stats``: written from the event
loop's thread, copied under the GIL by a scrape.

Exposed (``<ns>_cache_`` prefix):

    requests_total{namespace,level,result}   level l1|l2, result hit|miss|stale
    hit_ratio{namespace}                     hits (any level, stale included) / lookups
    loader_duration_seconds{namespace}       histogram of loader calls
    loader_errors_total{namespace}
    stampede_merges_total{namespace,scope}   scope process (shared task) | cluster (waited
                                             on another process's lock)
    early_refreshes_total{namespace}         XFetch and stale-while-revalidate refreshes
    rejected_fills_total{namespace}          fills dropped because an invalidation raced them
    evictions_total                          L1 entries dropped to respect its bounds
    redis_errors_total                       Redis calls failed, timed out or refused (breaker)
    invalidations_received_total             messages applied from other instances
    invalidation_lag_seconds                 publish -> L1 drop, histogram (wall clocks)
    l1_entries, l1_bytes, breaker_open, invalidation_connected   gauges
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import accumulate

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["CacheStats", "NamespaceStats"]

LOADER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _Histogram:
    __slots__ = ("bounds", "buckets", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def samples(self) -> tuple[list[tuple[str, int]], float]:
        labels = [*(floatToGoString(b) for b in self.bounds), "+Inf"]
        return list(zip(labels, accumulate(list(self.buckets)), strict=True)), self.total


class NamespaceStats:
    """Counters of one namespace; attributes are bumped directly on the hot path."""

    __slots__ = (
        "early_refreshes",
        "l1_hits",
        "l1_misses",
        "l2_hits",
        "l2_misses",
        "load_errors",
        "loader",
        "lock_waits",
        "merges",
        "misses",
        "rejected_fills",
        "stale",
    )

    def __init__(self) -> None:
        self.l1_hits = self.l1_misses = self.l2_hits = self.l2_misses = self.stale = 0
        self.merges = self.lock_waits = self.early_refreshes = self.rejected_fills = 0
        self.load_errors = self.misses = 0
        self.loader = _Histogram(LOADER_BUCKETS)

    @property
    def hits(self) -> int:
        return self.l1_hits + self.l2_hits + self.stale

    @property
    def lookups(self) -> int:
        """Every answer given: a hit at some level, or a miss no level could answer."""
        return self.hits + self.misses

    @property
    def loader_calls(self) -> int:
        return sum(self.loader.buckets)


class CacheStats(Collector):
    """All of one ``Cache``'s figures; ``gauges`` is read at scrape time."""

    def __init__(
        self, namespace: str = "tenfold", gauges: Callable[[], dict[str, float]] | None = None
    ) -> None:
        self._prefix = f"{namespace}_cache_" if namespace else "cache_"
        self._gauges = gauges
        self.namespaces: dict[str, NamespaceStats] = {}
        self.redis_errors = 0
        self.invalidations_received = 0
        self.invalidation_lag = _Histogram(LAG_BUCKETS)

    def namespace(self, name: str) -> NamespaceStats:
        stats = self.namespaces.get(name)
        if stats is None:
            stats = self.namespaces[name] = NamespaceStats()
        return stats

    def collect(self) -> Iterator[Metric]:
        p = self._prefix
        requests = CounterMetricFamily(
            p + "requests",
            "Cache lookups by namespace, level and result.",
            labels=("namespace", "level", "result"),
        )
        ratio = GaugeMetricFamily(
            p + "hit_ratio", "Hits (any level) / lookups, since start.", labels=("namespace",)
        )
        loader = HistogramMetricFamily(
            p + "loader_duration_seconds", "Loader calls on a miss.", labels=("namespace",)
        )
        per_ns = {
            "loader_errors": ("Loader calls that raised.", ("namespace",)),
            "stampede_merges": ("Callers that shared another's fill.", ("namespace", "scope")),
            "early_refreshes": ("Background refreshes (XFetch, stale).", ("namespace",)),
            "rejected_fills": ("Fills dropped: an invalidation raced them.", ("namespace",)),
        }
        families = {
            name: CounterMetricFamily(p + name, doc, labels=labels)
            for name, (doc, labels) in per_ns.items()
        }
        for ns, s in list(self.namespaces.items()):
            for level, result, value in (
                ("l1", "hit", s.l1_hits),
                ("l1", "miss", s.l1_misses),
                ("l2", "hit", s.l2_hits),
                ("l2", "miss", s.l2_misses),
                ("l2", "stale", s.stale),
            ):
                requests.add_metric((ns, level, result), value)
            lookups = s.lookups
            ratio.add_metric((ns,), s.hits / lookups if lookups else 0.0)
            buckets, total = s.loader.samples()
            loader.add_metric((ns,), buckets, total)
            families["loader_errors"].add_metric((ns,), s.load_errors)
            families["stampede_merges"].add_metric((ns, "process"), s.merges)
            families["stampede_merges"].add_metric((ns, "cluster"), s.lock_waits)
            families["early_refreshes"].add_metric((ns,), s.early_refreshes)
            families["rejected_fills"].add_metric((ns,), s.rejected_fills)
        yield from (requests, ratio, loader, *families.values())
        yield from self._process_wide()

    def _process_wide(self) -> Iterator[Metric]:
        p = self._prefix
        yield CounterMetricFamily(
            p + "redis_errors", "Redis calls that failed or were refused.", value=self.redis_errors
        )
        yield CounterMetricFamily(
            p + "invalidations_received",
            "Invalidation messages applied from other instances.",
            value=self.invalidations_received,
        )
        lag = HistogramMetricFamily(
            p + "invalidation_lag_seconds", "Publish to L1 drop in this instance (wall clocks)."
        )
        buckets, total = self.invalidation_lag.samples()
        lag.add_metric((), buckets, total)
        yield lag
        gauges = self._gauges() if self._gauges is not None else {}
        if "evictions" in gauges:
            yield CounterMetricFamily(
                p + "evictions", "L1 entries evicted by its bounds.", value=gauges.pop("evictions")
            )
        for name, value in gauges.items():
            yield GaugeMetricFamily(p + name, name.replace("_", " ") + ".", value=value)
