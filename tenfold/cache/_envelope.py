"""What a fill records: the L2 envelope, and the in-process version counters.

L2 bytes are ``serializer.dumps([1, exp, stale, delta, neg, token, tags, tvs, value])``:

    exp     soft expiry, epoch seconds (None: never)     after it: stale
    stale   end of the stale-while-revalidate window      after it: gone (Redis PX too)
    delta   seconds the loader took (XFetch weighs early refresh by it)
    neg     1 if this is a cached "not found" (the loader returned None)
    token   fencing token of the lock the filler held (0: none), for diagnosis
    tags    the entry's tags, and tvs their versions when the filler read them

A list, not a map: no field names in every entry, and one positional unpack.
Readers drop an entry whose ``tvs`` differ from the tags' current versions: a
tag bump invalidates every entry carrying the tag without touching them.

``LocalVersions`` plays the part of Redis' key and tag versions for the L1
(the embedded profile, and the degraded mode while Redis is down), so a fill
racing a local invalidation is dropped there too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tenfold.cache._errors import CacheSerializationError
from tenfold.cache._serde import Serializer

__all__ = ["FORMAT", "Envelope", "LocalVersions", "pack", "unpack"]

FORMAT = 1


class Envelope:
    """One decoded L2 entry."""

    __slots__ = ("delta", "expires", "negative", "stale_until", "tag_versions", "tags", "token")

    def __init__(
        self,
        expires: float | None,
        stale_until: float | None,
        delta: float,
        negative: bool,
        token: int,
        tags: tuple[str, ...],
        tag_versions: tuple[int, ...],
    ) -> None:
        self.expires = expires
        self.stale_until = stale_until
        self.delta = delta
        self.negative = negative
        self.token = token
        self.tags = tags
        self.tag_versions = tag_versions

    def __repr__(self) -> str:
        return (
            f"Envelope(expires={self.expires}, stale_until={self.stale_until}, "
            f"negative={self.negative}, tags={self.tags}, tag_versions={self.tag_versions})"
        )

    def fresh(self, now: float) -> bool:
        return self.expires is None or now < self.expires

    def servable(self, now: float) -> bool:
        """Fresh, or stale but inside its stale-while-revalidate window."""
        return self.stale_until is None or now < self.stale_until

    def current(self, versions: dict[str, int]) -> bool:
        """True if no tag was bumped since the fill (``versions``: each tag's version now)."""
        for name, version in zip(self.tags, self.tag_versions, strict=True):
            if versions.get(name) != version:
                return False
        return True


def pack(serializer: Serializer, env: Envelope, value: Any) -> bytes:
    """The L2 bytes of ``value`` in ``env``; raises CacheSerializationError."""
    return serializer.dumps(
        [
            FORMAT,
            env.expires,
            env.stale_until,
            env.delta,
            1 if env.negative else 0,
            env.token,
            list(env.tags),
            list(env.tag_versions),
            None if env.negative else value,
        ]
    )


def unpack(serializer: Serializer, raw: bytes) -> tuple[Envelope, Any] | None:
    """The envelope and value in ``raw``, or None if it is not a readable entry (a miss)."""
    try:
        fields = serializer.loads(raw)
        fmt, exp, stale, delta, neg, token, tags, tvs, value = fields
    except (CacheSerializationError, TypeError, ValueError):
        return None
    if fmt != FORMAT or len(tags) != len(tvs):
        return None
    env = Envelope(exp, stale, delta, bool(neg), token, tuple(tags), tuple(tvs))
    return env, value


class LocalVersions:
    """In-process key and tag version counters with a bounded footprint.

    One sequence numbers every bump, so a version never repeats. When the
    tables grow past ``max_size`` they are cleared and the *era* moves on; a
    snapshot from an older era never matches, so clearing can only drop a
    fill, never let a stale one through.
    """

    def __init__(self, max_size: int = 100_000) -> None:
        self.max_size = max_size
        self._seq = 0
        self._era = 0
        self._keys: dict[str, int] = {}
        self._tags: dict[str, int] = {}

    def snapshot(self, key: str, tags: Sequence[str]) -> tuple[int, int, tuple[int, ...]]:
        """(era, key version, tag versions) to compare after a load with ``unchanged``."""
        return self._era, self._keys.get(key, 0), tuple(self._tags.get(t, 0) for t in tags)

    def unchanged(
        self, key: str, tags: Sequence[str], snapshot: tuple[int, int, tuple[int, ...]]
    ) -> bool:
        return snapshot == self.snapshot(key, tags)

    def bump(self, keys: Sequence[str] = (), tags: Sequence[str] = ()) -> None:
        if len(self._keys) + len(self._tags) > self.max_size:
            self._keys.clear()
            self._tags.clear()
            self._era += 1
        for name in keys:
            self._seq += 1
            self._keys[name] = self._seq
        for name in tags:
            self._seq += 1
            self._tags[name] = self._seq
