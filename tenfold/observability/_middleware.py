"""Request id and telemetry middleware: plain ASGI, cheap on the hot path.

They run for every request, so they are written for it: ``send`` is wrapped
by a plain function that *returns* the downstream awaitable (one coroutine
object fewer per message than an ``async def``), hot attributes are bound
once, and the bookkeeping after the response is one call. Each layer and
each wrapped ``send`` costs too, so ``ObservabilityMiddleware`` does the work
of the other two in a single layer; see ``benchmarks/bench_stack_overhead.py``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenfold._context import RequestContext, bind_context, current_context, reset_context
from tenfold.observability import _logging
from tenfold.observability._access import write_access as _write_access
from tenfold.observability._ids import new_request_id
from tenfold.observability._metrics import Metrics
from tenfold.observability._routes import RouteTemplates

__all__ = [
    "DEFAULT_SKIP_PATHS",
    "ObservabilityMiddleware",
    "RequestContextMiddleware",
    "TelemetryMiddleware",
]

_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}").fullmatch

#: Probe and scrape endpoints: counting them would drown the application's figures.
DEFAULT_SKIP_PATHS = frozenset({"/metrics", "/health", "/ready"})

# Anything else becomes "other", so a client cannot mint label values.
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY"}
)
_INFO = logging.INFO


def _request_id(scope: Scope, name: bytes) -> tuple[str, bytes]:
    """The incoming id if it is 1-128 characters of ``[A-Za-z0-9._-]``, else a new one."""
    for key, value in scope["headers"]:
        if key == name:
            if _VALID_REQUEST_ID(value) is not None:
                return value.decode("ascii"), value
            break
    request_id = new_request_id()
    return request_id, request_id.encode("ascii")


class RequestContextMiddleware:
    """Binds a ``RequestContext`` with the request id and echoes the id back.

    An incoming ``X-Request-ID`` is kept only if it is 1-128 characters of
    ``[A-Za-z0-9._-]`` (anything else could forge log lines or bloat them);
    otherwise a random 32-hex-digit id is made. WebSocket sessions get the
    context too, without the header echo.
    """

    def __init__(self, app: ASGIApp, *, header: str = "X-Request-ID") -> None:
        self.app = app
        self.header = header
        self._name = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        request_id, raw = _request_id(scope, self._name)
        token = bind_context(RequestContext(request_id))
        try:
            if kind == "websocket":
                await self.app(scope, receive, send)
                return
            header = (self._name, raw)

            def send_with_id(message: Message) -> object:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), header]
                return send(message)

            await self.app(scope, receive, send_with_id)  # type: ignore[arg-type]
        finally:
            reset_context(token)


class _Recorder:
    """Records a finished request: metrics by route template and the access line."""

    __slots__ = ("access_log", "metrics", "template")

    def __init__(self, metrics: Metrics | None, access_log: bool) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.template = RouteTemplates().template

    def __call__(
        self, scope: Scope, status: int, seconds: float, ctx: RequestContext | None
    ) -> None:
        route = self.template(scope)
        method = scope["method"]
        if method not in _METHODS:
            method = "other"
        metrics = self.metrics
        if metrics is not None:
            metrics.observe_request(route, method, status, seconds)
        if self.access_log and (status >= 500 or _logging.state.level <= _INFO):
            if ctx is None:
                _write_access(None, None, method, route, scope["path"], status, seconds)
            else:
                _write_access(
                    ctx.request_id, ctx.user_id, method, route, scope["path"], status, seconds
                )


class TelemetryMiddleware:
    """RED metrics labelled by route template, and one access log line per request.

    Put it inside ``RequestContextMiddleware`` (it reads the request id from the
    context) and outside the error layer, so a 500 is counted with its status.
    ``skip_paths`` are served without either.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None = None,
        access_log: bool = True,
        skip_paths: Iterable[str] = DEFAULT_SKIP_PATHS,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.skip_paths = frozenset(skip_paths)
        self._record = _Recorder(metrics, access_log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app dies before answering

        def send_with_status(message: Message) -> object:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        if self.metrics is not None:
            self.metrics.request_started()
        start = perf_counter()
        try:
            await self.app(scope, receive, send_with_status)  # type: ignore[arg-type]
        finally:
            self._record(scope, status, perf_counter() - start, current_context())


class ObservabilityMiddleware:
    """``RequestContextMiddleware`` and ``TelemetryMiddleware`` in one layer.

    Same behaviour as the two stacked (request id in, context bound, id
    echoed; metrics and access line for paths outside ``skip_paths``), with
    one layer and one wrapped ``send`` instead of two of each.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None = None,
        access_log: bool = True,
        header: str = "X-Request-ID",
        skip_paths: Iterable[str] = DEFAULT_SKIP_PATHS,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.header = header
        self.skip_paths = frozenset(skip_paths)
        self._name = header.lower().encode("latin-1")
        self._context_only = RequestContextMiddleware(app, header=header)
        self._template = RouteTemplates().template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self._context_only(scope, receive, send)
            return
        request_id, raw = _request_id(scope, self._name)
        ctx = RequestContext(request_id)
        token = bind_context(ctx)
        header = (self._name, raw)
        status = 500  # what the client gets if the app dies before answering

        def send_with_id(message: Message) -> object:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            return send(message)

        metrics = self.metrics
        if metrics is not None:
            metrics.request_started()
        start = perf_counter()
        try:
            await self.app(scope, receive, send_with_id)  # type: ignore[arg-type]
        finally:
            seconds = perf_counter() - start
            reset_context(token)
            # _Recorder.__call__, inlined: this layer exists to save calls.
            route = self._template(scope)
            method = scope["method"]
            if method not in _METHODS:
                method = "other"
            if metrics is not None:
                metrics.observe_request(route, method, status, seconds)
            if self.access_log and (status >= 500 or _logging.state.level <= _INFO):
                path = scope["path"]
                _write_access(ctx.request_id, ctx.user_id, method, route, path, status, seconds)
