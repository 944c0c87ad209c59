"""L1: an in-process LRU bounded by entry count and by bytes, with TTL and a stale window.

The hit path is one dict lookup, one clock read and one ``move_to_end`` (all C):
~0.17 µs on this machine class, against 4.5 µs for cashews' ``mem://``.
An ``OrderedDict`` keeps exact LRU order at ~25 ns per hit over a plain dict;
approximate schemes (CLOCK bits) would save that but evict worse.

Sizes are what the caller says (the L2 byte length is the natural choice), or
a cheap estimate: ``len`` for str/bytes, the orjson length for JSON-able
values, ``sys.getsizeof`` otherwise; plus a fixed per-entry overhead.

Timestamps come from the injected ``clock`` (``time.monotonic`` by default),
so tests move time instead of sleeping.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Final

import orjson

__all__ = ["MISS", "Entry", "LocalLRU"]

_NEVER = float("inf")
#: Bytes charged per entry on top of its value: the dict slot, the key, the Entry.
ENTRY_OVERHEAD = 160


class _Miss:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"

    def __bool__(self) -> bool:
        return False


#: Returned by ``LocalLRU.get`` when there is no fresh value (``None`` is a valid value).
MISS: Final[Any] = _Miss()


class Entry:
    """One L1 entry. ``expires``/``stale_until`` are clock readings (inf = never).

    ``meta`` is the owner's (``Cache`` keeps its early-refresh point there).
    """

    __slots__ = ("expires", "meta", "size", "stale_until", "tags", "value", "versions")

    def __init__(
        self,
        value: Any,
        expires: float,
        stale_until: float,
        size: int,
        tags: tuple[str, ...],
        versions: tuple[int, ...],
        meta: Any = None,
    ) -> None:
        self.value = value
        self.meta = meta
        self.expires = expires
        self.stale_until = stale_until
        self.size = size
        self.tags = tags
        self.versions = versions

    def __repr__(self) -> str:
        return (
            f"Entry(value={self.value!r}, expires={self.expires}, "
            f"stale_until={self.stale_until}, size={self.size}, tags={self.tags})"
        )


def estimate_size(value: Any) -> int:
    """A cheap byte estimate of ``value`` for the byte bound."""
    if isinstance(value, bytes | str | bytearray):
        return len(value)
    try:
        return len(orjson.dumps(value))
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return sys.getsizeof(value)


class LocalLRU:
    """Bounded, TTL'd, in-process LRU. Not thread-safe; one per event loop."""

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("LocalLRU needs max_entries >= 1 and max_bytes >= 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._data: OrderedDict[Hashable, Entry] = OrderedDict()
        self._touch = self._data.move_to_end
        self._by_tag: dict[str, set[Hashable]] = {}
        self.nbytes = 0
        #: Entries dropped to respect a bound (not counting expiry or deletes).
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def __repr__(self) -> str:
        return (
            f"<LocalLRU {len(self._data)}/{self.max_entries} entries "
            f"{self.nbytes}/{self.max_bytes} bytes>"
        )

    def get(self, key: Hashable) -> Any:
        """The fresh value for ``key``, or ``MISS``. Marks the entry most recently used."""
        try:
            entry = self._data[key]
        except KeyError:
            return MISS
        if entry.expires > self._clock():
            self._touch(key)
            return entry.value
        if entry.stale_until <= self._clock():
            self._remove(key)
        return MISS

    def get_entry(self, key: Hashable) -> Entry | None:
        """The entry if fresh *or stale* (before ``stale_until``); the caller checks ``expires``."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.stale_until <= self._clock():
            self._remove(key)
            return None
        self._touch(key)
        return entry

    def set(
        self,
        key: Hashable,
        value: Any,
        ttl: float | None,
        size: int | None = None,
        *,
        stale_ttl: float = 0,
        tags: Iterable[str] = (),
        versions: Sequence[int] = (),
        meta: Any = None,
    ) -> bool:
        """Store ``value`` for ``ttl`` seconds (None: no expiry); False if it could not fit."""
        self._remove(key)
        if ttl is not None and ttl <= 0 and stale_ttl <= 0:
            return False
        cost = (estimate_size(value) if size is None else size) + ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return False
        expires = _NEVER if ttl is None else self._clock() + ttl
        entry = Entry(value, expires, expires + stale_ttl, cost, tuple(tags), tuple(versions), meta)
        self._data[key] = entry
        self.nbytes += cost
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        self._enforce_bounds()
        return True

    def delete(self, key: Hashable) -> bool:
        """Drop ``key``; True if it was there."""
        return self._remove(key)

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Drop every entry stored with any of ``tags``; returns how many were dropped."""
        dropped = 0
        for tag in tags:
            for key in tuple(self._by_tag.get(tag, ())):
                dropped += self._remove(key)
        return dropped

    def clear(self) -> None:
        """Drop everything (the evictions counter keeps counting)."""
        self._data.clear()
        self._by_tag.clear()
        self.nbytes = 0

    def purge_expired(self) -> int:
        """Drop entries past their stale window; returns how many. For a periodic sweep."""
        now = self._clock()
        dead = [k for k, e in self._data.items() if e.stale_until <= now]
        for key in dead:
            self._remove(key)
        return len(dead)

    def _enforce_bounds(self) -> None:
        data = self._data
        while len(data) > self.max_entries or self.nbytes > self.max_bytes:
            key, entry = data.popitem(last=False)
            self._forget(key, entry)
            self.evictions += 1

    def _remove(self, key: Hashable) -> bool:
        entry = self._data.pop(key, None)
        if entry is None:
            return False
        self._forget(key, entry)
        return True

    def _forget(self, key: Hashable, entry: Entry) -> None:
        self.nbytes -= entry.size
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]
