"""Prometheus metrics owned by one application: RED by route template, DB timings.

Each ``Metrics`` has its own ``CollectorRegistry``; nothing is registered in
prometheus_client's global one, so two apps (or two tests) never collide.

The per-request figures are recorded on the hot path of every request, so in
a single process they live in ``RequestStats``: plain counters updated from
the event loop thread, without the lock prometheus_client takes per update,
and turned into metric families only when scraped.

Multi-process servers: when ``PROMETHEUS_MULTIPROC_DIR`` is set,
prometheus_client keeps every value in per-process files in that directory,
so the request figures use its file-backed ``Counter``/``Histogram``/``Gauge``
instead. ``render`` aggregates the files of all workers with a
``MultiProcessCollector``, and a server's worker-exit hook calls
``mark_process_dead(pid)`` so a dead worker's live gauges stop counting.
prometheus_client picks its value backend when it is first imported, so the
variable must be in the environment before the process starts; setting it
later is reported as a ``ConfigurationError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import anyio.to_thread
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tenfold._bearer import bearer_matches
from tenfold._context import current_request_id
from tenfold._errors import ConfigurationError
from tenfold.observability._stats import HTTP_BUCKETS, RequestStats

__all__ = ["HTTP_BUCKETS", "QUERY_BUCKETS", "Metrics", "metrics_route"]

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Query buckets (seconds): 0.1 ms .. 10 s.
QUERY_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0)


class Metrics:
    """The application's metrics and their exposition.

    Exposed: ``<ns>_http_requests_total`` (route, method, status),
    ``<ns>_http_request_duration_seconds`` (histogram: route, method),
    ``<ns>_http_requests_in_flight`` and ``<ns>_db_query_duration_seconds``
    (histogram: role). Other parts add theirs with ``register_collector``.
    Per request, ``request_started()`` and, when it is answered,
    ``observe_request(route, method, status, seconds)`` (which also ends its
    in-flight count). Labels must already be normalised (route templates,
    known methods): the telemetry middleware does that.
    """

    def __init__(
        self,
        *,
        namespace: str = "tenfold",
        registry: CollectorRegistry | None = None,
        multiprocess_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.namespace = namespace
        self.multiprocess_dir = _check_multiprocess_dir(multiprocess_dir)
        self.registry = registry if registry is not None else CollectorRegistry()
        self._collectors: list[Collector] = []
        if self.multiprocess_dir is None:
            stats = RequestStats(namespace)
            self.registry.register(stats)
            self._stats: RequestStats | _FileBackedRequests = stats
        else:
            self._stats = _FileBackedRequests(namespace, self.registry)
        # Bound once: these run on every request.
        self.request_started = self._stats.start
        self.observe_request = self._stats.observe
        self.db_query_duration = Histogram(
            "db_query_duration_seconds",
            "Database statement time by role (primary, replica-N, shard-N).",
            ("role",),
            namespace=namespace,
            buckets=QUERY_BUCKETS,
            registry=self.registry,
        )
        self._query_children: dict[str, Any] = {}

    def __repr__(self) -> str:
        mode = f"multiprocess_dir={self.multiprocess_dir!r}" if self.multiprocess_dir else "single"
        return f"Metrics(namespace={self.namespace!r}, {mode})"

    @property
    def multiprocess(self) -> bool:
        return self.multiprocess_dir is not None

    def observe_query(self, role: str, seconds: float) -> None:
        """Record one statement's duration for the database ``role``."""
        child = self._query_children.get(role)
        if child is None:
            child = self._query_children[role] = self.db_query_duration.labels(role)
        child.observe(seconds)

    def register_collector(self, collector: Collector) -> None:
        """Expose a custom collector (e.g. connection pool gauges) with these metrics.

        In multi-process mode a custom collector can only see its own process,
        so its samples get a ``pid`` label to keep workers apart.
        """
        self._collectors.append(collector)
        if not self.multiprocess:
            self.registry.register(collector)

    def unregister_collector(self, collector: Collector) -> None:
        if collector in self._collectors:
            self._collectors.remove(collector)
            if not self.multiprocess:
                self.registry.unregister(collector)

    def mark_process_dead(self, pid: int) -> None:
        """Call from the server's worker-exit hook: drop a dead worker's live gauges."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(pid, self.multiprocess_dir)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its content type (OpenMetrics if ``accept`` asks)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self._exposition_registry()), content_type

    def _exposition_registry(self) -> CollectorRegistry:
        if not self.multiprocess:
            return self.registry
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
        if self._collectors:
            registry.register(_PidLabelled(self._collectors))
        return registry


def metrics_route(
    metrics: Metrics, *, path: str = "/metrics", token: SecretStr | str | None = None
) -> Route:
    """A ``GET`` route serving ``metrics`` (rendered off the event loop).

    With ``token`` (``TENFOLD_OBSERVABILITY__METRICS_TOKEN``) a scrape must bear it,
    ``Authorization: Bearer <token>``; others get a 401 problem.
    """

    async def endpoint(request: Request) -> Response:
        if token is not None and not bearer_matches(request, token):
            return _unauthorized()
        # Collection reads every series (and, in multi-process mode, every
        # worker's files): real CPU and I/O, so it runs in a thread.
        body, content_type = await anyio.to_thread.run_sync(
            metrics.render, request.headers.get("accept")
        )
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    return Route(path, endpoint, methods=["GET"], name="metrics", include_in_schema=False)


def _unauthorized() -> Response:
    body = {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "Scraping the metrics needs the configured bearer token.",
        "request_id": current_request_id(),
    }
    return Response(
        orjson.dumps(body),
        status_code=401,
        media_type="application/problem+json",
        headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"},
    )


class _FileBackedRequests:
    """The request figures as prometheus_client metrics, for multi-process mode."""

    def __init__(self, namespace: str, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            namespace=namespace,
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from request start to the last byte of the response.",
            ("route", "method"),
            namespace=namespace,
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "HTTP requests being served right now.",
            namespace=namespace,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(route, method, str(status)),
                self.duration.labels(route, method),
            )
        children[0].inc()
        children[1].observe(seconds)
        self.in_flight.dec()

    def start(self) -> None:
        self.in_flight.inc()


class _PidLabelled(Collector):
    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = list(collectors)
        self._pid = str(os.getpid())

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            for family in collector.collect():
                family.samples = [
                    s._replace(labels={**s.labels, "pid": self._pid}) for s in family.samples
                ]
                yield family


def _check_multiprocess_dir(configured: str | os.PathLike[str] | None) -> str | None:
    env = os.environ.get(_MULTIPROC_ENV)
    path = os.fspath(configured) if configured is not None else env
    if path is None:
        return None
    if env is None or os.path.abspath(env) != os.path.abspath(path):
        raise ConfigurationError(
            f"multiprocess metrics need {_MULTIPROC_ENV}={path} in the environment "
            "before the process starts (prometheus_client reads it at import)",
            setting=_MULTIPROC_ENV,
        )
    if not os.path.isdir(path):
        raise ConfigurationError(
            f"{_MULTIPROC_ENV}={path} is not a directory; create it (empty) before starting",
            setting=_MULTIPROC_ENV,
        )
    if values.ValueClass is values.MutexValue:
        raise ConfigurationError(
            f"{_MULTIPROC_ENV} was set after prometheus_client was imported; "
            "set it in the environment before the process starts",
            setting=_MULTIPROC_ENV,
        )
    return path
