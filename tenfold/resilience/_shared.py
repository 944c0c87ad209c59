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
writer task sends it; a listener task applies the others' messages straight
into the local breakers, so a call through a breaker reads only its own
attributes. Redis errors are logged and counted (``redis_errors``), never
raised to a caller: without Redis every breaker keeps working on local state.

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
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from tenfold._redis import REDIS_ERRORS, cluster_client, from_settings, standalone_client
from tenfold._settings import RedisSettings
from tenfold.observability import get_logger

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


class _Lost(Exception):
    """The subscription went silent and did not answer a PING in time."""


class RedisBreakerState:
    """Opens and closes of same-named breakers, shared by every instance on one Redis.

    Pass it as ``CircuitBreaker(..., shared=state)``; start it with the app
    (``start()``/``stop()``, or ``async with``): it is a platform Component.
    ``prefix`` names the keys (``<prefix><breaker name>``) and the channel
    (``<prefix>events``). ``start()`` waits up to ``start_timeout`` seconds for
    the first subscription and the read of the open breakers, so an instance
    starting late refuses calls to an upstream the others already gave up on.
    A subscription that is silent for ``health_interval`` seconds is PINGed,
    and dropped if the PING goes unanswered as long again. The client given
    to ``__init__`` stays the caller's; the ones ``from_url``, ``from_cluster``
    and ``from_settings`` build are closed by ``stop()``.
    """

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        prefix: str = "tf:cb:",
        name: str = "breaker-state",
        start_timeout: float = 1.0,
        health_interval: float = 1.0,
        reconnect_backoff: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self.cluster = isinstance(client, RedisCluster)
        self.prefix = prefix
        self.channel = prefix + "events"
        self.name = name
        self.origin = uuid.uuid4().hex[:16]
        self.start_timeout = start_timeout
        self.health_interval = health_interval
        self.reconnect_backoff = reconnect_backoff
        self._clock = clock
        self._owns_client = owns_client
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
        self._init_lock = asyncio.Lock()
        self._initialized = not self.cluster
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.live = False
        self._outage = False
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
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = 0.25,
        connect_timeout: float = 1.0,
        max_connections: int = 8,
        **options: Any,
    ) -> RedisBreakerState:
        """Shared state on the standalone server at ``url``; ``options`` are ``__init__``'s."""
        client = standalone_client(url, socket_timeout, connect_timeout, max_connections)
        return cls(client, owns_client=True, **options)

    @classmethod
    def from_cluster(
        cls,
        nodes: Sequence[str],
        *,
        socket_timeout: float = 0.25,
        connect_timeout: float = 1.0,
        max_connections: int = 8,
        **options: Any,
    ) -> RedisBreakerState:
        """Shared state on the Redis Cluster reachable through any of ``nodes`` (``host:port``)."""
        client = cluster_client(nodes, socket_timeout, connect_timeout, max_connections)
        return cls(client, owns_client=True, **options)

    @classmethod
    def from_settings(cls, settings: RedisSettings, **options: Any) -> RedisBreakerState:
        """The shared state on the Redis ``TENFOLD_REDIS__*`` describes."""
        return from_settings(
            settings,
            what="the shared circuit-breaker state",
            from_url=cls.from_url,
            from_cluster=cls.from_cluster,
            **options,
        )

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
        """Subscribe and start writing; returns once subscribed or after ``start_timeout``."""
        if self._tasks:
            return
        self._attempted.clear()
        self._tasks = [
            asyncio.create_task(self._listen(), name=f"tenfold.resilience {self.name} listener"),
            asyncio.create_task(self._write(), name=f"tenfold.resilience {self.name} writer"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), self.start_timeout)

    async def stop(self) -> None:
        """Stop listening and writing (unwritten transitions are dropped)."""
        tasks, self._tasks = self._tasks, []
        self._stopping = True
        for task in tasks:
            # A cancellation that lands inside redis-py's own read timeout can be swallowed
            # (the task then reads on): cancel until the task has ended.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.1)
            with contextlib.suppress(asyncio.CancelledError):
                task.result()
        self._stopping = False
        self.live = False
        if self._owns_client:
            # A connection that fails while closing leaves nothing to recover or report.
            with contextlib.suppress(*REDIS_ERRORS):
                await self._client.aclose()

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

    async def _initialize(self) -> None:
        # redis-py's async RedisCluster breaks connections when commands race its lazy first
        # initialize(); the listener and the writer would, so the first one initializes.
        async with self._init_lock:
            if not self._initialized:
                await self._client.initialize()  # type: ignore[union-attr]
                self._initialized = True

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
                    await self._initialize()
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

    async def _listen(self) -> None:
        failures = 0
        while not self._stopping:
            pubsub = None
            try:
                await self._initialize()
                pubsub = self._client.pubsub()
                await pubsub.subscribe(self.channel)
                failures = 0
                await self._consume(pubsub)
            except (*REDIS_ERRORS, _Lost) as exc:
                failures += 1
                self._went_down(exc)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(*REDIS_ERRORS):
                        await pubsub.aclose()
            # Backoff between reconnects (not a poll for data: nothing is read meanwhile).
            await asyncio.sleep(min(self.reconnect_backoff, 0.05 * 2 ** min(failures, 10)))

    async def _consume(self, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        ping_sent: float | None = None
        while not self._stopping:
            message = await pubsub.get_message(timeout=self.health_interval)
            if message is None:
                # Silence: prove the connection is alive. A blackholed socket never errors.
                if ping_sent is None:
                    ping_sent = loop.time()
                    await pubsub.ping()
                elif loop.time() - ping_sent >= self.health_interval:
                    raise _Lost(f"no answer to PING within {self.health_interval} s")
                continue
            kind = message["type"]
            if kind == "subscribe":
                # The first confirmation, or redis-py reconnected and subscribed again on its
                # own: either way messages may have been missed, so read the keys.
                await self._went_live()
            elif kind == "pong":
                ping_sent = None
            elif kind == "message":
                self._receive(message["data"])

    async def _went_live(self) -> None:
        self.connections += 1
        # Our transitions written while we were not listening will never echo back.
        for name in [n for n in self._unconfirmed if n not in self._outbox and n != self._writing]:
            del self._unconfirmed[name]
        await self._read(list(self._breakers))
        self.live = True
        if self._outage:
            self._outage = False
            _log.info("circuit_shared_reconnected", channel=self.channel)
        self._attempted.set()

    def _went_down(self, exc: BaseException) -> None:
        self._attempted.set()  # start() waits for the first attempt, not for success
        if self._outage:
            self.redis_errors += 1  # still down: counted, logged once per outage
        else:
            self._outage = True
            self._failed("subscribe", exc)
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
