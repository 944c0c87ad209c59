"""How code finds its ``Cache``: FastAPI dependency, ASGI middleware, context variable.

There is no process-wide default cache. A ``@cached`` function uses, in order:

1. the cache it was bound to: ``@cached(..., cache=c)``, ``fn.bind(c)`` or
   ``c.bind(fn)`` (explicit, for scripts, workers and libraries);
2. the *current* cache of this context: ``with use_cache(c):`` in scripts and
   tests, or, per request, ``CacheMiddleware`` (which takes the app's cache
   from the app's platform);
3. else it raises ``ConfigurationError`` saying how to fix it.

The context variable is reset on exit, so nothing leaks between requests,
tests or apps sharing a process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tenfold._errors import ConfigurationError
from tenfold.cache._cache import Cache

__all__ = ["CacheDep", "CacheMiddleware", "current_cache", "get_cache", "use_cache"]

_current: ContextVar[Cache | None] = ContextVar("tenfold_cache", default=None)


def current_cache() -> Cache | None:
    """The cache made current by ``use_cache`` or ``CacheMiddleware``, if any."""
    return _current.get()


@contextmanager
def use_cache(cache: Cache) -> Iterator[Cache]:
    """Make ``cache`` current for ``@cached`` functions called inside the block."""
    token = _current.set(cache)
    try:
        yield cache
    finally:
        _current.reset(token)


def _app_cache(app: Any) -> Cache | None:
    from tenfold._platform import find_on

    return find_on(app, Cache)


async def get_cache(request: Request) -> Cache:
    """FastAPI dependency: the ``Cache`` of the app serving this request (``async``: a
    plain ``def`` dependency would run on FastAPI's thread pool)."""
    cache = _app_cache(request.app)
    if cache is None:
        raise ConfigurationError(
            "this app's platform has no cache: build it with tenfold.create_app()",
            setting="TENFOLD_CACHE",
        )
    return cache


#: ``cache: CacheDep`` in a route or dependency gets the app's cache.
CacheDep = Annotated[Cache, Depends(get_cache)]


class CacheMiddleware:
    """Plain ASGI: makes the app's cache (or ``cache``) current while a request is served.

    No ``send`` wrapper: it costs one context variable set and reset per request.
    """

    def __init__(self, app: ASGIApp, *, cache: Cache | None = None) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cache = self.cache
        if cache is None:
            cache = _app_cache(scope.get("app"))
            if cache is None:
                await self.app(scope, receive, send)
                return
        token = _current.set(cache)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
