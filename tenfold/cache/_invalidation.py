"""Cross-instance L1 invalidation over Redis pub/sub.

Why pub/sub and not server-assisted client tracking (``CLIENT TRACKING``):
tracking invalidates *Redis keys* a connection read, but a tag bump changes a
counter no L1 entry was read from, and on Cluster tracking is per node and
needs a redirect connection per node. One channel carrying "these keys, these
tags" works the same on standalone and Cluster (a classic PUBLISH reaches
every node) and costs one connection per process.

Message (orjson): ``{"o": origin, "s": seq, "t": sent (epoch s), "k": [keys], "g": [tags]}``.
An instance applies its own invalidations to its L1 before publishing, and
skips its own messages on receipt.

Pub/sub is at-most-once: a message published while a subscriber is
disconnected is lost to it. So the connection never reconnects silently (the
backend's bus reports every loss, including silence a PING cannot break
within its health interval), and on every loss *and* every (re)connection L1
is cleared: nothing older than the gap is ever served. While down, new L1
entries live at most ``degraded_l1_ttl``. The bus reconnects by itself; this
object only listens (``on_live``/``on_message``/``on_lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson

from tenfold._bus import Subscription
from tenfold.cache._backend import CacheBackend
from tenfold.cache._levels import Levels
from tenfold.observability import get_logger

__all__ = ["InvalidationBus"]

_log = get_logger("tenfold.cache")


class InvalidationBus:
    """Publishes this instance's invalidations and applies everyone else's to L1."""

    def __init__(
        self,
        levels: Levels,
        backend: CacheBackend,
        *,
        channel: str,
        origin: str,
    ) -> None:
        self.levels = levels
        self.backend = backend
        self.channel = channel
        self.origin = origin
        self._seq = itertools.count(1)
        self._subscription: Subscription | None = None
        self._attempted = asyncio.Event()
        #: Messages applied from other instances, and the last few (origin, seq, lag seconds).
        self.applied = 0
        self.recent: deque[tuple[str, int, float]] = deque(maxlen=256)
        self.connections = 0

    def __repr__(self) -> str:
        return f"<InvalidationBus {self.channel!r} {'live' if self.live else 'down'}>"

    @property
    def live(self) -> bool:
        return self.levels.channel_live

    async def start(self, wait: float) -> None:
        """Start listening; wait up to ``wait`` s for the first attempt to connect to end."""
        self._attempted.clear()
        self._subscription = self.backend.listen(self.channel, self)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), wait)

    async def stop(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()

    async def publish(self, keys: Sequence[str], tags: Sequence[str]) -> int:
        """Tell the other instances; returns this message's sequence number."""
        seq = next(self._seq)
        message = {"o": self.origin, "s": seq, "t": self.levels.wall(), "k": keys, "g": tags}
        await self.levels.l2(self.backend.publish, self.channel, orjson.dumps(message))
        return seq

    # -- Listener --------------------------------------------------------------

    def on_message(self, channel: str, raw: bytes) -> None:
        try:
            message: dict[str, Any] = orjson.loads(raw)
            origin, seq, sent = message["o"], message["s"], message["t"]
            keys, tags = message.get("k") or (), message.get("g") or ()
        except (orjson.JSONDecodeError, KeyError, TypeError):
            _log.warning("cache_invalidation_unreadable", channel=self.channel)
            return
        if origin == self.origin:
            return
        self.levels.drop_remote(keys, tags)
        lag = max(0.0, self.levels.wall() - sent)
        self.applied += 1
        self.recent.append((origin, seq, lag))
        stats = self.levels.stats
        stats.invalidations_received += 1
        stats.invalidation_lag.observe(lag)

    def on_live(self, channel: str) -> None:
        self._went_live()

    def on_lost(self, channel: str, reason: str) -> None:
        self._went_down(reason)

    def _went_live(self) -> None:
        self.connections += 1
        self.levels.channel_changed(live=True)
        self._attempted.set()
        if self.connections > 1:
            _log.info("cache_invalidation_reconnected", channel=self.channel)

    def _went_down(self, reason: str) -> None:
        self._attempted.set()  # start() waits for the first attempt, not for success
        if self.levels.channel_live:
            # Entries filled while already down are newer than the disconnect: keep those.
            self.levels.channel_changed(live=False)
            _log.warning("cache_invalidation_lost", channel=self.channel, error=reason)
