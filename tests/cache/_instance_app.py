"""One app instance for the cross-instance invalidation test (run by uvicorn, 3 at a time).

"The database" is a plain Redis key ``<prefix>src:<name>`` read by the loader;
``POST /write`` changes it and invalidates the cached copy, like a real write
path would. ``GET /applied`` shows which invalidations this instance applied.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI

from tenfold import CacheSettings, RedisSettings
from tenfold.cache import NamespacePolicy
from tenfold.cache._cache import Cache

URL = os.environ["TF_CACHE_TEST_REDIS"]
PREFIX = os.environ["TF_CACHE_TEST_PREFIX"]

settings = CacheSettings(warm_check_interval=None).with_namespaces(
    profile=NamespacePolicy(ttl=3600, stale_ttl=300)
)
cache = Cache(settings, RedisSettings(url=URL))
source = aioredis.Redis.from_url(URL)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await cache.start()
    yield
    await cache.stop()
    await source.aclose()


app = FastAPI(lifespan=lifespan)


def _key(name: str) -> str:
    return cache.key("profile", PREFIX, name)


@app.get("/value/{name}")
async def value(name: str) -> dict[str, Any]:
    async def load() -> str | None:
        raw = await source.get(f"{PREFIX}src:{name}")
        return None if raw is None else raw.decode()

    return {"value": await cache.get_or_load(_key(name), load)}


@app.post("/write/{name}/{new}")
async def write(name: str, new: str) -> dict[str, Any]:
    await source.set(f"{PREFIX}src:{name}", new)
    await cache.delete(_key(name))
    return {"origin": cache.origin, "seq": cache.last_published}


@app.get("/applied")
async def applied() -> dict[str, Any]:
    bus = cache.invalidation
    assert bus is not None
    return {"origin": cache.origin, "live": bus.live, "recent": list(bus.recent)}
