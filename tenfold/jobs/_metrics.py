"""What a worker's tasks did, recorded in the worker's main process and served on a port.

With the prefork pool, tasks run in child processes that are replaced now and
then (``max_memory_per_child``), so figures kept there would be lost and
could not be scraped from one place. The main process learns each outcome
from the pool's callbacks on the task's ``Request``: the jobs extension sets
``Task.Request`` to ``WorkerStats.request_class``, whose ``on_accepted``,
``on_success``, ``on_failure`` and ``on_retry`` record here before Celery
handles the outcome. The solo and threads pools call the same hooks in the
main process.

Exposed (``<ns>_jobs_`` prefix), on ``tenfold worker --metrics-port``:

    task_duration_seconds{task}     histogram of attempts (success, failure or retry)
    tasks_total{task,outcome}       attempts by outcome: succeeded, failed, retried
    task_retries_total{task}        attempts that ended in a retry
    task_failures_total{task}       attempts that failed for good (not retried)
    worker_processes                the pool's processes now (autoscale moves it)
    active_tasks                    tasks running now in this worker
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import Any, ClassVar

from billiard.einfo import ExceptionWithTraceback
from celery.exceptions import Ignore, Reject, Retry, Terminated
from celery.worker import state
from celery.worker.request import Request
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["DURATION_BUCKETS", "OUTCOMES", "MetricsServer", "WorkerStats"]

#: Task duration buckets (seconds): 10 ms .. 5 min (the default soft time limit).
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
OUTCOMES = ("succeeded", "failed", "retried")
#: Outcomes that are not the task's own: the message was ignored, rejected or revoked.
_NOT_COUNTED = (Ignore, Reject, Terminated)


class WorkerStats(Collector):
    """Task figures of one worker's main process. Updates may come from the pool's threads."""

    def __init__(self, namespace: str = "tenfold", clock: Callable[[], float] = time.monotonic):
        self._prefix = f"{namespace}_jobs_" if namespace else "jobs_"
        self.clock = clock
        self._lock = threading.Lock()
        #: Attempts by ``(task, outcome)``.
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self._durations: dict[str, tuple[list[int], list[float]]] = {}
        #: The running worker's pool (set by ``tenfold worker``), read for the gauges.
        self.pool: Callable[[], Any] | None = None
        #: The ``Request`` class recording here; the jobs extension sets it on each task.
        self.request_class: type[Request] = type(
            "TenfoldRequest", (MetricsRequest,), {"stats": self, "__module__": __name__}
        )

    def __repr__(self) -> str:
        return f"<WorkerStats {sum(self.outcomes.values())} attempts>"

    def record(self, task: str, outcome: str, seconds: float | None) -> None:
        """One attempt of ``task`` ended with ``outcome`` after ``seconds`` (None: unknown)."""
        with self._lock:
            self.outcomes[task, outcome] += 1
            if seconds is None:
                return
            buckets, total = self._durations.setdefault(
                task, ([0] * (len(DURATION_BUCKETS) + 1), [0.0])
            )
            buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
            total[0] += seconds

    def collect(self) -> Iterator[Metric]:
        p = self._prefix
        with self._lock:
            outcomes = dict(self.outcomes)
            durations = {t: (list(b), s[0]) for t, (b, s) in self._durations.items()}
        tasks = CounterMetricFamily(
            p + "tasks", "Task attempts by outcome.", labels=["task", "outcome"]
        )
        retries = CounterMetricFamily(
            p + "task_retries", "Attempts that ended in a retry.", labels=["task"]
        )
        failures = CounterMetricFamily(
            p + "task_failures", "Attempts that failed for good.", labels=["task"]
        )
        for (task, outcome), count in sorted(outcomes.items()):
            tasks.add_metric([task, outcome], count)
            if outcome == "retried":
                retries.add_metric([task], count)
            elif outcome == "failed":
                failures.add_metric([task], count)
        duration = HistogramMetricFamily(
            p + "task_duration_seconds", "Time of each task attempt.", labels=["task"]
        )
        bounds = [*(floatToGoString(b) for b in DURATION_BUCKETS), "+Inf"]
        for task, (buckets, total) in sorted(durations.items()):
            duration.add_metric([task], list(zip(bounds, accumulate(buckets), strict=True)), total)
        yield from (tasks, retries, failures, duration)
        yield from self._gauges()

    def _gauges(self) -> Iterator[Metric]:
        pool = self.pool() if self.pool is not None else None
        if pool is None:
            return
        yield GaugeMetricFamily(
            self._prefix + "worker_processes",
            "Pool processes of this worker now.",
            value=pool.num_processes,
        )
        yield GaugeMetricFamily(
            self._prefix + "active_tasks",
            "Tasks running in this worker now.",
            value=len(state.active_requests),
        )


class MetricsRequest(Request):
    """A task's ``Request`` that records each attempt's outcome in ``stats``."""

    stats: ClassVar[WorkerStats]
    _tenfold_accepted: float | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Celery's worker subclasses the task's Request class (create_request_cls) and
        # overrides on_success there without calling super(): wrap that override too.
        own = cls.__dict__.get("on_success")
        if own is not None:
            cls.on_success = _recording_success(own)  # type: ignore[method-assign]

    def on_accepted(self, pid: int, time_accepted: float) -> None:
        # time_accepted is the pool's monotonic clock (system-wide on Linux), as Celery assumes.
        self._tenfold_accepted = time_accepted
        super().on_accepted(pid, time_accepted)

    def on_success(self, failed__retval__runtime: Any, **kwargs: Any) -> Any:
        return _recording_success(Request.on_success)(self, failed__retval__runtime, **kwargs)

    def on_retry(self, exc_info: Any) -> Any:
        self.stats.record(self.name, "retried", self._tenfold_elapsed())
        return super().on_retry(exc_info)

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False):  # type: ignore[no-untyped-def]
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if not isinstance(exc, (Retry, *_NOT_COUNTED)):
            self.stats.record(self.name, "failed", self._tenfold_elapsed())
        return super().on_failure(
            exc_info, send_failed_event=send_failed_event, return_ok=return_ok
        )

    def _tenfold_elapsed(self) -> float | None:
        accepted = self._tenfold_accepted
        return None if accepted is None else max(0.0, self.stats.clock() - accepted)


def _recording_success(on_success: Callable[..., Any]) -> Callable[..., Any]:
    def recording(self: MetricsRequest, failed__retval__runtime: Any, **kwargs: Any) -> Any:
        failed, _, runtime = failed__retval__runtime
        if not failed:  # a failure goes on to on_failure, which records it
            seconds = runtime if runtime is not None else self._tenfold_elapsed()
            self.stats.record(self.name, "succeeded", seconds)
        return on_success(self, failed__retval__runtime, **kwargs)

    recording.__wrapped__ = on_success  # type: ignore[attr-defined]
    return recording


class MetricsServer:
    """Plain Prometheus text of ``collectors`` over HTTP on ``host:port``, on its own thread.

    Its own ``CollectorRegistry``: nothing goes to prometheus_client's global one.
    """

    def __init__(self, *collectors: Collector, host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            self.registry.register(collector)
        self.host = host
        self.requested_port = port
        self._server: Any = None

    def __repr__(self) -> str:
        return f"<MetricsServer {self.host}:{self.port}>"

    @property
    def port(self) -> int:
        """The bound port (the requested one, or the one the OS chose for 0)."""
        if self._server is None:
            return self.requested_port
        return int(self._server.server_port)

    def start(self) -> None:
        self._server, _thread = start_http_server(
            self.requested_port, addr=self.host, registry=self.registry
        )

    def stop(self, **_: Any) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
