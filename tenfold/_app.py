"""``create_app``: one FastAPI application with every tenfold capability wired.

The middleware order is declared here and nowhere else (outermost first):

1. ``ObservabilityMiddleware``   request id in, context bound, id echoed out;
                                  RED metrics by route template; access log line
2. ``ProblemMiddleware``         an unhandled exception becomes a 500 problem
3. ``InFlightMiddleware``        counts requests so shutdown can drain them
4. ``ConsistencyMiddleware``     read-your-writes token in (header/cookie) and out
5. ``RateLimitMiddleware``       policies from TENFOLD_RATELIMIT__*, ``rate_limits=``
                                  and ``@rate_limit``; 429/503 problems, RateLimit-*;
                                  never the health probes or /metrics
6. ``HttpCacheMiddleware``       cached responses of ``cache_response`` routes, ETag/304
7. ``CacheMiddleware``           makes the app's ``Cache`` current for ``@cached``
8. the application's own middleware, in the order given
9. FastAPI's exception handlers (problem+json), then the router

Observability sits outside the problem layer so a 500 is counted and logged
with its status, and every response, including the ones the outer layers
produce, carries the request id; a cached response is logged and counted
under its route like any other. It is one layer rather than two
(``RequestContextMiddleware`` + ``TelemetryMiddleware``, which apps may still
use separately) because each ASGI layer costs a call and a ``send`` wrapper
per request; see docs/benchmarks.md.

Rate limiting sits inside observability (a 429 carries the request id, is
logged and counted) and outside the HTTP cache, so a response served from the
cache still spends the client's budget: caching must not turn a limited
endpoint into an unlimited one. A ``by_user`` key reads the user when the
limiter decides, so a user set by the application's own middleware (inside
it) is not seen yet and such requests are keyed by address; see
docs/ratelimit.md.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Unpack

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.middleware import Middleware

from tenfold._components import Component, ComponentGroup
from tenfold._settings import Settings
from tenfold.cache import PROBLEMS as CACHE_PROBLEMS
from tenfold.cache import (
    Cache,
    CacheMiddleware,
    CacheResponseStore,
    HttpCacheMiddleware,
    LocalResponseStore,
)
from tenfold.db import ConsistencyMiddleware, Database
from tenfold.health import HealthRegistry, InFlightMiddleware, Lifecycle, health_router
from tenfold.idempotency import PROBLEMS as IDEMPOTENCY_PROBLEMS
from tenfold.idempotency import IdempotencyComponent
from tenfold.observability import (
    Metrics,
    ObservabilityMiddleware,
    Tracing,
    configure_logging,
    flush_logs,
    get_logger,
    metrics_route,
    setup_tracing,
)
from tenfold.ratelimit import PROBLEMS as RATELIMIT_PROBLEMS
from tenfold.ratelimit import (
    LimiterBackend,
    RateLimitComponent,
    RateLimitMiddleware,
    RateLimits,
)
from tenfold.resilience import PROBLEMS as RESILIENCE_PROBLEMS
from tenfold.resilience import ExternalClient, QuotaTracker, UpstreamOverrides, UpstreamRegistry
from tenfold.web import ProblemEntry, ProblemMiddleware, ProblemRegistry, install_problem_handlers

__all__ = ["Platform", "PlatformDep", "create_app", "get_platform"]

_log = get_logger("tenfold.app")
_NO_NATIVE_TELEMETRY = {"tracing": False, "metrics": False, "logs": False}


@dataclass(eq=False)
class Platform:
    """Everything one application instance owns. Lives at ``app.state.tenfold``."""

    settings: Settings
    metrics: Metrics | None
    health: HealthRegistry
    lifecycle: Lifecycle
    db: Database
    cache: Cache
    #: The rate limiter's backend (``LeasedBackend`` in lease mode): for manual ``hit``s and
    #: ``ConnectionLimiter``s.
    ratelimit: LimiterBackend
    #: Idempotency defaults (``config``) and the store of ``idempotency_key()`` routes.
    idempotency: IdempotencyComponent
    #: Outbound clients by provider; make them with ``upstream()``.
    upstreams: UpstreamRegistry
    tracing: Tracing = field(repr=False)
    components: ComponentGroup = field(repr=False)

    def upstream(
        self,
        name: str,
        *,
        base_url: str = "",
        quota: QuotaTracker | bool | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **overrides: Unpack[UpstreamOverrides],
    ) -> ExternalClient:
        """A client for provider ``name`` with TENFOLD_UPSTREAM__* policy, closed at shutdown.

        ``overrides`` replace settings for this provider (``retry_attempts=1``);
        see ``UpstreamRegistry.client``.
        """
        return self.upstreams.client(
            name, base_url=base_url, quota=quota, headers=headers, transport=transport, **overrides
        )


def get_platform(request: Request) -> Platform:
    """FastAPI dependency: the ``Platform`` of the app serving this request."""
    return request.app.state.tenfold  # type: ignore[no-any-return]


PlatformDep = Annotated[Platform, Depends(get_platform)]


def create_app(
    settings: Settings | None = None,
    *,
    routers: Sequence[APIRouter] = (),
    components: Sequence[Component] = (),
    middleware: Sequence[Middleware] = (),
    rate_limits: RateLimits | None = None,
    problems: Mapping[type[BaseException], ProblemEntry] | None = None,
    on_startup: Sequence[Callable[[Platform], Awaitable[None]]] = (),
    title: str | None = None,
    version: str = "0.1.0",
    configure_logs: bool = True,
    fastapi_options: dict[str, Any] | None = None,
) -> FastAPI:
    """Build the application.

    ``settings`` defaults to ``Settings.load()`` (environment and ``.env``), so
    a bad value fails here, before the server binds. ``components`` are the
    application's own parts; they start after tenfold's (database first) and
    stop before them. ``on_startup`` hooks run once everything has started and
    receive the ``Platform``, e.g. to create tables in the embedded profile.
    ``rate_limits`` adds code-defined policies to those of TENFOLD_RATELIMIT__*
    (one scope defined in both is a ``ConfigurationError``). ``problems`` maps
    the application's own exceptions to problem+json (``tenfold.web.Problem``);
    its entries override tenfold's.
    """
    settings = settings if settings is not None else Settings.load()
    obs = settings.observability
    if configure_logs:
        configure_logging(obs, console=_wants_console(settings))

    metrics = Metrics(namespace="tenfold") if obs.metrics_enabled else None
    health = HealthRegistry(settings.health)
    lifecycle = Lifecycle()
    db = Database(
        settings.db, metrics=metrics, health=health, cursor_secret=settings.app.cursor_secret
    )
    cache = Cache(settings.cache, settings.redis, metrics=metrics, health=health)
    probes = health_router(health, lifecycle)
    ratelimit = RateLimitComponent(
        settings.ratelimit, settings.redis, metrics=metrics, health=health
    )
    # Probes and scrapes are never limited: a 429 there would take the instance out.
    unlimited = {getattr(r, "path", "") for r in probes.routes} | {obs.metrics_path}
    registry = ProblemRegistry(
        CACHE_PROBLEMS,
        IDEMPOTENCY_PROBLEMS,
        RATELIMIT_PROBLEMS,
        RESILIENCE_PROBLEMS,
        problems or {},
    )
    limiter = _rate_limiter(ratelimit, rate_limits, unlimited, registry)
    idempotency = IdempotencyComponent(settings.idempotency, settings.redis)
    upstreams = UpstreamRegistry(settings.upstream, metrics=metrics, redis=settings.redis)
    app = FastAPI(
        title=title or settings.app.name,
        version=version,
        debug=False,  # a debug traceback page must never reach a client
        lifespan=_lifespan(on_startup),
        middleware=_middleware_stack(
            settings, metrics, lifecycle, cache, limiter, middleware, registry
        ),
        # tenfold traces with its own provider (TENFOLD_OBSERVABILITY__*) and counts requests
        # itself; FastAPI's native OpenTelemetry would add a second span per request as soon
        # as anything set a global provider, and checks for one on every request.
        **{"telemetry": _NO_NATIVE_TELEMETRY, **(fastapi_options or {})},
    )
    # Tracing starts first and stops last so it sees every other component's work.
    tracing = setup_tracing(app, obs, engines=db.engines)
    group = ComponentGroup([tracing, db, cache, ratelimit, idempotency, upstreams, *components])
    app.state.tenfold = Platform(
        settings=settings,
        metrics=metrics,
        health=health,
        lifecycle=lifecycle,
        db=db,
        cache=cache,
        ratelimit=ratelimit.backend,
        idempotency=idempotency,
        upstreams=upstreams,
        tracing=tracing,
        components=group,
    )
    install_problem_handlers(app, registry)
    app.include_router(probes)
    if metrics is not None:
        app.router.routes.append(metrics_route(metrics, path=obs.metrics_path))
    for router in routers:
        app.include_router(router)
    return app


def _lifespan(
    on_startup: Sequence[Callable[[Platform], Awaitable[None]]],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform: Platform = app.state.tenfold
        settings, lifecycle, group = platform.settings, platform.lifecycle, platform.components
        await group.start()
        for hook in on_startup:
            await hook(platform)
        if settings.app.gc_freeze:
            _freeze_startup_heap()
        _log.info(
            "app_started", app=settings.app.name, profile=settings.profile, components=group.names
        )
        restore_signal = _drain_on_sigterm(lifecycle, settings.health.drain_delay)
        try:
            yield
        finally:
            restore_signal()
            lifecycle.begin_drain()
            drained = await lifecycle.wait_drained(settings.health.drain_timeout)
            try:
                await group.stop()
            finally:
                if settings.app.gc_freeze:
                    gc.unfreeze()  # a process that builds another app (tests) collects as usual
                _log.info("app_stopped", app=settings.app.name, drained=drained)
                # uvicorn re-raises SIGTERM after shutdown, so atexit never runs.
                flush_logs()

    return lifespan


def _middleware_stack(
    settings: Settings,
    metrics: Metrics | None,
    lifecycle: Lifecycle,
    cache: Cache,
    limiter: Middleware,
    extra: Sequence[Middleware],
    problems: ProblemRegistry,
) -> list[Middleware]:
    access_log = settings.observability.access_log
    return [
        Middleware(ObservabilityMiddleware, metrics=metrics, access_log=access_log),
        Middleware(ProblemMiddleware, problems=problems),
        Middleware(InFlightMiddleware, lifecycle=lifecycle),
        Middleware(
            ConsistencyMiddleware,
            header=settings.db.consistency_header,
            cookie=settings.db.consistency_cookie,
        ),
        limiter,
        # Responses of routes marked with cache_response(); a hit skips routing and validation.
        Middleware(
            HttpCacheMiddleware, store=CacheResponseStore(cache), local=LocalResponseStore()
        ),
        Middleware(CacheMiddleware, cache=cache),
        *extra,
    ]


def _rate_limiter(
    component: RateLimitComponent,
    code: RateLimits | None,
    unlimited: set[str],
    problems: ProblemRegistry,
) -> Middleware:
    return Middleware(
        RateLimitMiddleware,
        exempt=unlimited,
        problems=problems,
        backend=component.backend,
        stats=component.stats,
        **component.policies(code),
    )


def _freeze_startup_heap() -> None:
    """Collect once, then freeze: the startup heap (modules, functions, routes, pools)
    lives as long as the process, yet every full collection would walk it. Measured on the
    full-stack benchmark: gen-2 pauses of 50-90 ms, the p99 of a server awaiting Redis."""
    gc.collect()
    gc.freeze()


def _wants_console(settings: Settings) -> bool:
    fmt = settings.observability.log_format
    if fmt == "auto":
        return settings.profile == "embedded" and settings.app.environment == "development"
    return fmt == "console"


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
