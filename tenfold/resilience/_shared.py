"""Circuit-breaker opens and closes shared across instances through Redis pub/sub.

Only transitions travel, never the call windows::

    breaker X opens here       -> SET <prefix>X <origin> PX <open ms>, PUBLISH <prefix>events
    its probes close it here   -> DEL <prefix>X,                        PUBLISH <prefix>events
    a message from elsewhere   -> every local breaker X follows it (open for the ms left, or closed)
    (re)subscribed             -> PTTL <prefix>X for every local X: an open one is followed

Each write is one Lua script (state and message together, on X's slot); a
classic PUBLISH reaches every node of a Cluster, so the subscriber may sit on
any node. Messages carry the *milliseconds left*, not a deadline, and the key
expires on Redis's own clock: no two hosts' wall clocks are ever compared.

Breakers never wait for Redis. A transition is queued (``announce``) and a
writer task sends it; the process's one pub/sub connection (the hub's
``PubSub``) delivers the others' messages straight into the local breakers,
so a call through a breaker reads only its own attributes. Each time the
subscription becomes live (first, and after any reconnection) the open
breakers are read back: what was published meanwhile was missed. Redis
errors are logged and counted (``redis_errors``), never raised to a caller:
without Redis every breaker keeps working on local state.

Ordering: Redis orders the writes of all instances on one channel. A message
about X that arrives while this instance's own later transition of X is still
unwritten or not yet seen back on the channel is ignored, since that
transition comes after it and will reach everyone. So all instances end on
the last transition Redis saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from tenfold._bus import Subscription
from tenfold._settings import RedisSettings
from tenfold.observability import get_logger
from tenfold.redis import REDIS_ERRORS, RedisHub, split_hub_options

if TYPE_CHECKING:
    from tenfold.resilience._breaker import CircuitBreaker

__all__ = ["RedisBreakerState"]

_log = get_logger("tenfold.resilience")

# KEYS state | ARGV origin, open ms (0: closed), channel, message
_ANNOUNCE = """
if ARGV[2] == '0' then redis.call('DEL', KEYS[1])
else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return redis.call('PUBLISH', ARGV[3], ARGV[4])
"""

#: An outbox entry that asks for the key to be read, not written (a breaker registered late).
_READ = -1


class RedisBreakerState:
    """Opens and closes of same-named breakers, shared by every instance on one Redis.

    Pass it as ``CircuitBreaker(..., shared=state)``; start it with the app
    (``start()``/``stop()``, or ``async with``): it is a platform Component.
    ``prefix`` names the keys (``<prefix><breaker name>``) and the channel
    (``<prefix>events``). ``start()`` waits up to ``start_timeout`` seconds for
    the first subscription and the read of the open breakers, so an instance
    starting late refuses calls to an upstream the others already gave up on.
    It runs on a ``RedisHub`` (the platform's); the hubs ``from_url``,
    ``from_cluster`` and ``from_settings`` make are closed by ``stop()``.
    """

    def __init__(
        self,
        hub: RedisHub,
        *,
        prefix: str = "tf:cb:",
        name: str = "breaker-state",
        start_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        owns_hub: bool = False,
    ) -> None:
        self.hub = hub
        self._client = hub.client
        self.cluster = hub.cluster
        self.prefix = prefix
        self.channel = prefix + "events"
        self.name = name
        self.origin = uuid.uuid4().hex[:16]
        self.start_timeout = start_timeout
        self._clock = clock
        self._owns_hub = owns_hub
        self._breakers: dict[str, weakref.WeakSet[CircuitBreaker]] = {}
        #: The local copy: breaker name -> when (on ``clock``) the shared open period ends.
        self.open_until: dict[str, float] = {}
        # name -> _READ, or (seq, deadline or None): the latest unwritten transition of name.
        self._outbox: dict[str, Any] = {}
        self._writing: str | None = None
        # name -> seq of our last transition not yet seen back on the channel.
        self._unconfirmed: dict[str, int] = {}
        self._seq = itertools.count(1)
        self._wake = asyncio.Event()
        self._attempted = asyncio.Event()
        self._subscription: Subscription | None = None
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False
        self.live = False
        self._outage = False
        self._read_back = False
        #: Redis failures (writes, reads, lost subscriptions), messages applied, subscriptions.
        self.redis_errors = 0
        self.applied = 0
        self.connections = 0

    def __repr__(self) -> str:
        return (
            f"<RedisBreakerState {self.prefix!r} {'live' if self.live else 'down'}"
            f" open={sorted(self.open_until)}>"
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBreakerState:
        """Shared state on a hub of its own for the standalone server at ``url``.

        ``options`` are ``__init__``'s and ``RedisHub.from_url``'s (``health_interval``,
        ``socket_timeout``...); ``reconnect_backoff`` caps the wait between reconnects.
        """
        hub_options, own = split_hub_options(options)
        return cls(RedisHub.from_url(url, **hub_options), owns_hub=True, **own)

    @classmethod
    def from_cluster(cls, nodes: Sequence[str], **options: Any) -> RedisBreakerState:
        """Shared state on a hub of its own for the Cluster reachable through ``nodes``."""
        hub_options, own = split_hub_options(options)
        return cls(RedisHub.from_cluster(nodes, **hub_options), owns_hub=True, **own)

    @classmethod
    def from_settings(cls, settings: RedisSettings, **options: Any) -> RedisBreakerState:
        """The shared state on a hub of its own for the Redis ``TENFOLD_REDIS__*`` describes."""
        hub_options, own = split_hub_options(options)
        return cls(RedisHub.from_settings(settings, **hub_options), owns_hub=True, **own)

    # -- the breakers' side (sync: never waits for Redis) ---------------------

    def register(self, breaker: CircuitBreaker) -> None:
        """Let ``breaker`` follow the shared state of its name (``CircuitBreaker`` calls this)."""
        self._breakers.setdefault(breaker.name, weakref.WeakSet()).add(breaker)
        left = self.open_until.get(breaker.name, 0.0) - self._clock()
        if left > 0:
            breaker._apply_shared(left)
        if self.live and breaker.name not in self._outbox:
            self._outbox[breaker.name] = _READ
            self._wake.set()

    def announce(self, breaker: CircuitBreaker, open_for: float | None) -> None:
        """``breaker`` opened for ``open_for`` seconds (None: closed); tell the others."""
        name, seq = breaker.name, next(self._seq)
        if open_for is None:
            self.open_until.pop(name, None)
            deadline = None
        else:
            deadline = self.open_until[name] = self._clock() + open_for
        self._outbox[name] = (seq, deadline)
        self._unconfirmed[name] = seq
        self._wake.set()
        for sibling in list(self._breakers.get(name, ())):
            if sibling is not breaker:
                sibling._apply_shared(open_for)

    # -- lifetime --------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe and start writing; returns once live (breakers read) or after
        ``start_timeout``."""
        if self._writer is not None:
            return
        self._stopping = False
        self._attempted.clear()
        self._writer = asyncio.create_task(
            self._write(), name=f"tenfold.resilience {self.name} writer"
        )
        self._subscription = self.hub.pubsub.listen(self.channel, self)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), self.start_timeout)

    async def stop(self) -> None:
        """Stop listening and writing (unwritten transitions are dropped)."""
        self._stopping = True
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        self.live = False
        if self._owns_hub:
            await self.hub.aclose()

    async def __aenter__(self) -> RedisBreakerState:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- Redis side ------------------------------------------------------------

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _failed(self, what: str, exc: BaseException) -> None:
        self.redis_errors += 1
        _log.warning("circuit_shared_redis_error", what=what, error=f"{type(exc).__name__}: {exc}")

    async def _write(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                name = next(iter(self._outbox))
                entry = self._outbox.pop(name)
                self._writing = name
                try:
                    await self.hub.initialize()
                    if entry == _READ:
                        await self._read([name])
                    else:
                        await self._send(name, *entry)
                except REDIS_ERRORS as exc:
                    self._failed("write" if entry != _READ else "read", exc)
                    if entry != _READ and self._unconfirmed.get(name) == entry[0]:
                        del self._unconfirmed[name]  # no echo will come
                finally:
                    self._writing = None
            if self._read_back:  # the read-back after a (re)subscription is done
                self._read_back = False
                self.live = True
                self._attempted.set()

    async def _send(self, name: str, seq: int, deadline: float | None) -> None:
        ms = 0
        if deadline is not None:
            ms = math.ceil((deadline - self._clock()) * 1000)
            if ms <= 0:  # the open period ended before Redis could be told
                self._unconfirmed.pop(name, None)
                return
        message = orjson.dumps({"o": self.origin, "s": seq, "n": name, "ms": ms})
        await self._client.eval(  # type: ignore[misc]
            _ANNOUNCE, 1, self._key(name), self.origin, ms, self.channel, message
        )

    async def _read(self, names: Sequence[str]) -> None:
        """Follow the open breakers among ``names`` (a missing key changes nothing)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.pttl(self._key(name))
            replies = await pipe.execute()
        for name, ms in zip(names, replies, strict=True):
            if ms > 0 and not self._pending(name):
                self._apply(name, ms / 1000)

    def _pending(self, name: str) -> bool:
        """Whether our own transition of ``name`` is later than anything Redis sent so far."""
        return name in self._unconfirmed

    # -- the listener's side (the hub's pub/sub calls these) ---------------------

    def on_live(self, channel: str) -> None:
        """Subscribed (again): messages may have been missed, so read every breaker back."""
        self.connections += 1
        # Our transitions written while we were not listening will never echo back.
        for name in [n for n in self._unconfirmed if n not in self._outbox and n != self._writing]:
            del self._unconfirmed[name]
        for name in self._breakers:
            self._outbox.setdefault(name, _READ)
        self._read_back = True
        if self._outage:
            self._outage = False
            _log.info("circuit_shared_reconnected", channel=self.channel)
        self._wake.set()

    def on_message(self, channel: str, data: bytes) -> None:
        self._receive(data)

    def on_lost(self, channel: str, reason: str) -> None:
        self._attempted.set()  # start() waits for the first attempt, not for success
        if self._outage:
            self.redis_errors += 1  # still down: counted, logged once per outage
        else:
            self._outage = True
            self.redis_errors += 1
            _log.warning("circuit_shared_redis_error", what="subscribe", error=reason)
        self.live = False

    def _receive(self, raw: bytes) -> None:
        try:
            message = orjson.loads(raw)
            origin, seq, name, ms = message["o"], message["s"], message["n"], message["ms"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            _log.warning("circuit_shared_unreadable", channel=self.channel)
            return
        if origin == self.origin:
            if self._unconfirmed.get(name) == seq:
                del self._unconfirmed[name]
            return
        if not self._pending(name):
            self._apply(name, ms / 1000 if ms > 0 else None)

    def _apply(self, name: str, open_for: float | None) -> None:
        self.applied += 1
        if open_for is None:
            self.open_until.pop(name, None)
        else:
            self.open_until[name] = self._clock() + open_for
        for breaker in list(self._breakers.get(name, ())):
            breaker._apply_shared(open_for)
