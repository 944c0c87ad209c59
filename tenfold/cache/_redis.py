"""RedisBackend: the L2 contract on Redis standalone or Redis Cluster (redis.asyncio + hiredis).

Names (see ``_keys``): an entry lives at its key; its companions append a
suffix and so share the entry's ``{hash tag}`` and Cluster slot::

    <key>|kv     key version, INCR'd by delete, expires version_ttl after the bump
    <key>|lock   single-flight lock: "<fencing token> <owner>", PX = lock ttl
    <key>|fence  last fencing token issued, expires fence_ttl after the last lock
    <key>|gone:<owner>  an abandoned lock attempt, refused should it still arrive
    tf:tag|{t}   tag version counter (one slot per tag), never expires

A key without a hash tag gets one prepended (``{crc32}key``) so the rule holds
for any string. The guarded fill (check versions + write + notify), lock
(+ fence) and unlock (+ notify) are each one Lua script on the entry's slot.
``set_many`` and ``delete`` are pipelines of plain commands, because Cluster
pipelines refuse EVALSHA; ``delete`` bumps the version before it deletes, so
no stale fill can land in between. Fencing tokens are seeded from Redis
``TIME`` in µs, so they keep increasing even after ``|fence`` expires.

A lock attempt whose reply never came (the command timed out while Redis
was stopped, or the caller was cancelled) may still run once Redis reads
it, taking a lock nobody would release. Each attempt therefore carries an
owner id made here, and an attempt that did not return is *abandoned*: in
the background, retried until Redis answers (or the lock would have
expired anyway), a script deletes the lock if it is that owner's, and
otherwise leaves a ``|gone:<owner>`` marker so that the attempt, if it is
still on its way, is refused.

Waiters (``wait_for``) are woken through one pub/sub channel (``tf:notify``,
message = entry name) that a set/fill publishes to while the key is locked,
and unlock always does; a thousand waiters cost one channel, not a thousand
polls. On Cluster the classic PUBLISH reaches every node, so the subscriber
may sit on any node.

The backend runs on a ``RedisHub`` (the process's one client, in-flight bound
and pub/sub connection); ``from_url``, ``from_cluster`` and ``from_settings``
make a hub of its own. ``timeout`` bounds each command more tightly than the
hub's socket timeout, so a slow Redis costs a cache read at most that long.
Every driver error becomes ``CacheUnavailable`` (``raise ... from exc``).
Commands retry once, without backoff, only on a connection error (a stale
pooled socket after a Redis restart), never on a timeout; the pub/sub
connection never retries on its own, so a lost subscription is always
reported (``on_lost``), never silently resumed with a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import zlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from tenfold._backoff import Backoff
from tenfold._bus import Listener, Subscription
from tenfold._settings import RedisSettings
from tenfold.cache._errors import CacheUnavailable
from tenfold.cache._keys import tag_key
from tenfold.cache._notifier import Notifier
from tenfold.cache._redis_scripts import ABANDON, LOCK, SET_IF, UNLOCK, Script
from tenfold.redis import REDIS_ERRORS, RedisHub, RedisUnavailable, hash_tag, split_hub_options

__all__ = ["RedisBackend"]

NOTIFY_CHANNEL = "tf:notify"


#: Retries of an abandoned lock attempt's release while Redis does not answer.
_ABANDON_BACKOFF = Backoff(base=0.05, max=1.0, jitter="equal")


def _entry(key: str) -> str:
    if hash_tag(key) is not None:
        return key
    return "{%08x}%s" % (zlib.crc32(key.encode("utf-8", "surrogatepass")), key)  # noqa: UP031


def _ms(ttl: float | None) -> int:
    """Milliseconds for PX; 0 means no expiry. Positive TTLs never round down to 0."""
    if ttl is None:
        return 0
    return max(1, math.ceil(ttl * 1000))


def _version(raw: Any) -> int:
    return 0 if raw is None else int(raw)


def _unavailable(what: str, exc: BaseException) -> CacheUnavailable:
    if isinstance(exc, RedisUnavailable):
        return CacheUnavailable(exc.message)
    # The class only: the driver's text names the server's host and port.
    return CacheUnavailable(f"redis {what} failed ({type(exc).__name__})")


class RedisBackend:
    """A ``CacheBackend`` on a ``RedisHub``: the platform's, or one ``from_url``,
    ``from_cluster`` or ``from_settings`` makes (closed with this backend).

    Commands take one of the hub's in-flight slots (callers beyond the bound
    wait up to its ``pool_timeout``, then get ``CacheUnavailable``); ``timeout``
    (None: the hub's socket timeout) bounds each one.
    """

    def __init__(
        self,
        hub: RedisHub,
        *,
        timeout: float | None = None,
        notify_channel: str = NOTIFY_CHANNEL,
        version_ttl: float = 86_400.0,
        fence_ttl: float = 86_400.0,
        owns_hub: bool = False,
    ) -> None:
        self.hub = hub
        self._client = hub.client
        self.cluster = hub.cluster
        self.name = hub.kind
        self.timeout = timeout
        self._slots = hub.slots
        self._owns_hub = owns_hub
        self.notify_channel = notify_channel
        self._version_ms = _ms(version_ttl)
        self._fence_ms = _ms(fence_ttl)
        self._notifier = Notifier(self.listen, notify_channel)
        self._abandoned: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<RedisBackend {self.name}>"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBackend:
        """A backend on a hub of its own for the standalone server at ``url``.

        ``options`` are ``RedisHub.from_url``'s (``socket_timeout``,
        ``connect_timeout``, ``max_connections``, ``pool_timeout``,
        ``health_interval``) and ``__init__``'s.
        """
        hub_options, own = split_hub_options(options)
        return cls(RedisHub.from_url(url, **hub_options), owns_hub=True, **own)

    @classmethod
    def from_cluster(cls, nodes: Sequence[str], **options: Any) -> RedisBackend:
        """A backend on a hub of its own for the Cluster reachable through ``nodes``
        (``host:port``); the options are those of ``from_url``."""
        hub_options, own = split_hub_options(options)
        return cls(RedisHub.from_cluster(nodes, **hub_options), owns_hub=True, **own)

    @classmethod
    def from_settings(cls, settings: RedisSettings, **options: Any) -> RedisBackend:
        """A backend on a hub of its own for the Redis ``TENFOLD_REDIS__*`` describes."""
        hub_options, own = split_hub_options(options)
        return cls(RedisHub.from_settings(settings, **hub_options), owns_hub=True, **own)

    # -- plumbing -------------------------------------------------------------

    async def _call(
        self,
        what: str,
        command: Callable[..., Awaitable[Any]],
        *args: Any,
        on_lost: Callable[[], None] | None = None,
    ) -> Any:
        """``await command(*args)`` within the in-flight bound, driver errors mapped.

        ``on_lost`` runs when the command may have been sent but its reply never
        came (an error, a timeout or a cancellation after the slot was taken).
        """
        slots = self._slots
        try:
            if not slots.take():
                await slots.wait(what)
        except RedisUnavailable as exc:
            raise CacheUnavailable(exc.message) from exc
        try:
            if not self.hub.initialized:
                await self.hub.initialize()
            if self.timeout is None:
                return await command(*args)
            async with asyncio.timeout(self.timeout):
                return await command(*args)
        except REDIS_ERRORS as exc:
            if on_lost is not None:
                on_lost()
            raise _unavailable(what, exc) from exc
        except BaseException:
            if on_lost is not None:
                on_lost()
            raise
        finally:
            slots.give()

    async def _script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self._client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted (or new) node: EVAL runs it and caches it
            return await self._client.eval(script.body, len(keys), *keys, *args)

    async def _pipeline(self, fill: Callable[[Any], None]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            fill(pipe)
            return await pipe.execute()

    async def _mget(self, names: Sequence[str]) -> list[Any]:
        if not names:
            return []
        if self.cluster:
            return await self._client.mget_nonatomic(names)  # type: ignore[union-attr]
        return await self._client.mget(names)

    # -- entries --------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        # _call inlined: this is the L2 hit path.
        slots = self._slots
        if not slots.take():
            try:
                await slots.wait("GET")
            except RedisUnavailable as exc:
                raise CacheUnavailable(exc.message) from exc
        try:
            if not self.hub.initialized:
                await self.hub.initialize()
            if self.timeout is None:
                return await self._client.get(_entry(key))  # type: ignore[no-any-return]
            async with asyncio.timeout(self.timeout):
                return await self._client.get(_entry(key))  # type: ignore[no-any-return]
        except REDIS_ERRORS as exc:
            raise _unavailable("GET", exc) from exc
        finally:
            slots.give()

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._call("MGET", self._mget, [_entry(k) for k in keys])

    async def get_versioned(
        self, key: str, tags: Sequence[str]
    ) -> tuple[bytes | None, int, list[int]]:
        name = _entry(key)

        def fill(pipe: Any) -> None:
            # On Cluster the tags sit on other slots; the pipeline splits by node.
            pipe.get(name).get(name + "|kv")
            for tag in tags:
                pipe.get(tag_key(tag))

        value, kv, *tvs = await self._call("GET", self._pipeline, fill)
        return value, _version(kv), [_version(v) for v in tvs]

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        await self.set_many([(key, value, ttl)])

    async def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None:
        # Plain pipelined commands, not a script: Cluster pipelines refuse EVALSHA. SET, then
        # EXISTS lock: a waiter that saw the lock either sees the value or gets our publish
        # (or the unlock's, if the lock went in between).
        live = [(_entry(k), v, t) for k, v, t in items if t is None or t > 0]
        expired = [_entry(k) for k, _, t in items if t is not None and t <= 0]

        def fill(pipe: Any) -> None:
            for name, value, ttl in live:
                pipe.set(name, value, px=_ms(ttl) or None).exists(name + "|lock")
            for name in expired:
                pipe.delete(name)  # already expired: keep no older value either

        replies = await self._call("SET", self._pipeline, fill)
        held = replies[1 : 2 * len(live) : 2]
        for (name, _, _), lock in zip(live, held, strict=True):
            if lock:  # rare: a lock is held only while a loader runs
                await self._call("PUBLISH", self._client.publish, self.notify_channel, name)

    async def delete(self, *keys: str) -> int:
        # Bump the version *before* deleting: a fill that checks the version after the DEL
        # has already seen the bump, so no stale fill can land between the two.
        def fill(pipe: Any) -> None:
            for name in map(_entry, keys):
                pipe.incr(name + "|kv").pexpire(name + "|kv", self._version_ms).delete(name)

        replies = await self._call("DEL", self._pipeline, fill)
        return sum(int(n) for n in replies[2::3])

    async def key_version(self, key: str) -> int:
        return _version(await self._call("GET", self._client.get, _entry(key) + "|kv"))

    # -- tags and the fill guard ----------------------------------------------

    async def tag_versions(self, tags: Sequence[str]) -> list[int]:
        raw = await self._call("MGET", self._mget, [tag_key(t) for t in tags])
        return [_version(v) for v in raw]

    async def bump_tags(self, tags: Sequence[str]) -> list[int]:
        def fill(pipe: Any) -> None:
            for tag in tags:
                pipe.incr(tag_key(tag))

        return [int(v) for v in await self._call("INCR", self._pipeline, fill)] if tags else []

    async def set_if_versions(
        self,
        key: str,
        value: bytes,
        ttl: float | None,
        *,
        key_version: int,
        tags: Sequence[str],
        tag_versions: Sequence[int],
    ) -> bool:
        if len(tags) != len(tag_versions):
            raise ValueError("tags and tag_versions must have the same length")
        if ttl is not None and ttl <= 0:
            return False
        name = _entry(key)
        keys = [name, name + "|kv", name + "|lock"]
        args: list[Any] = [value, _ms(ttl), key_version, self.notify_channel]
        if self.cluster:
            # Tags live in other slots: check them first; readers catch a bump that lands
            # between this check and the atomic key-version check + write below.
            if list(tag_versions) != await self.tag_versions(tags):
                return False
        else:
            keys += [tag_key(t) for t in tags]
            args += list(tag_versions)
        return bool(await self._call("fill", self._script, SET_IF, keys, args))

    # -- single flight --------------------------------------------------------

    async def try_lock(self, key: str, ttl: float) -> int | None:
        name = _entry(key)
        owner = secrets.token_hex(8)
        keys = (name + "|lock", name + "|fence", f"{name}|gone:{owner}")
        args = (_ms(ttl), self._fence_ms, owner)
        # An attempt whose reply is lost may still run when Redis reads it: abandon it.
        lost = partial(self._abandon, name, owner, ttl)
        token = await self._call("lock", self._script, LOCK, keys, args, on_lost=lost)
        return None if token is None else int(token)

    def _abandon(self, name: str, owner: str, ttl: float) -> None:
        task = asyncio.get_running_loop().create_task(
            self._release_abandoned(name, owner, ttl), name=f"tenfold.cache abandon {name[:80]}"
        )
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)

    async def _release_abandoned(self, name: str, owner: str, ttl: float) -> None:
        """Delete ``owner``'s lock on ``name`` or bar it, retrying until Redis answers."""
        keys = (name + "|lock", name, f"{name}|gone:{owner}")
        args = (owner, self.notify_channel, _ms(ttl))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + ttl  # by then any lock the attempt took has expired
        attempt = 0
        while True:
            try:
                await self._call("unlock", self._script, ABANDON, keys, args)
                return
            except CacheUnavailable:
                attempt += 1
                delay = _ABANDON_BACKOFF.delay(attempt)
                if loop.time() + delay >= give_up:
                    return
                await asyncio.sleep(delay)

    async def unlock(self, key: str, token: int) -> bool:
        name = _entry(key)
        keys, args = (name + "|lock", name), (token, self.notify_channel)
        return bool(await self._call("unlock", self._script, UNLOCK, keys, args))

    async def wait_for(self, key: str, timeout: float) -> bytes | None:  # noqa: ASYNC109
        name = _entry(key)
        # Listen first, then look: a notification between the two cannot be missed.
        async with self._notifier.waiter(name) as woken:

            def fill(pipe: Any) -> None:
                # Lock first, then value: had the holder filled and unlocked between the two
                # the other way round, we would see neither the value nor the lock.
                pipe.pttl(name + "|lock").get(name)

            lock_ms, value = await self._call("GET", self._pipeline, fill)
            if value is not None or lock_ms == -2:
                return value
            # A holder that died never unlocks: wait no longer than its lock lives.
            bound = timeout if lock_ms < 0 else min(timeout, lock_ms / 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken, bound)
        return await self.get(key)

    # -- bus ------------------------------------------------------------------

    async def publish(self, channel: str, message: bytes) -> None:
        await self._call("PUBLISH", self._client.publish, channel, message)

    def listen(self, channel: str, listener: Listener) -> Subscription:
        """``listener`` on ``channel``, over the hub's one pub/sub connection."""
        return self.hub.pubsub.listen(channel, listener)

    async def ping(self) -> None:
        if self.cluster:
            await self._call("PING", self._ping_primaries)
        else:
            await self._call("PING", self._client.ping)

    async def _ping_primaries(self) -> None:
        await self._client.ping(target_nodes=RedisCluster.PRIMARIES)  # type: ignore[call-arg]

    async def aclose(self) -> None:
        """Release waiters and drop the wake-up channel; close the hub if this backend made it."""
        # Abandoned lock attempts not yet released expire with their lock ttl.
        abandoned = list(self._abandoned)
        for task in abandoned:
            task.cancel()
        await asyncio.gather(*abandoned, return_exceptions=True)
        await self._notifier.aclose()
        if self._owns_hub:
            await self.hub.aclose()
