"""Per-request RED figures kept as plain numbers, exposed as Prometheus families.

prometheus_client takes a lock for every increment, and a histogram
observation walks its buckets and takes more: a few microseconds per request
in all. Here an observation is a dict lookup, a ``bisect`` and three
additions. The figures are only written from the event loop's thread; a
scrape (in a worker thread) copies them under the GIL, and derives each
count from its buckets, so a histogram is consistent even if a request
finished mid-scrape.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["HTTP_BUCKETS", "RequestStats"]

#: Latency buckets for web requests (seconds): 1 ms .. 10 s.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LE = (*(floatToGoString(b) for b in HTTP_BUCKETS), "+Inf")


class _Series:
    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(_LE)  # not cumulative; the last is > largest bound
        self.total = 0.0


class RequestStats(Collector):
    """Requests by (route, method, status), durations, and the in-flight count.

    In flight is ``started`` minus the requests observed so far: ending a
    request is its observation, one call fewer per request.
    """

    def __init__(self, namespace: str) -> None:
        self._prefix = f"{namespace}_" if namespace else ""
        self._series: dict[tuple[str, str, int], _Series] = {}
        self.started = 0

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        series.buckets[bisect_left(HTTP_BUCKETS, seconds)] += 1
        series.total += seconds

    def start(self) -> None:
        self.started += 1

    def collect(self) -> Iterator[Metric]:
        started = self.started  # read first: in flight can only be over-counted by a race
        snapshot = [(key, list(s.buckets), s.total) for key, s in list(self._series.items())]
        requests = CounterMetricFamily(
            self._prefix + "http_requests",
            "HTTP requests answered, by route template, method and status.",
            labels=("route", "method", "status"),
        )
        merged: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        finished = 0
        for (route, method, status), buckets, total in snapshot:
            count = sum(buckets)
            finished += count
            requests.add_metric((route, method, str(status)), count)
            counts, totals = merged.setdefault((route, method), ([0] * len(_LE), [0.0]))
            for i, count in enumerate(buckets):
                counts[i] += count
            totals[0] += total
        duration = HistogramMetricFamily(
            self._prefix + "http_request_duration_seconds",
            "Time from request start to the last byte of the response.",
            labels=("route", "method"),
        )
        for (route, method), (counts, totals) in merged.items():
            cumulative = zip(_LE, accumulate(counts), strict=True)
            duration.add_metric((route, method), list(cumulative), totals[0])
        yield requests
        yield duration
        yield GaugeMetricFamily(
            self._prefix + "http_requests_in_flight",
            "HTTP requests being served right now.",
            value=max(0, started - finished),
        )
