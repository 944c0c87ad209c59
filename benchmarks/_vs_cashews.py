"""The same cached functions built on tenfold and on cashews, for ``bench_cache_vs_cashews``.

Both the benchmark and its peer process (``_vs_cashews_peer``) build them here,
so a key filled in one process is the key read in the other. Every function
takes ``(run, i)``; its key is ``<name>:<run>:<i>`` and, when tagged with the
family ``tag``, its tag is ``<tag>:<run>``. Each library is set up as its own
docs recommend:

* tenfold: one ``Cache`` (L1 + Redis, invalidation channel) and ``@cached``;
  the Redis-only functions' namespaces are kept out of L1.
* cashews: ``setup(url, client_side=True, protocol=2)`` (its L1, kept
  coherent by Redis client tracking in broadcast mode) for every function
  with an L1, a plain ``setup(url)`` for the Redis-only ones,
  ``@cache(ttl=..., key=..., tags=...)``, and ``lock=True`` where a part asks
  for its cross-process stampede guard. ``protected=True`` (its in-process
  single flight) is its default and is kept.

``protocol=2`` because cashews' client-side cache listens for invalidations
the RESP2 way (on a pub/sub channel), and redis-py 8 speaks RESP3 unless told
otherwise: the invalidations then arrive as push messages it never reads.
``cashews-resp3`` is that out-of-the-box setup, kept to show the difference.

Both get the same Redis timeout (cashews' default socket timeout, 1 s) unless
a part says otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from tenfold import CacheSettings, RedisSettings
from tenfold.cache import Cache as TenfoldCache
from tenfold.cache import NamespacePolicy, cached

__all__ = ["LIBRARIES", "CashewsSide", "Loader", "Side", "TenfoldSide", "side", "tag_of"]

Loader = Callable[[str, int], Awaitable[Any]]
HOUR = 3600.0
TIMEOUT = 1.0
LIBRARIES = ("tenfold", "cashews", "cashews-resp3")
#: Functions that read Redis only: tenfold keeps their namespaces out of L1.
REDIS_ONLY = ("l2", "l2tagged")


def tag_of(name: str, run: str) -> str:
    return f"{name}:{run}"


class Side:
    """One library's cache and the functions built on it."""

    label: str

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def function(
        self,
        name: str,
        loader: Loader,
        *,
        tag: str | None = None,
        ttl: float = HOUR,
        lock: bool = False,
    ) -> Callable[[str, int], Awaitable[Any]]:
        """``loader`` cached under ``<name>:<run>:<i>``, tagged ``<tag>:<run>`` when ``tag``
        is given; ``lock`` asks for a cross-process lock."""
        raise NotImplementedError

    async def invalidate(self, tag: str, run: str) -> None:
        """Invalidate the entries tagged ``<tag>:<run>``."""
        raise NotImplementedError


class TenfoldSide(Side):
    label = "tenfold"

    def __init__(self, url: str, *, timeout: float = TIMEOUT) -> None:
        namespaces = {name: NamespacePolicy(ttl=HOUR, l1=False) for name in REDIS_ONLY}
        settings = CacheSettings(
            warm_check_interval=None, redis_timeout=timeout, namespaces=namespaces
        )
        self.cache = TenfoldCache(settings, RedisSettings(url=url))

    async def start(self) -> None:
        await self.cache.start()

    async def stop(self) -> None:
        await self.cache.stop()

    def function(
        self,
        name: str,
        loader: Loader,
        *,
        tag: str | None = None,
        ttl: float = HOUR,
        lock: bool = False,
    ) -> Callable[[str, int], Awaitable[Any]]:
        # Single flight across processes is always on: there is no lock to ask for.
        async def call(run: str, i: int) -> Any:
            return await loader(run, i)

        def tags(run: str, i: int) -> tuple[str, ...]:
            return (tag_of(tag, run),) if tag else ()

        return cached(namespace=name, key=("run", "i"), ttl=ttl, tags=tags, cache=self.cache)(call)

    async def invalidate(self, tag: str, run: str) -> None:
        await self.cache.invalidate_tags(tag_of(tag, run))


class CashewsSide(Side):
    label = "cashews"

    def __init__(self, url: str, *, timeout: float = TIMEOUT, resp2: bool = True) -> None:
        from cashews import Cache

        self.local = Cache(name="client-side")
        protocol = {"protocol": 2} if resp2 else {}
        self.local.setup(url, client_side=True, socket_timeout=timeout, **protocol)
        self.remote = Cache(name="redis")
        self.remote.setup(url, socket_timeout=timeout)
        self._tagged_on: dict[str, Any] = {}

    async def start(self) -> None:
        await self.local.init()
        await self.remote.init()

    async def stop(self) -> None:
        await self.local.close()
        await self.remote.close()

    def function(
        self,
        name: str,
        loader: Loader,
        *,
        tag: str | None = None,
        ttl: float = HOUR,
        lock: bool = False,
    ) -> Callable[[str, int], Awaitable[Any]]:
        cache = self.remote if name in REDIS_ONLY else self.local
        tags = [tag + ":{run}"] if tag else []
        if tag:
            self._tagged_on[tag] = cache  # its tag sets live beside its keys

        async def call(run: str, i: int) -> Any:
            return await loader(run, i)

        decorate = cache(ttl=ttl, key=name + ":{run}:{i}", tags=tags, lock=lock)
        return decorate(call)  # type: ignore[no-any-return]

    async def invalidate(self, tag: str, run: str) -> None:
        await self._tagged_on[tag].delete_tags(tag_of(tag, run))


def side(library: str, url: str, *, timeout: float = TIMEOUT) -> Side:
    """The ``Side`` of ``library`` (one of ``LIBRARIES``) on the Redis at ``url``."""
    if library == "tenfold":
        return TenfoldSide(url, timeout=timeout)
    if library.startswith("cashews"):
        return CashewsSide(url, timeout=timeout, resp2=library != "cashews-resp3")
    raise ValueError(f"unknown library {library!r}; one of {LIBRARIES}")


def counting_loader(raw: aioredis.Redis, seconds: float) -> Loader:
    """A loader taking ``seconds`` that counts its calls in Redis (shared by every process)."""
    import asyncio

    async def load(run: str, i: int) -> dict[str, Any]:
        n = await raw.incr(f"vs:{run}:loads:{i}")
        await asyncio.sleep(seconds)
        return {"i": i, "load": n}

    return load


def versioned_loader(raw: aioredis.Redis) -> Loader:
    """A loader that reads the row's current version: the database, as far as caches know."""

    async def load(run: str, i: int) -> dict[str, Any]:
        return {"i": i, "v": int(await raw.get(f"vs:{run}:db") or 0)}

    return load
