"""Single flight: one fill per key per process, and one per key across processes.

Per process, ``SingleFlight`` runs a key's fill as one task that every
concurrent caller awaits (shielded: a caller that gives up, e.g. a client
that disconnected, does not cancel the fill the others are waiting for).

Across processes, ``Filler`` uses the Redis lock (``try_lock``) with its
fencing token. The protocol:

1. read the entry and the key/tag versions (one round trip); a hit ends here;
2. ``try_lock``: the winner re-reads (a filler may have finished between 1
   and 2: without this re-read two loads could happen), loads, writes with
   ``set_if_versions`` and unlocks, which notifies the waiters;
3. the losers block in ``wait_for`` (a pub/sub notification, never a poll)
   and take the winner's value; if the winner gave up (its fill was dropped
   by a racing invalidation, its loader raised, or it died and its lock
   expired) they try to take the lock themselves, a bounded number of times;
4. a loser waits ``lock_wait`` at most in all, far less than ``lock_ttl``:
   a holder that is slow, dead, or was never there (a lock attempt that ran
   after its caller gave up on it) must not hold every reader for the lock's
   lifetime. It then loads itself and writes with ``set_if_versions`` (the
   versions it read before waiting), so the value still reaches L2.

The token is monotonic per key: ``unlock`` only releases the holder's own
lock, so a holder whose lock expired mid-load cannot release its successor's;
it is also stored in the entry for diagnosis. What keeps an old value out is
the version check of ``set_if_versions``, not the token (see docs/cache.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import partial
from typing import Any

from tenfold.cache._envelope import Envelope
from tenfold.cache._errors import CacheUnavailable
from tenfold.cache._l1 import MISS
from tenfold.cache._levels import NEGATIVE, Levels, Namespace, Read
from tenfold.observability import get_logger

__all__ = ["Filler", "SingleFlight"]

_log = get_logger("tenfold.cache")

Loader = Callable[[], Awaitable[Any]]
Restore = Callable[[Any], Any] | None
Tags = tuple[str, ...]


class SingleFlight:
    """Concurrent fills of one key share one task."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, key: str) -> bool:
        return key in self._tasks

    def join(self, key: str) -> asyncio.Task[Any] | None:
        """The fill in flight for ``key``, if any."""
        return self._tasks.get(key)

    def start(self, key: str, fill: Callable[[], Coroutine[Any, Any, Any]]) -> asyncio.Task[Any]:
        """Start ``fill()`` as the one task for ``key``; await it through ``asyncio.shield``."""
        task = asyncio.create_task(fill(), name=f"tenfold.cache fill {key[:80]}")
        self._tasks[key] = task
        task.add_done_callback(partial(self._finished, key))
        return task

    def _finished(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved: every caller may have given up already

    async def cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


#: How many times a caller tries for the lock after the holder gave up without a value.
ATTEMPTS = 3


class Job:
    """One key to serve: how to load it and how to store it."""

    __slots__ = ("key", "loader", "ns", "restore", "tags", "ttl")

    def __init__(
        self,
        key: str,
        loader: Loader,
        ns: Namespace,
        ttl: float | None,
        tags: Tags,
        restore: Restore,
    ) -> None:
        self.key, self.loader, self.ns, self.ttl = key, loader, ns, ttl
        self.tags, self.restore = tags, restore


class Loaded:
    """What a loader call produced: the value callers get and the entry to store."""

    __slots__ = ("blob", "env", "hard_ttl", "value")

    def __init__(
        self, value: Any, blob: bytes | None, env: Envelope | None, hard_ttl: float | None
    ) -> None:
        self.value, self.blob, self.env, self.hard_ttl = value, blob, env, hard_ttl


class Filler:
    """Misses and refreshes: the L1 check, then one shared fill per key (see module docstring)."""

    def __init__(
        self,
        levels: Levels,
        *,
        lock_ttl: float,
        lock_wait: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.levels = levels
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self.rng = rng
        self.flights = SingleFlight()
        self.refreshing: dict[str, asyncio.Task[None]] = {}

    async def get_or_load(
        self,
        key: str,
        loader: Loader,
        ns: Namespace,
        ttl: float | None,
        tags: Tags,
        restore: Restore,
    ) -> Any:
        if ns.l1:
            entry = self.levels.l1.get_entry(key)
            if entry is not None:
                now = self.levels.clock()
                early, token = entry.meta
                if entry.expires > now:
                    ns.stats.l1_hits += 1
                    if now >= early and self.levels.xfetch_due(entry.expires, early, now, self.rng):
                        self.refresh(Job(key, loader, ns, ttl, tags, restore), token)
                else:  # stale, inside its window: serve it, one refresher reloads
                    ns.stats.stale += 1
                    self.refresh(Job(key, loader, ns, ttl, tags, restore), token)
                value = entry.value
                return None if value is NEGATIVE else value
            ns.stats.l1_misses += 1
        task = self.flights.join(key)
        if task is None:
            job = Job(key, loader, ns, ttl, tags, restore)
            task = self.flights.start(key, lambda: self._fill(job))
        else:
            ns.stats.merges += 1
        return await asyncio.shield(task)

    async def _fill(self, job: Job) -> Any:
        levels = self.levels
        epoch, local = levels.epoch, levels.local.snapshot(job.key, job.tags)
        if levels.l2_usable():
            try:
                read = await levels.read(job.key, job.tags)
            except CacheUnavailable:
                pass
            else:
                found = self._answer(job, read, epoch, stale_ok=True)
                if found is not MISS:
                    return found
                job.ns.stats.l2_misses += 1
                return await self._fill_shared(job, read)
        return await self._load_here(job, epoch, local)

    def _answer(
        self, job: Job, read: Read, epoch: int, *, stale_ok: bool = False, count: bool = True
    ) -> Any:
        """The value of ``read`` if it may be served (stale only if ``stale_ok``), else MISS."""
        env, stats = read.env, job.ns.stats
        if env is None or read.raw is None:
            return MISS
        now = self.levels.wall()
        fresh = env.fresh(now)
        if not fresh and not (stale_ok and env.servable(now)):
            return MISS
        value = None if env.negative else read.value
        if job.restore is not None and not env.negative:
            try:
                value = job.restore(value)
            except (TypeError, ValueError):  # stored by an older shape of the type: a miss
                return MISS
        self.levels.remember(job.key, job.ns, env, value, len(read.raw), epoch)
        if not fresh:
            stats.stale += 1
            self.refresh(job, env.token)
        elif count:
            stats.l2_hits += 1
        return value

    async def _fill_shared(self, job: Job, read: Read) -> Any:
        """Cross-process single flight: take the lock and load, or wait for the holder."""
        levels = self.levels
        backend = levels.backend
        assert backend is not None
        loop = asyncio.get_running_loop()  # wait_for's timeouts run on the loop's clock
        deadline = loop.time() + self.lock_wait
        for _ in range(ATTEMPTS):
            epoch = levels.epoch
            try:
                token = await levels.l2(backend.try_lock, job.key, self.lock_ttl)
                if token is not None:
                    return await self._load_locked(job, token, read)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                job.ns.stats.lock_waits += 1
                raw = await levels.l2(backend.wait_for, job.key, remaining)
                env, value = await levels.open(raw, {})
            except CacheUnavailable:
                local = levels.local.snapshot(job.key, job.tags)
                return await self._load_here(job, levels.epoch, local)
            if env is not None:
                found = self._answer(job, Read(raw, env, value), epoch, count=False)
                if found is not MISS:
                    return found
        # Waited long enough: load without the lock; the version check still guards the write.
        epoch = levels.epoch
        loaded = await self._run(job, read.tag_versions, 0)
        await self._store(job, loaded, read, epoch)
        return loaded.value

    async def _load_locked(self, job: Job, token: int, read: Read) -> Any:
        """Holding the lock: re-read, load, write if no invalidation raced us, unlock."""
        levels = self.levels
        try:
            epoch = levels.epoch
            try:
                # A holder may have filled and unlocked between our read and our lock.
                read = await levels.read(job.key, job.tags)
            except CacheUnavailable:
                pass  # the versions read before the lock still guard the write
            else:
                found = self._answer(job, read, epoch)
                if found is not MISS:
                    return found
            loaded = await self._run(job, read.tag_versions, token)
            await self._store(job, loaded, read, epoch)
            return loaded.value
        finally:
            await self._unlock(job.key, token)

    async def _store(self, job: Job, loaded: Loaded, read: Read, epoch: int) -> None:
        levels, backend = self.levels, self.levels.backend
        if loaded.blob is None or loaded.env is None or backend is None:
            return
        try:
            stored = await levels.l2(
                backend.set_if_versions,
                job.key,
                loaded.blob,
                loaded.hard_ttl,
                key_version=read.key_version,
                tags=job.tags,
                tag_versions=read.tag_versions,
            )
        except CacheUnavailable:
            return
        if stored:
            levels.remember(job.key, job.ns, loaded.env, loaded.value, len(loaded.blob), epoch)
        else:
            job.ns.stats.rejected_fills += 1

    async def _unlock(self, key: str, token: int) -> None:
        backend = self.levels.backend
        assert backend is not None
        # Shielded: a cancelled caller must still release the lock its waiters block on.
        with contextlib.suppress(CacheUnavailable):
            await asyncio.shield(self.levels.l2(backend.unlock, key, token))

    async def _load_here(self, job: Job, epoch: int, local: Any) -> Any:
        """L1 only (embedded, or Redis unavailable): load; keep in L1 unless invalidated since."""
        loaded = await self._run(job, (), 0)
        if loaded.blob is not None and loaded.env is not None:
            if self.levels.local.unchanged(job.key, job.tags, local):
                size = len(loaded.blob)
                self.levels.remember(job.key, job.ns, loaded.env, loaded.value, size, epoch)
            else:
                job.ns.stats.rejected_fills += 1
        return loaded.value

    async def _run(self, job: Job, tag_versions: Sequence[int], token: int) -> Loaded:
        """Call the loader, time it, and build the entry it makes."""
        levels, ns = self.levels, job.ns
        started = levels.clock()
        try:
            value = await job.loader()
        except Exception:
            ns.stats.load_errors += 1
            raise
        delta = levels.clock() - started
        ns.stats.loader.observe(delta)
        ns.stats.misses += 1
        negative = value is None
        if negative and ns.negative_ttl <= 0:
            return Loaded(None, None, None, None)
        env, hard_ttl = levels.envelope(
            ns,
            job.ttl,
            delta=delta,
            negative=negative,
            token=token,
            tags=job.tags,
            tag_versions=tag_versions or (0,) * len(job.tags),
        )
        blob = levels.encode(env, value)
        if not negative:
            value = levels.round_trip(blob)
            if job.restore is not None:
                value = job.restore(value)
        return Loaded(value, blob, env, hard_ttl)

    # -- background refresh (stale-while-revalidate, XFetch) --------------------

    def refresh(self, job: Job, seen_token: int) -> None:
        """Reload ``job.key`` in the background unless this process already is."""
        key = job.key
        if key in self.refreshing or key in self.flights:
            return
        job.ns.stats.early_refreshes += 1
        task = asyncio.create_task(
            self._refresh(job, seen_token), name=f"tenfold.cache refresh {key[:80]}"
        )
        self.refreshing[key] = task
        task.add_done_callback(partial(self._refreshed, key))

    def _refreshed(self, key: str, task: asyncio.Task[None]) -> None:
        if self.refreshing.get(key) is task:
            del self.refreshing[key]
        if not task.cancelled() and task.exception() is not None:
            _log.warning("cache_refresh_failed", key=key[:200], error=repr(task.exception()))

    async def _refresh(self, job: Job, seen_token: int) -> None:
        levels = self.levels
        epoch, local = levels.epoch, levels.local.snapshot(job.key, job.tags)
        backend = levels.backend
        token = None
        if backend is not None and levels.l2_usable():
            try:
                token = await levels.l2(backend.try_lock, job.key, self.lock_ttl)
            except CacheUnavailable:
                pass
            else:
                if token is None:
                    return  # another instance is refreshing it; we keep serving what we have
        if token is None:  # L1 only, or Redis unavailable: this process's one refresher
            await self._load_here(job, epoch, local)
            return
        try:
            read = await levels.read(job.key, job.tags)
            env = read.env
            if env is not None and env.token != seen_token and env.fresh(levels.wall()):
                self._answer(job, read, epoch)  # another instance refreshed it already
                return
            await self._store(job, await self._run(job, read.tag_versions, token), read, epoch)
        except CacheUnavailable:
            return
        finally:
            await self._unlock(job.key, token)

    async def stop(self) -> None:
        await self.flights.cancel_all()
        tasks = list(self.refreshing.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
