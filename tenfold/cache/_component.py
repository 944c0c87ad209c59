"""The cache's lifecycle: build the levels, connect L2, listen for invalidations, warm.

``start()`` never fails because Redis is down: the cache starts degraded
(L1 + loader), the breaker and the invalidation listener find Redis when it
comes back, and the non-critical health check ``cache.redis`` makes ``/ready``
report ``degraded`` meanwhile.

Warmers (``@cache.warmer``) run at start, and again whenever L2 is found
empty: a marker key written after warming is checked every
``warm_check_interval`` seconds and when the breaker closes after an outage
(a restarted Redis is usually an empty one). Only the instance that wins the
marker's lock re-warms.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from tenfold._settings import RedisSettings
from tenfold.cache._backend import CacheBackend
from tenfold.cache._errors import CacheUnavailable
from tenfold.cache._flight import Filler
from tenfold.cache._invalidation import InvalidationBus
from tenfold.cache._l1 import LocalLRU
from tenfold.cache._levels import Levels, Namespace
from tenfold.cache._metrics import CacheStats
from tenfold.cache._serde import MsgpackSerializer, OrjsonSerializer, PickleSerializer, Serializer
from tenfold.cache._settings import CacheSettings
from tenfold.observability import get_logger
from tenfold.redis import RedisHub
from tenfold.resilience._breaker import CircuitBreaker, CountWindow
from tenfold.resilience._events import StateChanged

if TYPE_CHECKING:
    from tenfold.cache._cache import Cache
    from tenfold.health import HealthRegistry
    from tenfold.observability import Metrics

__all__ = ["WARM_MARKER", "CacheComponent", "Warmer"]

F = TypeVar("F", bound=Callable[..., Any])
Warmer = Callable[["Cache"], Awaitable[None]]
WARM_MARKER = "tf:warm|{marker}"
HEALTH_CHECK = "cache.redis"
_log = get_logger("tenfold.cache")


def make_serializer(settings: CacheSettings) -> Serializer:
    threshold = settings.compress_threshold
    if settings.serializer == "msgpack":
        return MsgpackSerializer(compress_threshold=threshold)
    if settings.serializer == "pickle":
        return PickleSerializer(compress_threshold=threshold)
    return OrjsonSerializer(compress_threshold=threshold)


class CacheComponent:
    """Construction and lifecycle of ``Cache`` (a tenfold Component named ``cache``)."""

    name = "cache"

    def __init__(
        self,
        settings: CacheSettings | None = None,
        redis: RedisSettings | None = None,
        *,
        metrics: Metrics | None = None,
        health: HealthRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        backend: CacheBackend | None = None,
        hub: RedisHub | None = None,
    ) -> None:
        """``backend`` replaces the one ``redis`` describes (tests, custom stores); the cache
        closes it on ``stop()``. ``hub`` is the process's ``RedisHub`` (the platform's):
        L2 and the invalidation channel run on it; without one the cache makes its own.
        ``clock``/``wall_clock``/``rng`` are for tests."""
        self.settings = settings if settings is not None else CacheSettings()
        self.redis_settings = redis if redis is not None else RedisSettings()
        s = self.settings
        self._metrics = metrics
        self._health = health
        self.stats = CacheStats(getattr(metrics, "namespace", "tenfold"), gauges=self._gauges)
        # N consecutive failures open it: the last N calls all failed. One trial when
        # half-open; no per-call events (a hook sees only state changes).
        self._breaker = CircuitBreaker(
            "cache.redis",
            failure_rate=1.0,
            window=CountWindow(s.breaker_failures),
            minimum_calls=s.breaker_failures,
            open_for=s.breaker_reset,
            half_open_probes=1,
            slow_call_seconds=float("inf"),
            clock=clock,
            hooks=(self._breaker_changed,),
        )
        self._levels = Levels(
            l1=LocalLRU(max_entries=s.l1_max_entries, max_bytes=s.l1_max_bytes, clock=clock),
            serializer=make_serializer(s),
            breaker=self._breaker,
            stats=self.stats,
            clock=clock,
            wall_clock=wall_clock,
            xfetch_beta=s.xfetch_beta,
            degraded_l1_ttl=s.degraded_l1_ttl,
        )
        self._filler = Filler(self._levels, lock_ttl=s.lock_ttl, lock_wait=s.lock_wait, rng=rng)
        self._backend = backend
        self._hub = hub
        self._namespaces: dict[str, Namespace] = {}
        self.origin = uuid.uuid4().hex[:12]
        self.invalidation: InvalidationBus | None = None
        self.last_published = 0
        self._warmers: list[Warmer] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._replayer: asyncio.Task[Any] | None = None
        self._recovered = asyncio.Event()
        self._registered = False

    def __repr__(self) -> str:
        backend = self._levels.backend
        mode = "L1 only" if backend is None else backend.name
        return f"<Cache {mode} l1={len(self._levels.l1)} breaker={self._breaker.state}>"

    @property
    def backend(self) -> CacheBackend | None:
        """The L2 backend once started (None: L1 only, the embedded profile)."""
        return self._levels.backend

    @property
    def l1(self) -> LocalLRU:
        return self._levels.l1

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Connect L2 (if configured), listen for invalidations, register checks, warm."""
        backend = self._backend
        if backend is None and self.redis_settings.enabled:
            backend = self._make_backend()
        self._levels.backend = backend
        if backend is not None:
            self._levels.channel_live = False
            self.invalidation = InvalidationBus(
                self._levels,
                backend,
                channel=self.settings.invalidation_channel,
                origin=self.origin,
            )
            await self.invalidation.start(wait=max(1.0, 10 * self.settings.redis_timeout))
        self._register()
        await self.warm()
        if backend is not None and self.settings.warm_check_interval is not None:
            self._spawn(self._watch_l2(self.settings.warm_check_interval), "warm-check")
        _log.info("cache_started", backend=backend.name if backend else "l1-only")

    def _make_backend(self) -> CacheBackend:
        from tenfold.cache._redis import RedisBackend

        r, s = self.redis_settings, self.settings
        # Each command is bounded by redis_timeout, connecting included: a blackholed server
        # must not cost each request a full connect timeout.
        if self._hub is not None:
            return RedisBackend(self._hub, timeout=s.redis_timeout)
        options: dict[str, Any] = {
            "socket_timeout": s.redis_timeout,
            "connect_timeout": min(r.connect_timeout or s.redis_timeout, 5 * s.redis_timeout),
            "max_connections": r.max_connections,
            "health_interval": r.health_interval,
        }
        if r.cluster_nodes:
            return RedisBackend.from_cluster(r.cluster_nodes, **options)
        assert r.url is not None
        return RedisBackend.from_url(r.url.get_secret_value(), **options)

    async def stop(self) -> None:
        """Stop background work, close L2; L1 keeps working (L1-only) afterwards."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._filler.stop()
        if self.invalidation is not None:
            await self.invalidation.stop()
            self.invalidation = None
        backend, self._levels.backend = self._levels.backend, None
        self._levels.channel_live = True
        self._levels.pending.clear()
        if backend is not None:
            await backend.aclose()
        self._unregister()

    def _register(self) -> None:
        if self._registered:
            return
        self._registered = True
        if self._metrics is not None:
            self._metrics.register_collector(self.stats)
        if self._health is not None and self._levels.backend is not None:
            self._health.register(HEALTH_CHECK, self._check, critical=False)

    def _unregister(self) -> None:
        if not self._registered:
            return
        self._registered = False
        if self._metrics is not None:
            self._metrics.unregister_collector(self.stats)
        if self._health is not None:
            self._health.unregister(HEALTH_CHECK)

    async def _check(self) -> dict[str, Any]:
        """``cache.redis``: Redis answers and invalidations flow; failing = degraded."""
        backend = self._levels.backend
        if backend is None:
            return {"backend": "l1-only"}
        await backend.ping()
        if not self._levels.channel_live:
            raise CacheUnavailable("invalidation channel down: L1 entries are capped")
        if self._levels.pending:
            raise CacheUnavailable(f"{len(self._levels.pending)} invalidation(s) not yet replayed")
        return {"backend": backend.name, "breaker": self._breaker.state}

    def _gauges(self) -> dict[str, float]:
        levels = self._levels
        return {
            "evictions": levels.l1.evictions,
            "l1_entries": len(levels.l1),
            "l1_bytes": levels.l1.nbytes,
            "breaker_open": 1.0 if self._breaker.is_open else 0.0,
            "invalidation_connected": 1.0 if levels.channel_live else 0.0,
        }

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"tenfold.cache {what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _breaker_changed(self, event: object) -> None:
        if isinstance(event, StateChanged):
            if event.current == "open":
                _log.warning("cache_redis_breaker_open", failures=self.settings.breaker_failures)
            elif event.current == "closed":
                _log.info("cache_redis_recovered")
                self._recovered.set()

    # -- warming --------------------------------------------------------------

    def warmer(self, fn: F) -> F:
        """Register ``async fn(cache)`` to run at start and whenever L2 is found empty."""
        self._warmers.append(fn)
        return fn

    async def warm(self) -> None:
        """Run every warmer now (a failing one is logged, not raised), then mark L2 warm."""
        for warmer in self._warmers:
            try:
                await warmer(self)  # type: ignore[arg-type]
            except Exception as exc:  # one bad warmer must not stop the others or the app
                _log.error("cache_warmer_failed", warmer=repr(warmer), exc_info=exc)
        levels = self._levels
        if levels.backend is not None:
            with contextlib.suppress(CacheUnavailable):
                await levels.l2(levels.backend.set, WARM_MARKER, b"1", None)

    async def _watch_l2(self, interval: float) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._recovered.wait(), interval)
            self._recovered.clear()
            await self._rewarm_if_empty()

    async def _rewarm_if_empty(self) -> bool:
        """If the warm marker is gone (L2 emptied), warm once across instances; True if so."""
        levels = self._levels
        backend = levels.backend
        if backend is None or not levels.l2_usable():
            return False
        try:
            if await levels.l2(backend.get, WARM_MARKER) is not None:
                return False
            token = await levels.l2(backend.try_lock, WARM_MARKER, self.settings.lock_ttl)
        except CacheUnavailable:
            return False
        if token is None:
            return False  # another instance is warming
        try:
            _log.info("cache_l2_empty_rewarming")
            await self.warm()
        finally:
            with contextlib.suppress(CacheUnavailable):
                await levels.l2(backend.unlock, WARM_MARKER, token)
        return True
