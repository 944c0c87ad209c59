"""Where cached HTTP responses live: a two-method ``ResponseStore`` and its adapters.

The middleware needs only ``get`` and ``set`` of bytes with a TTL, so it does
not depend on the ``Cache`` class (whose envelope, tags and single flight
serve values, not responses):

* ``LocalResponseStore``   an in-process ``LocalLRU`` (embedded profile, or one process);
                           it keeps decoded ``StoredResponse`` objects (``EntryStore``),
                           so a hit skips the codec entirely
* ``BackendResponseStore`` any L2 ``CacheBackend``: Redis, Redis Cluster, memory;
                           shared by every instance, one round trip per lookup
* ``CacheResponseStore``   tenfold's ``Cache``: its L1 and Redis, breaker and metrics
                           (entries ride as base64 text, which every serializer takes)

Either may raise ``CacheUnavailable``; the middleware then serves uncached.

An entry is ``0x01 | stored_at (f64) | etag length (u16) | etag | header
count (u16) | (name length u16, value length u32, name, value)... | body``.
Length-prefixed rather than JSON: headers are bytes, and this decodes with
slicing only.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Any, Protocol, runtime_checkable

from tenfold.cache._backend import CacheBackend
from tenfold.cache._l1 import MISS, LocalLRU

__all__ = [
    "BackendResponseStore",
    "CacheResponseStore",
    "EntryStore",
    "LocalResponseStore",
    "ResponseStore",
    "StoredResponse",
    "decode_entry",
    "encode_entry",
]

_VERSION = 0x01
_HEAD = struct.Struct(">BdH")
_COUNT = struct.Struct(">H")
_FIELD = struct.Struct(">HI")


@runtime_checkable
class ResponseStore(Protocol):
    """Bytes by key with a TTL in seconds; all the HTTP cache asks of a store."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...


@runtime_checkable
class EntryStore(Protocol):
    """A store that keeps decoded entries: in-process ones, where bytes would only cost time."""

    def get_entry(self, key: str) -> StoredResponse | None: ...

    def set_entry(self, key: str, entry: StoredResponse, ttl: float) -> None: ...


class LocalResponseStore:
    """A ``ResponseStore`` in this process's memory, bounded by entries and bytes.

    The middleware uses ``get_entry``/``set_entry`` (no encoding); ``get``/``set``
    exist for any other caller of the ``ResponseStore`` protocol.
    """

    def __init__(self, lru: LocalLRU | None = None) -> None:
        self.lru = lru if lru is not None else LocalLRU(max_entries=10_000, max_bytes=64 << 20)

    def __repr__(self) -> str:
        return f"LocalResponseStore({self.lru!r})"

    async def get(self, key: str) -> bytes | None:
        entry = self.get_entry(key)
        if entry is None:
            return None
        return encode_entry(entry.headers, entry.body, entry.etag, entry.stored_at)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        entry = decode_entry(value)
        if entry is None:
            raise ValueError("not an HTTP cache entry (see encode_entry)")
        self.set_entry(key, entry, ttl)

    def get_entry(self, key: str) -> StoredResponse | None:
        entry = self.lru.get(key)
        return None if entry is MISS else entry

    def set_entry(self, key: str, entry: StoredResponse, ttl: float) -> None:
        self.lru.set(key, entry, ttl, size=entry.size())


class BackendResponseStore:
    """A ``ResponseStore`` on an L2 ``CacheBackend`` (Redis or Cluster): shared by instances."""

    def __init__(self, backend: CacheBackend) -> None:
        self.backend = backend

    def __repr__(self) -> str:
        return f"BackendResponseStore({self.backend!r})"

    async def get(self, key: str) -> bytes | None:
        return await self.backend.get(key)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self.backend.set(key, value, ttl)


class _ValueCache(Protocol):
    """The part of ``tenfold.cache.Cache`` this store uses."""

    async def get(self, key: str, default: Any = None) -> Any: ...

    async def set(self, key: str, value: Any, *, ttl: Any = ...) -> None: ...


class CacheResponseStore:
    """A ``ResponseStore`` on a started ``tenfold.cache.Cache``.

    The cache never raises for a Redis outage (it degrades to its L1), so
    neither does this store. Entries are base64 text because the default JSON
    serializer has no bytes type; that costs ~1 µs per KiB each way.
    """

    def __init__(self, cache: _ValueCache) -> None:
        self.cache = cache

    def __repr__(self) -> str:
        return f"CacheResponseStore({self.cache!r})"

    async def get(self, key: str) -> bytes | None:
        value = await self.cache.get(key)
        if not isinstance(value, str):
            return None
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            return None  # not written by this store: a miss

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self.cache.set(key, base64.b64encode(value).decode("ascii"), ttl=ttl)


class StoredResponse:
    """A decoded entry: the final 200 headers (ETag, Cache-Control, Vary included) and body."""

    __slots__ = ("body", "etag", "headers", "stored_at")

    def __init__(
        self, headers: list[tuple[bytes, bytes]], body: bytes, etag: bytes, stored_at: float
    ) -> None:
        self.headers = headers
        self.body = body
        self.etag = etag
        self.stored_at = stored_at

    def size(self) -> int:
        """Roughly the bytes it holds, for the LRU's byte bound."""
        return len(self.body) + len(self.etag) + sum(len(n) + len(v) + 16 for n, v in self.headers)


def encode_entry(
    headers: list[tuple[bytes, bytes]], body: bytes, etag: bytes, stored_at: float
) -> bytes:
    """The stored bytes of a response (see the module docstring for the layout)."""
    parts = [_HEAD.pack(_VERSION, stored_at, len(etag)), etag, _COUNT.pack(len(headers))]
    for name, value in headers:
        parts.append(_FIELD.pack(len(name), len(value)))
        parts.append(name)
        parts.append(value)
    parts.append(body)
    return b"".join(parts)


def decode_entry(data: bytes) -> StoredResponse | None:
    """The response in ``data``, or None if it is not an entry this version wrote."""
    try:
        version, stored_at, etag_len = _HEAD.unpack_from(data)
        if version != _VERSION:
            return None
        pos = _HEAD.size
        etag = data[pos : pos + etag_len]
        pos += etag_len
        (count,) = _COUNT.unpack_from(data, pos)
        pos += _COUNT.size
        headers = []
        for _ in range(count):
            name_len, value_len = _FIELD.unpack_from(data, pos)
            pos += _FIELD.size
            name_end = pos + name_len
            headers.append((data[pos:name_end], data[name_end : name_end + value_len]))
            pos = name_end + value_len
        if pos > len(data):
            return None
    except struct.error:
        return None
    return StoredResponse(headers, data[pos:], etag, stored_at)
