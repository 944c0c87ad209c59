"""WebSocket helpers: a cap on open connections per key, and per-message rate limits.

``ConnectionLimiter`` counts connections per key (``ip:…``, ``user:…``) as a
set of connection ids, each with an expiry ``ttl`` seconds ahead that the
holder refreshes while the connection lives. A crashed instance stops
refreshing, so its connections age out after ``ttl`` instead of holding the
key's slots forever. On Redis the set is a ZSET (score = expiry, Redis
``TIME``), changed by one Lua call, with ``PEXPIRE``; in memory, a dict.

    limiter = ConnectionLimiter(backend, cap=5)          # 5 connections per IP
    messages = Rule("100/minute")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        async with limiter.slot(by_ip()(websocket.scope)) as admitted:
            if not admitted:
                await websocket.close(code=1008)          # policy violation
                return
            await websocket.accept()
            async for text in websocket.iter_text():
                if not (await backend.hit(key, messages)).allowed:
                    await websocket.close(code=1008)
                    return
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

from tenfold.ratelimit._backend import LimiterBackend
from tenfold.ratelimit._redis import RedisBackend
from tenfold.redis import hash_tag

__all__ = ["ConnectionLimiter"]

# KEYS set | ARGV op ('acquire' | 'refresh' | 'release' | 'count'), id, ttl_us, cap
# -> {done (1/0), connections counted after the op}
_SLOTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local op, id, ttl, cap = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now))
local ok = 1
if op == 'release' then
  redis.call('ZREM', KEYS[1], id)
elseif op == 'count' then
  ok = 1
elseif op == 'refresh' then
  ok = redis.call('ZADD', KEYS[1], 'XX', 'CH', string.format('%.17g', now + ttl), id)
elseif redis.call('ZCARD', KEYS[1]) < cap then
  redis.call('ZADD', KEYS[1], string.format('%.17g', now + ttl), id)
else
  ok = 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000) + 1)
end
return {ok, redis.call('ZCARD', KEYS[1])}
"""
_SLOTS_SHA = hashlib.sha1(_SLOTS.encode(), usedforsecurity=False).hexdigest()


class ConnectionLimiter:
    """At most ``cap`` open connections per key, on ``backend``'s store.

    With a ``RedisBackend`` the count is shared by every instance (stored at
    ``<prefix>{<key>}:conn``); with any other backend it is this process's.
    ``ttl`` is how long a connection is counted without a refresh; ``slot()``
    refreshes every ``ttl / 3`` while the connection lives. Redis failures
    raise ``RateLimiterUnavailable``. ``clock`` (the memory count's time) and
    ``sleep`` (the refresher's wait) are injectable so tests control time.
    """

    def __init__(
        self,
        backend: LimiterBackend,
        *,
        cap: int,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if cap < 1:
            raise ValueError(f"a connection cap must be at least 1, got {cap}")
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl}")
        self.backend = backend
        self.cap = cap
        self.ttl = ttl
        self._clock = clock
        self._sleep = sleep
        self._local: dict[str, dict[str, float]] = {}

    def __repr__(self) -> str:
        return f"<ConnectionLimiter cap={self.cap} ttl={self.ttl:g} on {self.backend!r}>"

    async def acquire(self, key: str) -> str | None:
        """A connection id if ``key`` has a free slot, else ``None``."""
        conn = uuid.uuid4().hex
        return conn if await self._op(key, "acquire", conn) else None

    async def refresh(self, key: str, conn: str) -> bool:
        """Push ``conn``'s expiry ``ttl`` ahead; False if it had already expired."""
        return await self._op(key, "refresh", conn)

    async def release(self, key: str, conn: str) -> None:
        """Stop counting ``conn`` (on disconnect)."""
        await self._op(key, "release", conn)

    async def count(self, key: str) -> int:
        """Connections counted for ``key`` now."""
        if isinstance(self.backend, RedisBackend):
            reply = await self._redis(key, "count", "")
            return int(reply[1])
        return len(self._live(key))

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[bool]:
        """Hold a slot for the block (yields False when ``key`` is at the cap), refreshed."""
        conn = await self.acquire(key)
        if conn is None:
            yield False
            return
        refresher = asyncio.create_task(self._keep(key, conn))
        try:
            yield True
        finally:
            refresher.cancel()
            with suppress(asyncio.CancelledError):
                await refresher
            await self.release(key, conn)

    async def _keep(self, key: str, conn: str) -> None:
        while True:
            await self._sleep(self.ttl / 3)
            await self.refresh(key, conn)

    async def _op(self, key: str, op: str, conn: str) -> bool:
        if isinstance(self.backend, RedisBackend):
            return int((await self._redis(key, op, conn))[0]) == 1
        live = self._live(key)
        if op == "release":
            live.pop(conn, None)
            if not live:
                self._local.pop(key, None)
            return True
        if op == "refresh" and conn not in live:
            return False
        if op == "acquire" and len(live) >= self.cap:
            return False
        live[conn] = self._clock() + self.ttl
        return True

    def _live(self, key: str) -> dict[str, float]:
        now = self._clock()
        live = {c: exp for c, exp in self._local.get(key, {}).items() if exp > now}
        self._local[key] = live
        return live

    async def _redis(self, key: str, op: str, conn: str) -> list[int]:
        backend = self.backend
        assert isinstance(backend, RedisBackend)
        tagged = key if hash_tag(key) is not None else "{" + key + "}"
        name = f"{backend.prefix}{tagged}:conn"
        args = [op, conn, repr(self.ttl * 1e6), self.cap]
        reply: list[int] = await backend._eval([name], args, _SLOTS, _SLOTS_SHA)
        return reply
