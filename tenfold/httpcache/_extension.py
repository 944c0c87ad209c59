"""The ``httpcache`` extension: ``HttpCacheMiddleware`` in ``Slot.HTTP_CACHE``."""

from __future__ import annotations

from tenfold._extension import Build, Extension
from tenfold.cache._cache import Cache
from tenfold.httpcache._middleware import HttpCacheMiddleware
from tenfold.httpcache._settings import HttpCacheSettings
from tenfold.httpcache._store import CacheResponseStore, LocalResponseStore
from tenfold.web import Slot

__all__ = ["HttpCacheExtension"]


class HttpCacheExtension(Extension):
    """Cached responses of ``cache_response`` routes, in the app's ``Cache`` (its Redis too),
    with an in-process tier in front. Inside the rate limiter (a hit still spends the client's
    budget) and inside the authentication slot (a principal is never served a shared entry)."""

    name = "httpcache"
    settings_model = HttpCacheSettings
    requires = ("cache",)

    def build(self, build: Build) -> None:
        settings: HttpCacheSettings = build.section
        if not settings.enabled:
            return
        build.middleware(
            Slot.HTTP_CACHE,
            HttpCacheMiddleware,
            store=CacheResponseStore(build.get(Cache)),
            local=LocalResponseStore(),
            namespace=settings.namespace,
            credential_headers=tuple(settings.credential_headers),
            session_cookies=tuple(settings.session_cookies),
            max_body_bytes=settings.max_body_bytes,
            index=build.route_index,
        )
