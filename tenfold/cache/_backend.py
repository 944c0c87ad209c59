"""The L2 contract every cache backend implements (memory, Redis, Redis Cluster).

Backends move bytes; the envelope inside them (value, soft expiry, tag
versions, ...) belongs to ``Cache``. Every method may raise
``CacheUnavailable``; nothing else escapes from the driver.

Semantics shared by all backends (``tests/cache/test_backend_contract.py``
runs the same tests against each):

* ``ttl`` is in seconds; ``None`` means no expiry.
* A tag's version is 0 until bumped; ``bump_tags`` is one write per tag,
  whatever the number of entries tagged. Tag versions do not expire: an entry
  that recorded version N must never see the counter fall back below N.
* A key's version is 0 until ``delete`` bumps it. Key versions expire a day
  (``version_ttl``) after the last bump: a fill slower than that could slip
  past a delete, which no realistic loader is.
* ``set_if_versions`` writes only if the key's version and every listed tag's
  version still equal what the filler read before loading. On a single Redis
  and in memory the check and the write are atomic. On Cluster tags live in
  other slots, so the tag check runs just before the atomic key check + write;
  a bump landing between the two is caught by readers, which compare the tag
  versions stored in the entry with the current ones.
* ``try_lock`` returns a fencing token, strictly greater than every token
  earlier issued for that key, or ``None`` if the lock is held. ``unlock``
  only releases the holder's own token.
* ``wait_for`` returns the key's value as soon as it has one, or ``None`` once
  nobody holds the key's lock (the holder gave up, failed or its lock
  expired) or ``timeout`` passed. Waiters are woken by a notification (Redis
  pub/sub, or an in-process future), never by polling.
* ``listen(channel, listener)`` delivers every message published on the
  channel after the listener's ``on_live``; ``on_lost`` says the connection
  is gone (messages are missed until the next ``on_live``, after which the
  listener must assume it missed some). The backend reconnects by itself; see
  ``tenfold._bus``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tenfold._bus import Listener, Subscription

__all__ = ["CacheBackend"]


@runtime_checkable
class CacheBackend(Protocol):
    """The L2 store: bytes by key, tag versions, fill guard, locks, and a message bus."""

    name: str  # "memory" | "redis" | "redis-cluster"

    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def get_versioned(
        self, key: str, tags: Sequence[str]
    ) -> tuple[bytes | None, int, list[int]]:
        """The value, the key's version and ``tags``' versions, in one round trip."""
        ...

    async def set(self, key: str, value: bytes, ttl: float | None) -> None: ...

    async def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None: ...

    async def delete(self, *keys: str) -> int:
        """Remove the keys and bump their versions; returns how many existed."""
        ...

    async def tag_versions(self, tags: Sequence[str]) -> list[int]: ...

    async def bump_tags(self, tags: Sequence[str]) -> list[int]: ...

    async def set_if_versions(
        self,
        key: str,
        value: bytes,
        ttl: float | None,
        *,
        key_version: int,
        tags: Sequence[str],
        tag_versions: Sequence[int],
    ) -> bool: ...

    async def key_version(self, key: str) -> int: ...

    async def try_lock(self, key: str, ttl: float) -> int | None: ...

    async def unlock(self, key: str, token: int) -> bool: ...

    async def wait_for(self, key: str, timeout: float) -> bytes | None: ...  # noqa: ASYNC109

    async def publish(self, channel: str, message: bytes) -> None: ...

    def listen(self, channel: str, listener: Listener) -> Subscription: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...
