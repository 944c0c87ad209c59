"""Hash sharding with jump consistent hash (Lamping & Veach, 2014).

A key is hashed to 64 bits with BLAKE2b (stable across processes and
machines, unlike ``hash()``), then jump hash picks a bucket in ``[0, n)``.
Jump hash needs no ring and no memory, spreads keys evenly, and when the
number of shards grows from ``n`` to ``n + 1`` it moves only ``1/(n + 1)`` of
the keys, all of them to the new shard. It cannot remove a shard from the
middle: shards are only ever appended.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

__all__ = ["ShardKey", "Shards", "jump_hash", "key_hash"]

ShardKey = str | bytes | int | uuid.UUID
T = TypeVar("T")

_MASK64 = (1 << 64) - 1
_LCG = 2862933555777941757


def jump_hash(key: int, buckets: int) -> int:
    """The bucket in ``[0, buckets)`` for a 64-bit ``key`` (the paper's algorithm)."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    key &= _MASK64
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * _LCG + 1) & _MASK64
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def key_hash(key: ShardKey) -> int:
    """A stable 64-bit hash of a shard key. The type is part of it: ``42 != "42"``."""
    if isinstance(key, bool) or not isinstance(key, (str, bytes, int, uuid.UUID)):
        raise TypeError(f"shard keys are str, bytes, int or UUID, not {type(key).__name__}")
    if isinstance(key, str):
        data = b"s" + key.encode("utf-8")
    elif isinstance(key, bytes):
        data = b"b" + key
    elif isinstance(key, uuid.UUID):
        data = b"u" + key.bytes
    else:
        data = b"i" + str(key).encode("ascii")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class Shards(Generic[T]):
    """An ordered list of shards and the key -> shard mapping over it."""

    def __init__(self, shards: Sequence[T]) -> None:
        self._shards = list(shards)

    def __len__(self) -> int:
        return len(self._shards)

    def __iter__(self) -> Iterator[T]:
        return iter(self._shards)

    def index(self, key: ShardKey) -> int:
        """The shard number for ``key``."""
        return jump_hash(key_hash(key), len(self._shards))

    def for_key(self, key: ShardKey) -> T:
        return self._shards[self.index(key)]
