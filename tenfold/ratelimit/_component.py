"""The rate limiter of an app: its backend, its policies and their metrics, from settings.

``RateLimitComponent(settings.ratelimit, settings.redis)`` builds the backend
when it is constructed (the middleware needs it when the app is built; no
connection is made until the first decision), registers the decision
metrics on ``start()`` and closes the backend on ``stop()``. ``policies()``
merges the settings' policies with code-defined ``RateLimits``; a scope
defined in both is a ``ConfigurationError`` rather than a silent choice.

``create_app`` installs ``RateLimitMiddleware`` with these policies and
``exempt`` set to the platform's own endpoints (``/health``, ``/ready``,
``/metrics``), so an app-wide policy cannot turn a load balancer's probes or
a scraper into 429s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tenfold._errors import ConfigurationError
from tenfold._settings import RedisSettings
from tenfold.ratelimit._backend import LimiterBackend
from tenfold.ratelimit._keys import KeyFunc, by_api_key, by_ip, by_user
from tenfold.ratelimit._lease import LeasedBackend
from tenfold.ratelimit._memory import MemoryBackend
from tenfold.ratelimit._policy import Policy
from tenfold.ratelimit._redis import RedisBackend
from tenfold.ratelimit._settings import RateLimitSettings
from tenfold.ratelimit._stats import RateLimitStats
from tenfold.redis import RedisHub

if TYPE_CHECKING:
    from tenfold.health import HealthRegistry
    from tenfold.observability import Metrics

#: The readiness check of a Redis-backed limiter.
HEALTH_CHECK = "ratelimit.redis"

__all__ = ["RateLimitComponent", "RateLimits"]


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Code-defined policies for ``create_app(rate_limits=...)``, beside the settings' ones.

    ``default`` applies to every HTTP request, ``prefixes`` to paths at or under
    a prefix, ``routes`` to route templates (``"/items/{item_id}"``); endpoints
    marked with ``@rate_limit`` need nothing here.
    """

    default: Policy | None = None
    prefixes: Mapping[str, Policy] = field(default_factory=dict)
    routes: Mapping[str, Policy] = field(default_factory=dict)


class RateLimitComponent:
    """The app's ``LimiterBackend`` and ``RateLimitStats`` (a tenfold Component ``ratelimit``).

    ``backend`` replaces the one the settings describe (tests, custom stores);
    it is still wrapped in ``LeasedBackend`` in lease mode and closed on
    ``stop()``. ``hub`` is the process's ``RedisHub`` (the platform's); without
    one a Redis backend makes its own.
    """

    name = "ratelimit"

    def __init__(
        self,
        settings: RateLimitSettings | None = None,
        redis: RedisSettings | None = None,
        *,
        metrics: Metrics | None = None,
        health: HealthRegistry | None = None,
        backend: LimiterBackend | None = None,
        hub: RedisHub | None = None,
    ) -> None:
        self.settings = settings if settings is not None else RateLimitSettings()
        self.redis_settings = redis if redis is not None else RedisSettings()
        self._hub = hub
        self._metrics = metrics
        self._health = health
        self.stats = RateLimitStats(getattr(metrics, "namespace", "tenfold"))
        shared = backend if backend is not None else self._shared_backend()
        self._redis = shared if isinstance(shared, RedisBackend) else None
        s = self.settings
        self.backend: LimiterBackend = (
            LeasedBackend(shared, lease_size=s.lease_size, max_age=s.lease_max_age)
            if s.mode == "lease"
            else shared
        )
        self._registered = False

    def __repr__(self) -> str:
        return f"<RateLimitComponent {self.backend!r}>"

    def _shared_backend(self) -> LimiterBackend:
        kind = self.settings.backend
        if kind == "auto":
            kind = "redis" if self.redis_settings.enabled else "memory"
        if kind == "memory":
            return MemoryBackend()
        if not self.redis_settings.enabled:
            raise ConfigurationError(
                "TENFOLD_RATELIMIT__BACKEND=redis needs TENFOLD_REDIS__URL or "
                "TENFOLD_REDIS__CLUSTER_NODES",
                setting="TENFOLD_RATELIMIT__BACKEND",
            )
        if self._hub is not None:
            return RedisBackend(self._hub, prefix=self.settings.prefix)
        return RedisBackend.from_settings(self.redis_settings, prefix=self.settings.prefix)

    def key(self) -> KeyFunc:
        """The key function ``TENFOLD_RATELIMIT__KEY`` names.

        The address it keys on is ``scope["client"]``, which the app's HTTP layer has
        already resolved behind ``TENFOLD_HTTP__TRUSTED_PROXIES``.
        """
        s = self.settings
        if s.key == "user":
            return by_user()
        if s.key == "api_key":
            return by_api_key(s.api_key_header)
        return by_ip()

    def policies(self, code: RateLimits | None = None) -> dict[str, Any]:
        """``RateLimitMiddleware``'s ``default``, ``prefixes`` and ``routes``: settings + code."""
        code = code if code is not None else RateLimits()
        s = self.settings
        key = self.key()
        default = code.default
        if s.default:
            if default is not None:
                raise _both("TENFOLD_RATELIMIT__DEFAULT", "default")
            default = Policy("default", s.default, key=key, fail_open=s.fail_open)
        prefixes = dict(code.prefixes)
        for path, rules in s.prefixes.items():
            if path.rstrip("/") in {p.rstrip("/") for p in prefixes}:
                raise _both("TENFOLD_RATELIMIT__PREFIXES", f"prefixes[{path!r}]")
            prefixes[path] = Policy(path, rules, key=key, fail_open=s.fail_open)
        return {"default": default, "prefixes": prefixes, "routes": dict(code.routes)}

    async def start(self) -> None:
        if self._registered:
            return
        self._registered = True
        if self._metrics is not None:
            self._metrics.register_collector(self.stats)
        if self._health is not None and self._redis is not None:
            # Not critical: every instance shares this Redis, and each policy already says
            # what happens without it (fail-open or fail-closed).
            self._health.register(HEALTH_CHECK, self._check, critical=False)

    async def stop(self) -> None:
        try:
            await self.backend.aclose()
        finally:
            if self._registered:
                self._registered = False
                if self._metrics is not None:
                    self._metrics.unregister_collector(self.stats)
                if self._health is not None and self._redis is not None:
                    self._health.unregister(HEALTH_CHECK)

    async def _check(self) -> dict[str, Any]:
        """``ratelimit.redis``: the limiter's Redis answers; failing = degraded."""
        assert self._redis is not None
        await self._redis.ping()
        return {"backend": self._redis.name, "mode": self.settings.mode}


def _both(setting: str, argument: str) -> ConfigurationError:
    return ConfigurationError(
        f"{setting} and create_app(rate_limits=RateLimits({argument}=...)) both define the "
        "same policy; keep one of them",
        setting=setting,
    )
