"""``LeaderLease``: at most one leader per name across processes, with a fencing token.

A lease is a Redis key that expires. Three Lua scripts, each one atomic call:

    acquire   SET {tf:leader:<name>} <owner> NX PX <ttl> (or the key is already this
              owner's) and INCR {tf:leader:<name>}:fence, returning the new token
    renew     PEXPIRE the key only while it still holds this owner (compare-and-expire)
    release   DEL the key only while it still holds this owner (compare-and-delete)

Both keys share one hash tag, so they live in one Cluster slot and one script
can touch both. The fence counter never expires: each tenure's token is larger
than every earlier one, so a resource that remembers the largest token it has
seen can refuse a deposed leader's late writes.

The holder judges its own tenure on its monotonic ``clock``: ``is_leader`` turns
False once ``sent + ttl - margin`` has passed, where ``sent`` is when the
acquire (or the last successful renew) was sent. Redis cannot expire the key
before ``sent + ttl``, so a process that was paused (GC, SIGSTOP, a slow
host) stops believing it leads before anyone else can be elected. Any Redis
error also means "not leader": the holder steps down at once rather than
guessing whether its key survived.

``run()`` (and ``leading()``, its background-task form) tries to acquire every
``renew_every`` seconds, renews while leading and calls ``on_elected(token)``
and ``on_lost()``; Redis errors never escape it. When a leader dies, its key
expires within ``ttl`` and the next attempt of another process wins: failover
takes at most ``ttl + renew_every``. See docs/architecture.md ("Leader election").
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from tenfold._errors import ConfigurationError
from tenfold.observability import get_logger
from tenfold.redis._clients import RedisUnavailable

if TYPE_CHECKING:
    from tenfold.redis._hub import RedisHub

__all__ = ["LeaderLease"]

_log = get_logger("tenfold.redis")

_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


_ACQUIRE_SHA, _RENEW_SHA, _RELEASE_SHA = _sha(_ACQUIRE), _sha(_RENEW), _sha(_RELEASE)

OnElected = Callable[[int], Awaitable[None] | None]
OnLost = Callable[[], Awaitable[None] | None]


class LeaderLease:
    """The leader lease ``name`` on ``hub``, held by this object when it wins.

    ``ttl`` (seconds) is how long the key outlives its last renewal;
    ``renew_every`` (default ``ttl / 3``) how often ``run()`` renews or retries;
    ``margin`` (default ``ttl / 10``) how much earlier than Redis the holder
    gives up, to absorb clock-rate drift. ``owner`` names this holder in the key
    (default ``<pid>:<random>``); ``clock`` and ``sleep`` are injectable.
    """

    def __init__(
        self,
        hub: RedisHub,
        name: str,
        *,
        ttl: float = 10.0,
        renew_every: float | None = None,
        margin: float | None = None,
        owner: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        renew_every = ttl / 3 if renew_every is None else renew_every
        margin = ttl / 10 if margin is None else margin
        if ttl <= 0 or renew_every <= 0 or margin < 0:
            raise ConfigurationError(f"leader lease {name!r}: ttl and renew_every must be > 0")
        if renew_every >= ttl - margin:
            # A holder that renews no more often than its tenure lasts loses it between renewals.
            raise ConfigurationError(
                f"leader lease {name!r}: renew_every ({renew_every}) must be shorter than "
                f"ttl - margin ({ttl - margin})"
            )
        self.name = name
        self.ttl = ttl
        self.renew_every = renew_every
        self.margin = margin
        self.owner = owner or f"{os.getpid()}:{uuid.uuid4().hex}"
        self.key = f"{{tf:leader:{name}}}"
        self.fence_key = f"{self.key}:fence"
        self._hub = hub
        self._clock = clock
        self._sleep = sleep
        self._token: int | None = None
        self._deadline = 0.0

    def __repr__(self) -> str:
        state = f"leader, token {self._token}" if self.is_leader else "follower"
        return f"<LeaderLease {self.name!r} {state}>"

    @property
    def is_leader(self) -> bool:
        """Whether this holder leads now: it won, and its local deadline has not passed."""
        return self._token is not None and self._clock() < self._deadline

    @property
    def token(self) -> int | None:
        """The fencing token of the current tenure; None when not leading."""
        return self._token if self.is_leader else None

    async def _eval(self, script: str, sha: str, args: list[object]) -> int:
        reply = await self._hub.scripts.eval([self.key, self.fence_key], args, script, sha)
        return int(reply or 0)

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def acquire(self) -> int | None:
        """Try once to lead: the new tenure's token, or None if another holder leads.

        A holder whose key is still in Redis starts a new tenure (a larger token).
        ``RedisUnavailable`` if Redis fails (this holder no longer leads).
        """
        sent = self._clock()
        try:
            token = await self._eval(_ACQUIRE, _ACQUIRE_SHA, [self.owner, self._ttl_ms()])
        except RedisUnavailable:
            self._token = None
            raise
        if not token:
            self._token = None
            return None
        self._token, self._deadline = token, sent + self.ttl - self.margin
        return token

    async def renew(self) -> bool:
        """Extend the lease by ``ttl`` if this holder still leads; False (stepped down) if not.

        ``RedisUnavailable`` if Redis fails (this holder no longer leads).
        """
        if not self.is_leader:
            self._token = None
            return False
        sent = self._clock()
        try:
            renewed = await self._eval(_RENEW, _RENEW_SHA, [self.owner, self._ttl_ms()])
        except RedisUnavailable:
            self._token = None
            raise
        if not renewed or not self.is_leader:
            self._token = None
            return False
        self._deadline = sent + self.ttl - self.margin
        return True

    async def release(self) -> bool:
        """Give the lease up now (only if Redis still holds it for this holder): whether it did.

        ``RedisUnavailable`` if Redis fails; the key then expires within ``ttl``.
        """
        self._token = None
        return bool(await self._eval(_RELEASE, _RELEASE_SHA, [self.owner]))

    # -- the loop ---------------------------------------------------------------

    async def run(self, on_elected: OnElected | None = None, on_lost: OnLost | None = None) -> None:
        """Campaign forever: acquire when free, renew while leading, call the hooks.

        ``on_elected(token)`` runs on each new tenure, ``on_lost()`` when one ends
        (a failed renewal, a lapsed local deadline, a Redis error). Redis errors
        never escape; an error raised by a hook does, after the lease is released.
        Cancelling ``run()`` releases the lease (without calling ``on_lost``).
        """
        leading: int | None = None
        try:
            while True:
                token = await self._step()
                if leading is not None and token != leading:
                    leading = None
                    _log.info("leader_lost", lease=self.name)
                    await _call(on_lost)
                if token is not None and leading is None:
                    leading = token
                    _log.info("leader_elected", lease=self.name, token=token)
                    await _call(on_elected, token)
                await self._sleep(self.renew_every)
        finally:
            if leading is not None or self._token is not None:
                await self._release_quietly()

    async def _step(self) -> int | None:
        """One round: renew if leading, else try to acquire; the token now held, if any."""
        try:
            if self.is_leader:
                # Bounded by the tenure left: a renewal that lands later is worthless.
                async with asyncio.timeout(max(0.0, self._deadline - self._clock())):
                    if await self.renew():
                        return self._token
            self._token = None
            return await self.acquire()
        except (RedisUnavailable, TimeoutError) as exc:
            self._token = None
            _log.warning("leader_redis_unavailable", lease=self.name, error=str(exc))
            return None

    async def _release_quietly(self) -> None:
        try:
            # Waiting past ttl is pointless (the key has expired by then) and would hold up
            # a shutdown while Redis hangs.
            async with asyncio.timeout(self.ttl):
                await self.release()
        except (RedisUnavailable, TimeoutError) as exc:
            _log.warning("leader_release_failed", lease=self.name, error=str(exc))

    @contextlib.asynccontextmanager
    async def leading(
        self, on_elected: OnElected | None = None, on_lost: OnLost | None = None
    ) -> AsyncIterator[LeaderLease]:
        """``run()`` in a background task for the body of the ``async with``; stops and releases.

        Inside, ``lease.is_leader`` and ``lease.token`` say whether this process leads now.
        """
        task = asyncio.create_task(self.run(on_elected, on_lost), name=f"leader:{self.name}")
        try:
            yield self
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we were cancelled too: pass it on


async def _call(hook: Callable[..., Awaitable[None] | None] | None, *args: object) -> None:
    if hook is None:
        return
    result = hook(*args)
    if inspect.isawaitable(result):
        await result
