"""The ``ratelimit`` extension: the limiter backend and its middleware, from settings and code."""

from __future__ import annotations

from tenfold._extension import Build, Extension
from tenfold.health import PROBE_PATHS
from tenfold.ratelimit._backend import LimiterBackend
from tenfold.ratelimit._component import RateLimitComponent, RateLimits
from tenfold.ratelimit._errors import PROBLEMS
from tenfold.ratelimit._middleware import RateLimitMiddleware
from tenfold.ratelimit._settings import RateLimitSettings
from tenfold.web import Slot

__all__ = ["RateLimitExtension"]


class RateLimitExtension(Extension):
    """``RateLimitMiddleware`` in ``Slot.RATE_LIMIT`` with the policies of
    ``TENFOLD_RATELIMIT__*`` plus ``rate_limits`` (or ``create_app(rate_limits=...)``).

    ``platform.get(LimiterBackend)`` (also ``platform.ratelimit``) is the backend,
    for manual ``hit``\\ s and WebSocket limits. The probes and ``/metrics`` are never
    limited: a 429 there would take the instance out of its load balancer.
    """

    name = "ratelimit"
    settings_model = RateLimitSettings

    def __init__(self, rate_limits: RateLimits | None = None) -> None:
        self.rate_limits = rate_limits

    def build(self, build: Build) -> None:
        build.problems(PROBLEMS)
        component = RateLimitComponent(
            build.section,
            build.settings.redis,
            metrics=build.metrics,
            health=build.health,
            hub=build.redis,
        )
        build.provide(component)
        build.provide(component.backend, kind=LimiterBackend, name="ratelimit")
        build.component(component)
        code = self.rate_limits if self.rate_limits is not None else build.option("rate_limits")
        exempt = {*PROBE_PATHS, build.settings.observability.metrics_path}
        build.middleware(
            Slot.RATE_LIMIT,
            RateLimitMiddleware,
            exempt=exempt,
            backend=component.backend,
            stats=component.stats,
            index=build.route_index,
            problems=build.problem_registry,
            **component.policies(code),
        )
