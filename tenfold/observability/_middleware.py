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

from tenfold._context import (
    VALID_ID,
    _Acting,
    correlation_var,
    current_user_id,
    principal_var,
    request_id_var,
    traceparent_var,
    valid_traceparent,
)
from tenfold._routes import RouteIndex
from tenfold._scope import RESPONSE_HEADERS
from tenfold.observability import _logging
from tenfold.observability._access import write_access as _write_access
from tenfold.observability._ids import new_request_id
from tenfold.observability._metrics import Metrics

__all__ = [
    "DEFAULT_SKIP_PATHS",
    "ObservabilityMiddleware",
    "RequestContextMiddleware",
    "TelemetryMiddleware",
]

_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}").fullmatch
_CORRELATION = b"x-correlation-id"
_TRACEPARENT = b"traceparent"

#: Probe and scrape endpoints: counting them would drown the application's figures.
DEFAULT_SKIP_PATHS = frozenset({"/metrics", "/health", "/ready"})

# Anything else becomes "other", so a client cannot mint label values.
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY"}
)
_INFO = logging.INFO


# Bound once: these run on every request.
_set_request_id = request_id_var.set
_reset_request_id = request_id_var.reset
_set_acting = principal_var.set
_reset_acting = principal_var.reset


def _wanted(name: bytes) -> dict[bytes, int]:
    """The headers ``_incoming`` reads: the request id's (``name``), correlation, traceparent."""
    return {name: 0, _CORRELATION: 1, _TRACEPARENT: 2}


def _incoming(
    scope: Scope, wanted: dict[bytes, int]
) -> tuple[str, bytes, tuple[str | None, str | None] | None]:
    """The request id (the incoming one if valid, else a new one), its header value, and
    (correlation id, traceparent) if the request arrived with either, valid; one pass."""
    found: list[bytes | None] | None = None
    for key, value in scope["headers"]:
        slot = wanted.get(key)
        if slot is not None:
            if found is None:
                found = [None, None, None]
            if found[slot] is None:  # the first of a repeated header
                found[slot] = value
    raw = found[0] if found is not None else None
    if raw is not None and _VALID_REQUEST_ID(raw) is not None:
        request_id = raw.decode("ascii")
    else:
        request_id = new_request_id()
        raw = request_id.encode("ascii")
    if found is None or (found[1] is None and found[2] is None):
        return request_id, raw, None
    correlation = found[1].decode("latin-1") if found[1] is not None else None
    if correlation is not None and VALID_ID(correlation) is None:
        correlation = None
    traceparent = valid_traceparent(found[2]) if found[2] is not None else None
    return request_id, raw, (correlation, traceparent)


class _Extras:
    """The correlation id and traceparent a request arrived with, bound for its duration."""

    __slots__ = ("correlation", "traceparent")

    def __init__(self, incoming: tuple[str | None, str | None]) -> None:
        correlation, traceparent = incoming
        self.correlation = correlation_var.set(correlation) if correlation is not None else None
        self.traceparent = traceparent_var.set(traceparent) if traceparent is not None else None

    def reset(self) -> None:
        if self.traceparent is not None:
            traceparent_var.reset(self.traceparent)
        if self.correlation is not None:
            correlation_var.reset(self.correlation)


class RequestContextMiddleware:
    """Binds the request id (and an incoming correlation id and traceparent), echoes the id.

    An incoming ``X-Request-ID`` is kept only if it is 1-128 characters of
    ``[A-Za-z0-9._-]`` (anything else could forge log lines or bloat them);
    otherwise a random 32-hex-digit id is made. ``X-Correlation-ID`` (same
    rule) and a well-formed W3C ``traceparent`` are carried on to outbound
    calls and jobs. WebSocket sessions get the context too, without the echo.
    """

    def __init__(self, app: ASGIApp, *, header: str = "X-Request-ID") -> None:
        self.app = app
        self.header = header
        self._name = header.lower().encode("latin-1")
        self._wanted = _wanted(self._name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        request_id, raw, incoming = _incoming(scope, self._wanted)
        request_token = _set_request_id(request_id)
        # The request's principal cell: the authentication slot or an auth dependency fills it.
        acting = _Acting()
        acting.principal = None
        acting_token = _set_acting(acting)
        extras = _Extras(incoming) if incoming is not None else None
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
            if extras is not None:
                extras.reset()
            _reset_acting(acting_token)
            _reset_request_id(request_token)


class _Recorder:
    """Records a finished request: metrics by route template and the access line."""

    __slots__ = ("access_log", "metrics", "template")

    def __init__(self, metrics: Metrics | None, access_log: bool, routes: RouteIndex) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.template = routes.template

    def __call__(
        self, scope: Scope, status: int, seconds: float, request_id: str | None, user: str | None
    ) -> None:
        route = self.template(scope)
        method = scope["method"]
        if method not in _METHODS:
            method = "other"
        metrics = self.metrics
        if metrics is not None:
            metrics.observe_request(route, method, status, seconds)
        if self.access_log and (status >= 500 or _logging.state.level <= _INFO):
            client = scope.get("client")
            _write_access(
                request_id,
                user,
                method,
                route,
                scope["path"],
                status,
                seconds,
                client[0] if client else None,
            )


class TelemetryMiddleware:
    """RED metrics labelled by route template, and one access log line per request.

    Put it inside ``RequestContextMiddleware`` (it reads the request id from the
    context) and outside the error layer, so a 500 is counted with its status.
    ``skip_paths`` are served without either. ``index`` is the app's shared
    ``RouteIndex`` (one is made if not given).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None = None,
        access_log: bool = True,
        skip_paths: Iterable[str] = DEFAULT_SKIP_PATHS,
        index: RouteIndex | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.skip_paths = frozenset(skip_paths)
        self._record = _Recorder(metrics, access_log, index or RouteIndex())

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
            self._record(
                scope, status, perf_counter() - start, request_id_var.get(), current_user_id()
            )


class ObservabilityMiddleware:
    """``RequestContextMiddleware`` and ``TelemetryMiddleware`` in one layer.

    Same behaviour as the two stacked (request id in, context bound, id
    echoed; metrics and access line for paths outside ``skip_paths``), with
    one layer and one wrapped ``send`` instead of two of each. ``index`` is the
    app's shared ``RouteIndex`` (one is made if not given).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None = None,
        access_log: bool = True,
        header: str = "X-Request-ID",
        skip_paths: Iterable[str] = DEFAULT_SKIP_PATHS,
        index: RouteIndex | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.header = header
        self.skip_paths = frozenset(skip_paths)
        self._name = header.lower().encode("latin-1")
        self._wanted = _wanted(self._name)
        self._context_only = RequestContextMiddleware(app, header=header)
        #: The app's routes (shared with the limiter and the HTTP cache): templates by route.
        self.index = index or RouteIndex()
        self._template = self.index.template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self._context_only(scope, receive, send)
            return
        request_id, raw, incoming = _incoming(scope, self._wanted)
        request_token = _set_request_id(request_id)
        # The request's principal cell: the authentication slot or an auth dependency fills it.
        acting = _Acting()
        acting.principal = None
        acting_token = _set_acting(acting)
        extras = _Extras(incoming) if incoming is not None else None
        header = (self._name, raw)
        status = 500  # what the client gets if the app dies before answering
        scope[RESPONSE_HEADERS] = None  # an inner kernel layer may add headers through us

        def send_with_id(message: Message) -> object:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), header]
                finish = scope.get(RESPONSE_HEADERS)
                message["headers"] = headers if finish is None else finish(headers)
            return send(message)

        metrics = self.metrics
        if metrics is not None:
            metrics.request_started()
        start = perf_counter()
        try:
            await self.app(scope, receive, send_with_id)  # type: ignore[arg-type]
        finally:
            seconds = perf_counter() - start
            if extras is not None:
                extras.reset()
            _reset_acting(acting_token)
            _reset_request_id(request_token)
            # _Recorder.__call__, inlined: this layer exists to save calls.
            route = self._template(scope)
            method = scope["method"]
            if method not in _METHODS:
                method = "other"
            if metrics is not None:
                metrics.observe_request(route, method, status, seconds)
            if self.access_log and (status >= 500 or _logging.state.level <= _INFO):
                path = scope["path"]
                principal = acting.principal
                user = principal.id if principal is not None else None
                client = scope.get("client")
                _write_access(
                    request_id,
                    user,
                    method,
                    route,
                    path,
                    status,
                    seconds,
                    client[0] if client else None,
                )
