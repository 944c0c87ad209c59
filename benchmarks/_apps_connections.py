"""The app whose Redis connections ``bench_redis_connections`` counts.

It uses every capability that talks to Redis: the data cache (``@cached``, with
its invalidation channel and single-flight wake-ups), the HTTP response cache,
the rate limiter (an app-wide policy from settings), an idempotency key store,
and an upstream client with a tracked quota (its breaker state and quota are
shared through Redis). It sticks to the API every tenfold version of the
comparison has, so the same file is served by the code before and after.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

from tenfold import create_app
from tenfold.cache import cached
from tenfold.idempotency import IdempotentRoute, idempotency_key

try:
    from tenfold.httpcache import cache_response
except ImportError:  # before HTTP response caching had its own package
    from tenfold.cache import cache_response  # type: ignore[attr-defined,no-redef]

router = APIRouter(route_class=IdempotentRoute)


@cached(namespace="profile", key=lambda user: user)
async def profile(user: str) -> dict[str, Any]:
    return {"user": user, "points": len(user)}


@router.get("/profile/{user}")
async def get_profile(user: str) -> dict[str, Any]:
    return await profile(user)


@router.get("/news")
@cache_response(max_age=5)
async def news() -> dict[str, str]:
    return {"headline": "cached"}


@router.post("/orders", dependencies=[Depends(idempotency_key(), scope="function")])
async def order() -> dict[str, bool]:
    return {"ok": True}


async def _clients(platform: Any) -> None:
    # An upstream with a tracked quota: its breaker state and quota live in Redis.
    platform.upstream("provider", base_url="http://127.0.0.1:9", quota=True)


def make_app() -> FastAPI:
    os.environ.setdefault("TENFOLD_RATELIMIT__DEFAULT", "100000/minute")
    return create_app(routers=[router], on_startup=[_clients], configure_logs=False)
