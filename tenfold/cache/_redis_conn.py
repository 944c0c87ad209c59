"""Redis connection plumbing for the cache: the in-flight bound, pub/sub, the waiter notifier.

``Slots`` bounds the commands a backend has in flight. Its fast path is a sync
counter decrement: redis-py's BlockingConnectionPool does the same job with a
Condition and a timeout per command, ~13 µs, a fifth of a loopback GET.

A ``RedisSubscription`` owns one connection that never retries or reconnects:
redis-py would otherwise reconnect and resubscribe on its own, and the
messages published in between would be lost without anyone knowing. Instead
any error, and silence with no answer to a PING within ``health_interval``
seconds, raises ``CacheUnavailable``; the caller subscribes again and treats
the gap as "missed everything" (the cache clears or bypasses L1).

``Notifier`` keeps one such subscription on the wake-up channel per backend
and resolves the futures of ``wait_for`` callers when their key's name is
published.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import redis.asyncio as aioredis

from tenfold._redis import REDIS_ERRORS
from tenfold.cache._errors import CacheUnavailable

__all__ = ["Notifier", "RedisSubscription", "Slots"]


class Slots:
    """A counting bound with a sync fast path: ``take()`` costs no await while slots are free."""

    def __init__(self, size: int, timeout: float) -> None:
        self.free = size
        self.timeout = timeout
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take(self) -> bool:
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def wait(self, what: str) -> None:
        """Wait for a slot handed over by ``give()``, at most ``timeout`` seconds."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await asyncio.wait_for(future, self.timeout)
        except BaseException as exc:
            if future.done() and not future.cancelled():
                self.give()  # a slot reached us just as we gave up: pass it on
            elif future in self._waiters:
                self._waiters.remove(future)
            if isinstance(exc, TimeoutError):
                raise CacheUnavailable(
                    f"redis {what}: no free connection within {self.timeout} s"
                ) from exc
            raise

    def give(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)  # the slot passes straight to this waiter
                return
        self.free += 1


class RedisSubscription:
    """Messages on ``channel`` from ``ready()`` on; raises CacheUnavailable when lost."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[aioredis.Redis]],
        channel: str,
        health_interval: float = 1.0,
    ) -> None:
        self.channel = channel
        self.health_interval = health_interval
        self._connect = connect
        self._client: aioredis.Redis | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self._lock = asyncio.Lock()
        self._ping_sent: float | None = None
        self._lost: str | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "lost" if self._lost else "live"
        return f"<RedisSubscription {self.channel!r} {state}>"

    async def ready(self) -> None:
        """Connect and subscribe (once); returns when Redis has confirmed the subscription."""
        if self._lost is not None:
            raise CacheUnavailable(f"redis subscription to {self.channel!r} lost: {self._lost}")
        if self._closed:
            raise CacheUnavailable(f"redis subscription to {self.channel!r} is closed")
        if self._pubsub is not None:
            return
        async with self._lock:
            if self._pubsub is None:
                await self._subscribe()

    async def _subscribe(self) -> None:
        try:
            self._client = await self._connect()
            pubsub = self._client.pubsub()
            await pubsub.subscribe(self.channel)
            confirmed = await pubsub.get_message(timeout=max(self.health_interval, 1.0))
        except REDIS_ERRORS as exc:
            await self._lose(f"{type(exc).__name__}: {exc}")
            raise CacheUnavailable(f"redis SUBSCRIBE {self.channel!r} failed: {exc}") from exc
        if confirmed is None or confirmed["type"] != "subscribe":
            await self._lose("no confirmation of SUBSCRIBE")
            raise CacheUnavailable(f"redis did not confirm SUBSCRIBE {self.channel!r}")
        self._pubsub = pubsub

    def __aiter__(self) -> RedisSubscription:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        await self.ready()
        assert self._pubsub is not None
        try:
            return await self._next_message(self._pubsub)
        except REDIS_ERRORS as exc:
            await self._lose(f"{type(exc).__name__}: {exc}")
            raise CacheUnavailable(f"redis subscription to {self.channel!r} lost: {exc}") from exc
        except asyncio.CancelledError:
            # A read cut short leaves the connection mid-reply; redis-py would reconnect it
            # silently on the next read. Never read from it again.
            self._lost = "cancelled mid-read"
            raise

    async def _next_message(self, pubsub: aioredis.client.PubSub) -> bytes:
        loop = asyncio.get_running_loop()
        while True:
            message = await pubsub.get_message(timeout=self.health_interval)
            if message is None:
                # Silence: prove the connection is alive. A blackholed socket never errors.
                if self._ping_sent is None:
                    self._ping_sent = loop.time()
                    await pubsub.ping()
                elif loop.time() - self._ping_sent >= self.health_interval:
                    await self._lose("no answer to PING")
                    raise CacheUnavailable(
                        f"redis subscription to {self.channel!r} lost: no answer to PING "
                        f"within {self.health_interval} s"
                    )
                continue
            kind = message["type"]
            if kind == "pong":
                self._ping_sent = None
            elif kind == "message":
                return message["data"]

    async def _lose(self, reason: str) -> None:
        self._lost = reason
        await self._close_connection()

    async def _close_connection(self) -> None:
        client, pubsub = self._client, self._pubsub
        self._client = self._pubsub = None
        # Closing a dead connection can only fail in ways we no longer care about.
        with contextlib.suppress(*REDIS_ERRORS):
            if pubsub is not None:
                await pubsub.aclose()
        with contextlib.suppress(*REDIS_ERRORS):
            if client is not None:
                await client.aclose()

    async def aclose(self) -> None:
        """Unsubscribe and close the connection; iteration then stops."""
        self._closed = True
        await self._close_connection()


class Notifier:
    """Wakes ``wait_for`` callers when their entry's name arrives on the wake-up channel."""

    def __init__(self, make_subscription: Callable[[], RedisSubscription]) -> None:
        self._make_subscription = make_subscription
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._subscription: RedisSubscription | None = None
        self._listener: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def waiter(self, name: str) -> AsyncIterator[asyncio.Future[None]]:
        """A future resolved when ``name`` is published (or failed if the channel is lost)."""
        await self._listening()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, set()).add(future)
        try:
            yield future
        finally:
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a loss the caller did not wait for is not news
            waiters = self._waiters.get(name)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[name]

    async def _listening(self) -> None:
        if self._listener is not None and not self._listener.done():
            return
        async with self._lock:
            if self._listener is not None and not self._listener.done():
                return
            subscription = self._make_subscription()
            await subscription.ready()
            self._subscription = subscription
            self._listener = asyncio.create_task(self._listen(subscription))

    async def _listen(self, subscription: RedisSubscription) -> None:
        try:
            async for message in subscription:
                name = message.decode("utf-8", "replace")
                for future in self._waiters.pop(name, ()):
                    if not future.done():
                        future.set_result(None)
        except CacheUnavailable as exc:
            self._fail_waiters(str(exc))
        finally:
            await subscription.aclose()

    def _fail_waiters(self, reason: str) -> None:
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(CacheUnavailable(reason))

    async def aclose(self) -> None:
        """Stop listening; anyone still waiting gets CacheUnavailable."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self._subscription is not None:
            await self._subscription.aclose()
        self._fail_waiters("the cache backend was closed")
