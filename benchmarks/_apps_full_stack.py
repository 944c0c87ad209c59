"""The servers ``bench_full_stack`` loads: one cached JSON GET, ``/items/{item_id}``.

Each ``make_*`` is a uvicorn ``--factory``. The Redis URL comes from
``BENCH_REDIS_URL`` (set by the benchmark; a fresh redis-server per run).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

#: One rule, generous enough that the benchmark is never refused.
GENEROUS = "1000000000/minute"


def _redis_url() -> str:
    return os.environ["BENCH_REDIS_URL"]


def make_starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": int(request.path_params["item_id"]), "name": "widget"})

    return Starlette(routes=[Route("/items/{item_id}", item)])


def make_fastapi() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "widget"}

    return app


def _tenfold(mode: str | None) -> Any:
    """create_app (request id, access log, metrics, problems, rate limit, HTTP cache).

    The rate limit is configured as an application would, through settings
    (``TENFOLD_RATELIMIT__DEFAULT``, ``__MODE``): one app-wide policy per client
    address on Redis, decided for every request, cache hits included, as
    slowapi's middleware decides every request in the peer stack.
    """
    from fastapi import APIRouter

    from tenfold import RedisSettings, Settings, create_app
    from tenfold.httpcache import cache_response

    router = APIRouter()

    @router.get("/items/{item_id}")
    @cache_response(max_age=60)
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "widget"}

    limits: dict[str, Any] = {}
    if mode is not None:
        limits = {"default": [GENEROUS], "mode": mode, "backend": "redis", "fail_open": True}
    settings = Settings.load(redis=RedisSettings(url=_redis_url()), ratelimit=limits)
    return create_app(settings, routers=[router])


def make_tenfold_exact() -> Any:
    """Exact mode: one atomic Redis decision (GCRA) per request."""
    return _tenfold("exact")


def make_tenfold_nolimit() -> Any:
    """create_app with no rate-limit policy: what the limiter's decisions add (opt-in)."""
    return _tenfold(None)


def make_tenfold_lease() -> Any:
    """Local-lease mode with its default (per-rule) lease size over Redis exact mode."""
    return _tenfold("lease")


def make_assembled() -> Any:
    """FastAPI + slowapi (Redis) + fastapi-cache2 (Redis) + instrumentator + correlation id."""
    from asgi_correlation_id import CorrelationIdMiddleware
    from fastapi import FastAPI
    from fastapi_cache import FastAPICache
    from fastapi_cache.backends.redis import RedisBackend
    from fastapi_cache.decorator import cache
    from prometheus_fastapi_instrumentator import Instrumentator
    from redis import asyncio as aioredis
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.middleware import SlowAPIMiddleware
    from slowapi.util import get_remote_address

    url = _redis_url()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        FastAPICache.init(RedisBackend(aioredis.from_url(url)), prefix="fastapi-cache")
        yield

    limiter = Limiter(key_func=get_remote_address, default_limits=[GENEROUS], storage_uri=url)
    app = FastAPI(lifespan=lifespan)
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    app.add_middleware(SlowAPIMiddleware)
    app.add_middleware(CorrelationIdMiddleware)

    @app.get("/items/{item_id}")
    @cache(expire=60)
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "widget"}

    Instrumentator().instrument(app).expose(app)
    return app
