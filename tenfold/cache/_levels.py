"""The cache's data plane: L1, the guarded L2, and the rules for moving entries between them.

``Levels`` is shared by ``Cache`` (the API), the fill logic and the
invalidation bus. It owns three pieces of state that make L1 safe:

* ``epoch`` moves on every invalidation received from another instance and
  every change of the invalidation channel's state. A reader notes it before
  going to L2, and copies what it read into L1 only if no invalidation of
  that key or of its tags was applied since (an invalidation processed
  between the read and the copy would otherwise be undone by the copy). The
  per-key/tag record is bounded: when it is cleared, or the channel changes
  state, every read in flight is refused L1.
* ``channel_live``: while the channel is down, L1 was cleared (nothing older
  than the disconnect survives) and new L1 entries live at most
  ``degraded_l1_ttl``, since invalidations from elsewhere cannot reach us.
* ``pending``: invalidations that could not reach Redis. Until they are
  replayed, this process does not read L2, where the old values may still be.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from tenfold.cache._backend import CacheBackend
from tenfold.cache._envelope import Envelope, LocalVersions, pack, unpack
from tenfold.cache._errors import CacheUnavailable
from tenfold.cache._l1 import LocalLRU
from tenfold.cache._metrics import CacheStats, NamespaceStats
from tenfold.cache._serde import Serializer
from tenfold.resilience._breaker import CircuitBreaker
from tenfold.resilience._errors import CircuitOpen

__all__ = ["NEGATIVE", "Levels", "Namespace", "Read"]

T = TypeVar("T")
_NEVER = math.inf
#: Remote invalidations remembered per key/tag to judge reads in flight (then: refuse all).
_EPOCHS_KEPT = 10_000
#: -ln(p) for the probability below which an XFetch draw is not worth making (2e-9).
XFETCH_HORIZON = 20.0


class _Negative:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEGATIVE"


#: What L1 holds for a cached "not found".
NEGATIVE: Final[Any] = _Negative()


class Namespace:
    """A namespace's resolved policy and its counters."""

    __slots__ = ("l1", "name", "negative_ttl", "stale_ttl", "stats", "ttl")

    def __init__(
        self,
        name: str,
        ttl: float | None,
        stale_ttl: float,
        negative_ttl: float,
        l1: bool,
        stats: NamespaceStats,
    ) -> None:
        self.name, self.ttl, self.stale_ttl = name, ttl, stale_ttl
        self.negative_ttl, self.l1, self.stats = negative_ttl, l1, stats

    def __repr__(self) -> str:
        return f"Namespace({self.name!r}, ttl={self.ttl}, stale_ttl={self.stale_ttl})"


class Read:
    """One L2 read: the entry (if any and current) plus the versions read with it."""

    __slots__ = ("env", "key_version", "raw", "tag_versions", "value")

    def __init__(
        self,
        raw: bytes | None,
        env: Envelope | None,
        value: Any,
        key_version: int = 0,
        tag_versions: tuple[int, ...] = (),
    ) -> None:
        self.raw, self.env, self.value = raw, env, value
        self.key_version, self.tag_versions = key_version, tag_versions


class Levels:
    """L1 + guarded L2 + the version bookkeeping; see the module docstring."""

    def __init__(
        self,
        *,
        l1: LocalLRU,
        serializer: Serializer,
        breaker: CircuitBreaker,
        stats: CacheStats,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        xfetch_beta: float,
        degraded_l1_ttl: float,
    ) -> None:
        self.l1 = l1
        self.backend: CacheBackend | None = None
        self.serializer = serializer
        self.breaker = breaker
        self.stats = stats
        self.clock = clock
        self.wall = wall_clock
        self.xfetch_beta = xfetch_beta
        self.degraded_l1_ttl = degraded_l1_ttl
        self.local = LocalVersions()
        self.epoch = 0
        self._floor = 0  # reads noted before this epoch never reach L1
        self._key_epochs: dict[str, int] = {}
        self._tag_epochs: dict[str, int] = {}
        self.channel_live = True  # L1-only: there is nothing to miss
        self.pending: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    # -- L2 -------------------------------------------------------------------

    def l2_usable(self) -> bool:
        """Whether to try L2 at all (the breaker may still refuse the call)."""
        return self.backend is not None and not self.pending

    async def l2(self, call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await call(...)`` on the backend through the breaker; raises CacheUnavailable."""
        breaker = self.breaker
        try:
            ticket = breaker.acquire()
        except CircuitOpen as exc:
            raise CacheUnavailable("redis circuit breaker is open") from exc
        try:
            result = await call(*args, **kwargs)
        except CacheUnavailable as exc:
            breaker.record(ticket, 0.0, exc)
            self.stats.redis_errors += 1
            raise
        except BaseException:
            breaker.release(ticket)  # cancelled: neither a success nor a failure
            raise
        breaker.record(ticket, 0.0, None)
        return result

    async def read(self, key: str, tags: Sequence[str]) -> Read:
        """The entry at ``key`` with its key and ``tags``' versions (one round trip)."""
        assert self.backend is not None
        raw, kv, tvs = await self.l2(self.backend.get_versioned, key, tags)
        current = dict(zip(tags, tvs, strict=True))
        env, value = await self.open(raw, current)
        return Read(raw, env, value, kv, tuple(tvs))

    async def open(self, raw: bytes | None, current: dict[str, int]) -> tuple[Envelope | None, Any]:
        """Decode ``raw`` and check its tags against ``current`` (fetching tags it lacks)."""
        if raw is None:
            return None, None
        opened = unpack(self.serializer, raw)
        if opened is None:
            return None, None  # unreadable (corrupt, other format): a miss
        env, value = opened
        unknown = [t for t in env.tags if t not in current]
        if unknown:
            assert self.backend is not None
            versions = await self.l2(self.backend.tag_versions, unknown)
            current = {**current, **dict(zip(unknown, versions, strict=True))}
        if not env.current(current):
            return None, None
        return env, value

    async def open_many(self, raws: Sequence[bytes | None]) -> list[tuple[Envelope | None, Any]]:
        """``open`` for many entries, with one tag-version read for all their tags."""
        opened = [unpack(self.serializer, raw) if raw is not None else None for raw in raws]
        tags = sorted({t for item in opened if item is not None for t in item[0].tags})
        current: dict[str, int] = {}
        if tags:
            assert self.backend is not None
            current = dict(zip(tags, await self.l2(self.backend.tag_versions, tags), strict=True))
        return [
            (None, None) if item is None or not item[0].current(current) else item
            for item in opened
        ]

    # -- entries --------------------------------------------------------------

    def envelope(
        self,
        ns: Namespace,
        ttl: float | None,
        *,
        delta: float,
        negative: bool,
        token: int,
        tags: Sequence[str],
        tag_versions: Sequence[int],
    ) -> tuple[Envelope, float | None]:
        """An envelope for a value stored now, and its hard L2 TTL (None: no expiry)."""
        if negative:
            ttl, stale = ns.negative_ttl, 0.0
        else:
            stale = ns.stale_ttl
        now = self.wall()
        expires = None if ttl is None else now + ttl
        stale_until = None if expires is None else expires + stale
        env = Envelope(
            expires, stale_until, delta, negative, token, tuple(tags), tuple(tag_versions)
        )
        return env, None if ttl is None else ttl + stale

    def encode(self, env: Envelope, value: Any) -> bytes:
        return pack(self.serializer, env, value)

    def round_trip(self, blob: bytes) -> Any:
        """The value as every later reader will see it (so misses and hits look alike)."""
        opened = unpack(self.serializer, blob)
        assert opened is not None
        return opened[1]

    def remember(
        self, key: str, ns: Namespace, env: Envelope, value: Any, size: int, epoch: int
    ) -> None:
        """Copy an entry into L1, unless an invalidation arrived since ``epoch`` was noted."""
        if not ns.l1 or (epoch != self.epoch and not self._untouched(key, env.tags, epoch)):
            return
        now = self.wall()
        ttl = _NEVER if env.expires is None else env.expires - now
        stale = 0.0
        if env.stale_until is not None and env.expires is not None:
            stale = env.stale_until - env.expires
        if not self.channel_live:
            ttl, stale = min(ttl, self.degraded_l1_ttl), 0.0
        if ttl <= 0 and ttl + stale <= 0:
            return
        expires = self.clock() + ttl
        early = _NEVER
        if self.xfetch_beta > 0 and env.delta > 0 and ttl != _NEVER:
            early = expires - XFETCH_HORIZON * env.delta * self.xfetch_beta
        self.l1.set(
            key,
            NEGATIVE if env.negative else value,
            None if ttl == _NEVER else ttl,
            size,
            stale_ttl=stale,
            tags=env.tags,
            meta=(early, env.token),
        )

    def xfetch_due(
        self, expires: float, early: float, now: float, rng: Callable[[], float]
    ) -> bool:
        """XFetch: refresh early with probability exp(-(expires - now) / (delta * beta))."""
        if now < early:
            return False
        weight = (expires - early) / XFETCH_HORIZON  # delta * beta
        return -math.log(1.0 - rng()) * weight >= expires - now

    # -- invalidation ---------------------------------------------------------

    def drop_local(self, keys: Sequence[str], tags: Sequence[str]) -> None:
        """Apply an invalidation made by this process to L1 and the local versions."""
        self.local.bump(keys, tags)
        for key in keys:
            self.l1.delete(key)
        if tags:
            self.l1.invalidate_tags(tags)

    def _untouched(self, key: str, tags: Sequence[str], epoch: int) -> bool:
        """True if no remote invalidation of ``key`` or ``tags`` was applied after ``epoch``."""
        if epoch < self._floor or self._key_epochs.get(key, 0) > epoch:
            return False
        return not any(self._tag_epochs.get(t, 0) > epoch for t in tags)

    def drop_remote(self, keys: Sequence[str], tags: Sequence[str]) -> None:
        """Apply an invalidation received from another instance."""
        self.epoch += 1
        if len(self._key_epochs) + len(self._tag_epochs) > _EPOCHS_KEPT:
            self._key_epochs.clear()
            self._tag_epochs.clear()
            self._floor = self.epoch
        for key in keys:
            self._key_epochs[key] = self.epoch
            self.l1.delete(key)
        for tag in tags:
            self._tag_epochs[tag] = self.epoch
        if tags:
            self.l1.invalidate_tags(tags)

    def channel_changed(self, live: bool) -> None:
        """The invalidation channel came up or went down: what L1 holds can't be trusted."""
        self.channel_live = live
        self.epoch += 1
        self._floor = self.epoch
        self._key_epochs.clear()
        self._tag_epochs.clear()
        self.l1.clear()
