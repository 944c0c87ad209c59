"""MemoryBackend: the L2 contract in-process, for the embedded profile and for tests.

Same semantics as Redis (see ``_backend``): TTLs, key and tag versions, the
fill guard, locks with fencing tokens, waiters woken by futures, and a
pub/sub bus between subscriptions of this one backend. It is one event loop's
object: nothing here is thread-safe, and nothing blocks.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from tenfold._bus import Listener, LocalBus, Subscription
from tenfold.cache._errors import CacheUnavailable

__all__ = ["MemoryBackend"]

_NEVER = float("inf")
_SWEEP_EVERY = 1024


class MemoryBackend:
    """An in-process ``CacheBackend``; ``max_entries`` bounds it with LRU eviction."""

    name = "memory"

    def __init__(
        self,
        *,
        max_entries: int | None = None,
        version_ttl: float = 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.version_ttl = version_ttl
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._key_versions: dict[str, tuple[int, float]] = {}
        self._tags: dict[str, int] = {}
        self._locks: dict[str, tuple[int, float]] = {}
        self._fence = 0  # one counter for all keys: monotonic per key a fortiori
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._bus = LocalBus()
        self._writes = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"<MemoryBackend {len(self._data)} entries>"

    def _check_open(self) -> None:
        if self._closed:
            raise CacheUnavailable("the memory backend is closed", dependency="memory")

    def _read(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item[0]

    def _write(self, key: str, value: bytes, ttl: float | None) -> None:
        self._data.pop(key, None)
        if ttl is None or ttl > 0:
            self._data[key] = (value, _NEVER if ttl is None else self._clock() + ttl)
            if self.max_entries is not None and len(self._data) > self.max_entries:
                self._data.popitem(last=False)
        self._wake(key)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep()

    def _sweep(self) -> None:
        """Drop expired entries, versions and locks so idle ones do not pile up."""
        now = self._clock()
        for table in (self._data, self._key_versions, self._locks):
            for k in [k for k, (_, expires) in table.items() if expires <= now]:
                del table[k]

    def _lock_expiry(self, key: str) -> float | None:
        lock = self._locks.get(key)
        if lock is None:
            return None
        if lock[1] <= self._clock():
            del self._locks[key]
            self._wake(key)
            return None
        return lock[1]

    def _wake(self, key: str) -> None:
        for waiter in self._waiters.pop(key, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def get(self, key: str) -> bytes | None:
        self._check_open()
        return self._read(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self._check_open()
        return [self._read(k) for k in keys]

    async def get_versioned(
        self, key: str, tags: Sequence[str]
    ) -> tuple[bytes | None, int, list[int]]:
        self._check_open()
        return self._read(key), self._current_key_version(key), [self._tags.get(t, 0) for t in tags]

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._check_open()
        self._write(key, value, ttl)

    async def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None:
        self._check_open()
        for key, value, ttl in items:
            self._write(key, value, ttl)

    async def delete(self, *keys: str) -> int:
        self._check_open()
        deleted = 0
        for key in keys:
            deleted += self._read(key) is not None
            self._data.pop(key, None)
            version = self._current_key_version(key) + 1
            self._key_versions[key] = (version, self._clock() + self.version_ttl)
        return deleted

    def _current_key_version(self, key: str) -> int:
        item = self._key_versions.get(key)
        if item is None or item[1] <= self._clock():
            return 0
        return item[0]

    async def tag_versions(self, tags: Sequence[str]) -> list[int]:
        self._check_open()
        return [self._tags.get(t, 0) for t in tags]

    async def bump_tags(self, tags: Sequence[str]) -> list[int]:
        self._check_open()
        bumped = []
        for tag in tags:
            self._tags[tag] = version = self._tags.get(tag, 0) + 1
            bumped.append(version)
        return bumped

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
        self._check_open()
        if len(tags) != len(tag_versions):
            raise ValueError("tags and tag_versions must have the same length")
        if ttl is not None and ttl <= 0:
            return False
        if self._current_key_version(key) != key_version:
            return False
        if any(self._tags.get(t, 0) != v for t, v in zip(tags, tag_versions, strict=True)):
            return False
        self._write(key, value, ttl)
        return True

    async def key_version(self, key: str) -> int:
        self._check_open()
        return self._current_key_version(key)

    async def try_lock(self, key: str, ttl: float) -> int | None:
        self._check_open()
        if self._lock_expiry(key) is not None:
            return None
        self._fence += 1
        self._locks[key] = (self._fence, self._clock() + ttl)
        return self._fence

    async def unlock(self, key: str, token: int) -> bool:
        self._check_open()
        if self._lock_expiry(key) is None or self._locks[key][0] != token:
            return False
        del self._locks[key]
        self._wake(key)
        return True

    async def wait_for(self, key: str, timeout: float) -> bytes | None:  # noqa: ASYNC109
        self._check_open()
        value = self._read(key)
        if value is not None:
            return value
        lock_expires = self._lock_expiry(key)
        if lock_expires is None:
            return None
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(waiter)
        try:
            # Bounded by the lock's expiry too: a crashed holder never unlocks.
            await asyncio.wait_for(waiter, min(timeout, lock_expires - self._clock()))
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[key]
        self._check_open()
        return self._read(key)

    async def publish(self, channel: str, message: bytes) -> None:
        self._check_open()
        await self._bus.publish(channel, message)

    def listen(self, channel: str, listener: Listener) -> Subscription:
        return self._bus.listen(channel, listener)

    async def ping(self) -> None:
        self._check_open()

    async def aclose(self) -> None:
        """Close: later calls raise CacheUnavailable, waiters and subscriptions end."""
        self._closed = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        # The bus is gone, like a lost connection: every listener hears of it.
        self._bus.close("the memory backend closed")
