"""Pool and replica metrics: one prometheus ``Collector`` read at scrape time.

Gauges are computed from the pools when Prometheus scrapes, so nothing is
updated on the hot path except the acquire-time histogram (a few integer
increments per checkout) and, when a ``Metrics`` object was given, the
per-statement duration it owns (``observe_query``).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from tenfold.db._engine import Endpoint

__all__ = ["AcquireHistogram", "MetricsSink", "PoolCollector", "PoolStats", "instrument_queries"]

ACQUIRE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class MetricsSink(Protocol):
    """What the database needs from ``tenfold.observability.Metrics``."""

    def observe_query(self, role: str, seconds: float) -> None: ...

    def register_collector(self, collector: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of one pool, for gauges and ``Database.pool_stats()``."""

    size: int
    in_use: int
    idle: int
    overflow: int
    waiters: int


class AcquireHistogram:
    """Cumulative-bucket histogram of connection checkout time (event-loop thread only)."""

    __slots__ = ("counts", "sum", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(ACQUIRE_BUCKETS) + 1)
        self.sum = 0.0
        self.total = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(ACQUIRE_BUCKETS, seconds)] += 1
        self.sum += seconds
        self.total += 1

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip(ACQUIRE_BUCKETS, self.counts, strict=False):
            running += count
            out.append((repr(bound), running))
        out.append(("+Inf", self.total))
        return out


class PoolCollector:
    """Exposes every endpoint's pool gauges, acquire histogram and replica state."""

    def __init__(self, endpoints: Callable[[], Iterable[Endpoint]], *, namespace: str) -> None:
        self._endpoints = endpoints
        self._ns = namespace

    def _families(self) -> dict[str, Any]:
        ns, labels = self._ns, ["pool"]
        gauge = GaugeMetricFamily
        return {
            "size": gauge(f"{ns}_db_pool_size", "Connections the pool keeps open.", labels=labels),
            "in_use": gauge(f"{ns}_db_pool_in_use", "Connections checked out.", labels=labels),
            "idle": gauge(f"{ns}_db_pool_idle", "Connections idle in the pool.", labels=labels),
            "overflow": gauge(
                f"{ns}_db_pool_overflow", "Connections open beyond pool_size.", labels=labels
            ),
            "waiters": gauge(
                f"{ns}_db_pool_waiters", "Tasks waiting for a connection.", labels=labels
            ),
            "acquire": HistogramMetricFamily(
                f"{ns}_db_pool_acquire_seconds", "Time to check out a connection.", labels=labels
            ),
            "healthy": gauge(
                f"{ns}_db_replica_healthy", "1 if the replica is admitted for reads.", labels=labels
            ),
            "lag_bytes": gauge(
                f"{ns}_db_replica_lag_bytes", "WAL bytes the replica is behind.", labels=labels
            ),
            "lag_seconds": gauge(
                f"{ns}_db_replica_lag_seconds", "Replay delay while behind.", labels=labels
            ),
        }

    def describe(self) -> Iterator[Metric]:
        yield from self._families().values()

    def collect(self) -> Iterator[Metric]:
        fam = self._families()
        for ep in self._endpoints():
            stats, name = ep.pool_stats(), [ep.name]
            for key in ("size", "in_use", "idle", "overflow", "waiters"):
                fam[key].add_metric(name, getattr(stats, key))
            hist = ep.acquire_histogram
            fam["acquire"].add_metric(name, hist.buckets(), hist.sum)
            if ep.role == "replica":
                state = ep.state
                fam["healthy"].add_metric(name, 1.0 if state.healthy else 0.0)
                fam["lag_bytes"].add_metric(name, state.lag_bytes or 0)
                fam["lag_seconds"].add_metric(name, state.lag_seconds or 0.0)
        yield from fam.values()


def instrument_queries(engine: AsyncEngine, role: str, metrics: MetricsSink) -> None:
    """Report each statement's duration to ``metrics.observe_query(role, seconds)``."""
    sync_engine = engine.sync_engine

    # The start time rides on the execution context, which dies with the statement,
    # so a statement that fails leaves nothing behind.
    @event.listens_for(sync_engine, "before_cursor_execute")
    def _start(conn: Any, cursor: Any, stmt: str, params: Any, context: Any, many: bool) -> None:
        if context is not None:
            context._tenfold_t0 = perf_counter()

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _stop(conn: Any, cursor: Any, stmt: str, params: Any, context: Any, many: bool) -> None:
        started = getattr(context, "_tenfold_t0", None)
        if started is not None:
            metrics.observe_query(role, perf_counter() - started)
