"""The ``cache`` extension: the app's two-level ``Cache`` from ``TENFOLD_CACHE__*``."""

from __future__ import annotations

from tenfold._extension import Build, Extension
from tenfold.cache._binding import CacheMiddleware
from tenfold.cache._cache import Cache
from tenfold.cache._errors import PROBLEMS
from tenfold.cache._settings import CacheSettings
from tenfold.web import Slot

__all__ = ["CacheExtension"]


class CacheExtension(Extension):
    """``platform.get(Cache)``: L1 in process, L2 in the Redis of ``TENFOLD_REDIS__*`` if set.

    Its readiness check (``cache.redis``, not critical) and metrics come with it,
    and ``CacheMiddleware`` (``Slot.APPLICATION``) makes it current for ``@cached``
    functions called while a request is served.
    """

    name = "cache"
    settings_model = CacheSettings

    def build(self, build: Build) -> None:
        build.problems(PROBLEMS)
        cache = Cache(
            build.section,
            build.settings.redis,
            metrics=build.metrics,
            health=build.health,
            hub=build.redis,
        )
        build.provide(cache, name="cache")
        build.component(cache)
        build.middleware(Slot.APPLICATION, CacheMiddleware, cache=cache)
