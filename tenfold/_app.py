"""``create_app``: a thin FastAPI adapter over a ``Platform``.

The platform builds every extension (database, cache, HTTP cache, rate
limits, idempotency, upstream clients and the application's own); this
module turns what they declared into a FastAPI app: the middleware in slot
order (``tenfold.web.Slot``), their routes, the probes and ``/metrics``, and a
lifespan that starts and stops the platform.

The kernel's own layers fill the first slots::

    REQUEST_CONTEXT  ObservabilityMiddleware   request id in, context bound, id echoed;
                                               RED metrics by route template; access line
    HTTP             HttpMiddleware            TENFOLD_HTTP__*: the client behind trusted
                                               proxies, allowed hosts, CORS, body limits,
                                               security headers
    PROBLEM          ProblemMiddleware         an unhandled exception becomes a 500 problem
    IN_FLIGHT        InFlightMiddleware        counts requests so shutdown can drain them
    AUTHENTICATION   AuthenticationMiddleware  ``authenticate=``: the principal, before
                                               the limiter and the HTTP cache decide

then the extensions' (consistency, rate limit, HTTP cache, application) and
the application's own ``middleware=``. FastAPI's exception handlers
(problem+json) and the router come last.

Observability sits outside the problem layer so a 500 is counted and logged
with its status, and every response, including the ones the outer layers
produce, carries the request id. It is one layer rather than two
(``RequestContextMiddleware`` + ``TelemetryMiddleware``, which apps may still
use separately) because each ASGI layer costs a call and a ``send`` wrapper
per request; see docs/benchmarks.md.

The HTTP layer resolves the client behind trusted proxies once, in the
scope, so the rate limiter's keys, ``request.client`` and the access line
agree; uvicorn's own proxy-header handling is switched off by ``tenfold run``
so that the address is resolved in one place, by the same rules under any
server (and in tests, which call the app directly).

Authentication sits outside the rate limiter and the HTTP cache: a ``by_user``
limit must count the user, and a ``per_user`` cached response must be keyed
on them; an app's own middleware (``Slot.APPLICATION``) runs after both.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette._utils import get_route_path
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from tenfold._components import Component
from tenfold._errors import ConfigurationError
from tenfold._extension import Extension, SlotMiddleware
from tenfold._platform import Platform
from tenfold._settings import CoreSettings
from tenfold.health import InFlightMiddleware, Lifecycle, health_router
from tenfold.observability import (
    ObservabilityMiddleware,
    RequestContextMiddleware,
    flush_logs,
    get_logger,
    metrics_route,
)
from tenfold.web import (
    Authenticate,
    AuthenticationMiddleware,
    HttpMiddleware,
    ProblemEntry,
    ProblemMiddleware,
    Slot,
    document_problems,
    install_problem_handlers,
)

__all__ = ["create_app"]

_log = get_logger("tenfold.app")
_NO_NATIVE_TELEMETRY = {"tracing": False, "metrics": False, "logs": False}

#: What ``create_app(middleware=...)`` takes: a Middleware (the application slot), or a
#: ``(Slot, Middleware)`` pair to place it elsewhere.
AppMiddleware = Middleware | tuple[Slot, Middleware]


def create_app(
    settings: CoreSettings | None = None,
    *,
    extensions: Iterable[Extension] = (),
    routers: Sequence[APIRouter] = (),
    components: Sequence[Component] = (),
    middleware: Sequence[AppMiddleware] = (),
    authenticate: Authenticate | None = None,
    rate_limits: Any = None,
    problems: Mapping[type[BaseException], ProblemEntry] | None = None,
    on_startup: Sequence[Callable[[Platform], Awaitable[None]]] = (),
    platform: Platform | None = None,
    title: str | None = None,
    version: str = "0.1.0",
    configure_logs: bool = True,
    fastapi_options: dict[str, Any] | None = None,
) -> FastAPI:
    """Build the application over a platform.

    ``settings`` defaults to the environment (and ``.env``), so a bad value
    fails here, before the server binds. ``extensions`` are added to the
    built-in ones (one with a built-in's name replaces it). ``components``
    are the application's own parts; they start after every extension's and
    stop before them. ``middleware`` goes in ``Slot.APPLICATION`` unless given
    as ``(slot, Middleware)``. ``authenticate`` resolves the principal of each
    request and WebSocket (see ``tenfold.web.AuthenticationMiddleware``).
    ``rate_limits`` (``tenfold.ratelimit.RateLimits``) adds code-defined
    policies to those of TENFOLD_RATELIMIT__*. ``problems`` maps the
    application's own exceptions to problem+json (``tenfold.web.Problem``); its
    entries override tenfold's. ``on_startup`` hooks run once everything has
    started and receive the ``Platform``. ``platform`` serves
    a platform built beforehand (``settings``, ``extensions``, ``components``
    and ``rate_limits`` must then be left out).
    """
    if platform is None:
        options: dict[str, Any] = {}
        if rate_limits is not None:
            options["rate_limits"] = rate_limits
        platform = Platform.build(
            settings,
            extensions=extensions,
            components=components,
            configure_logs=configure_logs,
            **options,
        )
    elif settings is not None or extensions or components or rate_limits is not None:
        raise TypeError("create_app(platform=...) takes no settings, extensions or components")
    for exc_type, entry in (problems or {}).items():
        platform.problems.register(exc_type, entry)
    if platform.authenticate is not None:
        if authenticate is not None:
            raise ConfigurationError(
                "create_app(authenticate=...) and an extension's authenticator both fill the "
                "authentication slot; pass one"
            )
        authenticate = platform.authenticate
    app = _PlatformApp(
        title=title or platform.settings.app.name,
        version=version,
        debug=False,  # a debug traceback page must never reach a client
        lifespan=_lifespan(on_startup),
        middleware=_middleware(platform, middleware, authenticate),
        # tenfold traces with its own provider (TENFOLD_OBSERVABILITY__*) and counts requests
        # itself; FastAPI's native OpenTelemetry would add a second span per request as soon
        # as anything set a global provider, and checks for one on every request.
        **{"telemetry": _NO_NATIVE_TELEMETRY, **(fastapi_options or {})},
    )
    app.state.tenfold = platform
    app.lane = _lane(platform, authenticate)
    platform.tracing.instrument_app(app)
    install_problem_handlers(app, platform.problems)
    document_problems(app, platform.openapi_hooks)
    settings = platform.settings
    app.include_router(
        health_router(platform.health, platform.lifecycle, token=settings.health.token)
    )
    metrics = platform.metrics
    if metrics is not None:
        obs = settings.observability
        app.router.routes.append(
            metrics_route(metrics, path=obs.metrics_path, token=obs.metrics_token)
        )
    for router in [*platform.routers, *routers]:
        app.include_router(router)
    return app


class _PlatformApp(FastAPI):
    """FastAPI with the platform's WebSocket lane in front of its middleware stack."""

    lane: dict[str, ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return WebSocketLane(stack, self.lane) if self.lane else stack


class WebSocketLane:
    """WebSocket connections to the lane's paths go to their endpoint (already wrapped in
    the kernel's WebSocket layers); everything else goes on through the whole stack."""

    def __init__(self, app: ASGIApp, endpoints: Mapping[str, ASGIApp]) -> None:
        self.app = app
        self.endpoints = dict(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            endpoint = self.endpoints.get(get_route_path(scope))
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _lane(platform: Platform, authenticate: Authenticate | None) -> dict[str, ASGIApp] | None:
    """Each ``Build.websocket`` endpoint behind the kernel layers a WebSocket needs: the
    request context (id, principal cell), the HTTP layer's client and host rules, and
    authentication; in the same order as in the whole stack."""
    if not platform.websockets:
        return None
    lane = {}
    for path, endpoint in platform.websockets.items():
        app: ASGIApp = endpoint
        if authenticate is not None:
            app = AuthenticationMiddleware(app, resolve=authenticate)
        app = HttpMiddleware(app, settings=platform.settings.http, index=platform.route_index)
        lane[path] = RequestContextMiddleware(app)
    return lane


def _middleware(
    platform: Platform, extra: Sequence[AppMiddleware], authenticate: Authenticate | None
) -> list[Middleware]:
    """The whole stack, outermost first: by slot, then kernel, extensions, application."""
    obs = platform.settings.observability
    kernel = [
        SlotMiddleware(
            Slot.REQUEST_CONTEXT,
            ObservabilityMiddleware,
            {
                "metrics": platform.metrics,
                "access_log": obs.access_log,
                "index": platform.route_index,
            },
            "kernel",
        ),
        SlotMiddleware(
            Slot.HTTP,
            HttpMiddleware,
            {"settings": platform.settings.http, "index": platform.route_index},
            "kernel",
        ),
        SlotMiddleware(Slot.PROBLEM, ProblemMiddleware, {"problems": platform.problems}, "kernel"),
        SlotMiddleware(
            Slot.IN_FLIGHT, InFlightMiddleware, {"lifecycle": platform.lifecycle}, "kernel"
        ),
    ]
    if authenticate is not None:
        kernel.append(
            SlotMiddleware(
                Slot.AUTHENTICATION, AuthenticationMiddleware, {"resolve": authenticate}, "kernel"
            )
        )
    app: list[SlotMiddleware] = []
    for item in extra:
        slot, entry = item if isinstance(item, tuple) else (Slot.APPLICATION, item)
        app.append(SlotMiddleware(Slot(slot), entry.cls, dict(entry.kwargs), "app"))
        if entry.args:
            raise TypeError(f"middleware {entry.cls!r}: pass options as keyword arguments")
    ordered = sorted([*kernel, *platform.middleware, *app], key=lambda m: m.slot)
    return [Middleware(m.cls, **m.options) for m in ordered]


def _lifespan(
    on_startup: Sequence[Callable[[Platform], Awaitable[None]]],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform: Platform = app.state.tenfold
        settings, lifecycle = platform.settings, platform.lifecycle
        await platform.start()
        try:
            for hook in on_startup:
                await hook(platform)
        except BaseException:
            await platform.stop()
            raise
        if settings.app.gc_freeze:
            _freeze_startup_heap()
        _log.info(
            "app_started",
            app=settings.app.name,
            profile=settings.profile,
            components=platform.components.names,
        )
        restore_signal = _drain_on_sigterm(lifecycle, settings.health.drain_delay)
        try:
            yield
        finally:
            restore_signal()
            lifecycle.begin_drain()
            drained = await lifecycle.wait_drained(settings.health.drain_timeout)
            try:
                await platform.stop()
            finally:
                if platform.metrics is not None:
                    # One worker of several is leaving: its live gauges (requests in
                    # flight) must stop counting in the other workers' scrapes.
                    platform.metrics.mark_process_dead(os.getpid())
                if settings.app.gc_freeze:
                    gc.unfreeze()  # a process that builds another app (tests) collects as usual
                _log.info("app_stopped", app=settings.app.name, drained=drained)
                # uvicorn re-raises SIGTERM after shutdown, so atexit never runs.
                flush_logs()

    return lifespan


def _freeze_startup_heap() -> None:
    """Collect once, then freeze: the startup heap (modules, functions, routes, pools)
    lives as long as the process, yet every full collection would walk it. Measured on the
    full-stack benchmark: gen-2 pauses of 50-90 ms, the p99 of a server awaiting Redis."""
    gc.collect()
    gc.freeze()


def _drain_on_sigterm(lifecycle: Lifecycle, delay: float) -> Callable[[], None]:
    """Put readiness to 503 the moment SIGTERM arrives, then let uvicorn shut down.

    uvicorn closes its listener as soon as it sees SIGTERM, so a load balancer
    would learn of the shutdown only from refused connections. We wrap
    uvicorn's handler (installed before the lifespan starts): readiness flips at
    once, and the listener closes ``delay`` seconds later, after which uvicorn
    drains in-flight requests for ``drain_timeout``. A second SIGTERM stops at
    once. Under any other server this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return _noop
    previous = signal.getsignal(signal.SIGTERM)
    owner = getattr(previous, "__self__", None)
    if not callable(previous) or type(owner).__module__ != "uvicorn.server":
        return _noop
    loop = asyncio.get_running_loop()

    def on_sigterm(sig: int, frame: object) -> None:
        if lifecycle.draining or delay <= 0:
            lifecycle.begin_drain()
            previous(sig, frame)
            return
        lifecycle.begin_drain()
        loop.call_soon_threadsafe(loop.call_later, delay, previous, sig, None)

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)

    return restore


def _noop() -> None:
    return None
