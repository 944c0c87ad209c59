"""``Cache``: the public API over L1 (in-process) and L2 (Redis), with TTL policy per namespace.

Keys are built with ``cache.key(namespace, *parts)`` (``tenfold.cache.key``);
the namespace, which selects the TTL policy, is read back from the key.
Reads never raise because Redis is down or slow: they fall back to L1 and the
loader. Writes and invalidations apply to this process at once; if Redis
cannot take them they are queued and replayed, and until then this process
does not read L2 (which may still hold the old values).

The lifecycle (start/stop, health, warmers) is ``CacheComponent`` in
``_component``; ``Cache`` is that plus this API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import EllipsisType
from typing import Any, TypeVar

from tenfold.cache._component import CacheComponent
from tenfold.cache._errors import CacheUnavailable
from tenfold.cache._keys import key as build_key
from tenfold.cache._l1 import MISS
from tenfold.cache._levels import NEGATIVE, Namespace
from tenfold.observability import get_logger

__all__ = ["Cache"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
TTL = float | None | EllipsisType
_log = get_logger("tenfold.cache")
_DEFAULT_NAMESPACE = "default"
_MAX_NAMESPACES = 1024


class Cache(CacheComponent):
    """A two-level cache; see docs/cache.md. ``ttl=...`` (the default) means the namespace's."""

    def bind(self, fn: F) -> F:
        """Make the ``@cached`` function ``fn`` use this cache; returns ``fn``."""
        bind = getattr(fn, "bind", None)
        if bind is None:
            raise TypeError(f"{fn!r} is not a @cached function")
        bind(self)
        return fn

    def key(self, namespace: str, *parts: object) -> str:
        """The key of ``parts`` in ``namespace`` (typed parts, hashed when unsafe)."""
        return build_key(namespace, *parts)

    def namespace(self, key: str, namespace: str | None = None) -> Namespace:
        """The policy of ``namespace``, or of the namespace ``key`` was built in."""
        if namespace is None:
            if key.startswith("tf:"):
                end = key.find(":", 3)
                namespace = key[3:end] if end > 3 else _DEFAULT_NAMESPACE
            else:
                namespace = _DEFAULT_NAMESPACE
        ns = self._namespaces.get(namespace)
        return ns if ns is not None else self._new_namespace(namespace)

    def _new_namespace(self, name: str) -> Namespace:
        if len(self._namespaces) >= _MAX_NAMESPACES:
            name = "other"  # a bound on metric label values, like on everything else
            if name in self._namespaces:
                return self._namespaces[name]
        s = self.settings
        policy = s.namespaces.get(name)
        ttl = policy.ttl if policy is not None else s.default_ttl
        stale = s.stale_ttl if policy is None or policy.stale_ttl is None else policy.stale_ttl
        negative = (
            s.negative_ttl if policy is None or policy.negative_ttl is None else policy.negative_ttl
        )
        l1 = policy.l1 if policy is not None else True
        ns = Namespace(name, ttl, stale, negative, l1, self.stats.namespace(name))
        self._namespaces[name] = ns
        return ns

    # -- reads ----------------------------------------------------------------

    async def get(self, key: str, default: Any = None, *, namespace: str | None = None) -> Any:
        """The fresh value at ``key``, or ``default``. Never raises for a Redis outage."""
        ns = self.namespace(key, namespace)
        levels = self._levels
        if ns.l1:
            value = levels.l1.get(key)
            if value is not MISS:
                ns.stats.l1_hits += 1
                return default if value is NEGATIVE else value
            ns.stats.l1_misses += 1
        if levels.l2_usable():
            assert levels.backend is not None
            epoch = levels.epoch
            try:
                raw = await levels.l2(levels.backend.get, key)
                env, value = await levels.open(raw, {})
            except CacheUnavailable:
                env = None
            if env is not None and raw is not None and env.fresh(levels.wall()):
                ns.stats.l2_hits += 1
                levels.remember(key, ns, env, value, len(raw), epoch)
                return default if env.negative else value
            ns.stats.l2_misses += 1
        ns.stats.misses += 1
        return default

    async def get_many(
        self, keys: Sequence[str], default: Any = None, *, namespace: str | None = None
    ) -> list[Any]:
        """The values at ``keys`` in order, ``default`` for each miss (one L2 round trip)."""
        levels = self._levels
        results: list[Any] = []
        missing: list[tuple[int, Namespace]] = []
        for i, k in enumerate(keys):
            ns = self.namespace(k, namespace)
            value = levels.l1.get(k) if ns.l1 else MISS
            if value is MISS:
                ns.stats.l1_misses += ns.l1
                missing.append((i, ns))
                results.append(default)
            else:
                ns.stats.l1_hits += 1
                results.append(default if value is NEGATIVE else value)
        if missing and levels.l2_usable():
            await self._get_many_l2(keys, missing, results, default)
        for _, ns in missing:
            ns.stats.misses += 1
        return results

    async def _get_many_l2(
        self,
        keys: Sequence[str],
        missing: list[tuple[int, Namespace]],
        results: list[Any],
        default: Any,
    ) -> None:
        levels = self._levels
        assert levels.backend is not None
        epoch = levels.epoch
        try:
            raws = await levels.l2(levels.backend.get_many, [keys[i] for i, _ in missing])
            opened = await levels.open_many(raws)
        except CacheUnavailable:
            return
        now, still = levels.wall(), []
        for (i, ns), raw, (env, value) in zip(missing, raws, opened, strict=True):
            if env is None or raw is None or not env.fresh(now):
                ns.stats.l2_misses += 1
                still.append((i, ns))
                continue
            ns.stats.l2_hits += 1
            levels.remember(keys[i], ns, env, value, len(raw), epoch)
            results[i] = default if env.negative else value
        missing[:] = still

    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        ttl: TTL = ...,
        tags: Iterable[str] = (),
        namespace: str | None = None,
    ) -> T:
        """The value at ``key``; on a miss ``loader()`` runs once across all processes.

        A ``None`` from the loader is "not found", cached for the namespace's
        ``negative_ttl``. Stale entries are served while one refresher reloads,
        and entries near expiry are refreshed early (XFetch).
        """
        ns = self.namespace(key, namespace)
        ttl_ = ns.ttl if ttl is ... else ttl
        return await self._filler.get_or_load(key, loader, ns, ttl_, tuple(tags), None)  # type: ignore[no-any-return]

    # -- writes and invalidation -----------------------------------------------

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: TTL = ...,
        tags: Iterable[str] = (),
        namespace: str | None = None,
    ) -> None:
        """Store ``value`` at ``key`` everywhere; other instances drop their L1 copy."""
        ns = self.namespace(key, namespace)
        await self._write(ns, [(key, value)], ns.ttl if ttl is ... else ttl, tuple(tags))

    async def set_many(
        self,
        items: Mapping[str, Any] | Iterable[tuple[str, Any]],
        *,
        ttl: TTL = ...,
        tags: Iterable[str] = (),
        namespace: str | None = None,
    ) -> None:
        """``set`` for many keys, grouped by namespace (one round trip per step)."""
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        groups: dict[str, tuple[Namespace, list[tuple[str, Any]]]] = {}
        for k, value in pairs:
            ns = self.namespace(k, namespace)
            groups.setdefault(ns.name, (ns, []))[1].append((k, value))
        tags_ = tuple(tags)
        for ns, group in groups.values():
            await self._write(ns, group, ns.ttl if ttl is ... else ttl, tags_)

    async def _write(
        self, ns: Namespace, items: list[tuple[str, Any]], ttl: float | None, tags: tuple[str, ...]
    ) -> None:
        levels = self._levels
        backend = levels.backend
        keys = [k for k, _ in items]
        use_l2 = backend is not None and levels.l2_usable()
        versions: Sequence[int] = (0,) * len(tags)
        if use_l2 and tags:
            assert backend is not None
            try:
                versions = await levels.l2(backend.tag_versions, tags)
            except CacheUnavailable:
                use_l2 = False
        entries = []
        for k, value in items:
            env, hard_ttl = levels.envelope(
                ns, ttl, delta=0.0, negative=False, token=0, tags=tags, tag_versions=versions
            )
            blob = levels.encode(env, value)
            entries.append((k, env, blob, hard_ttl, levels.round_trip(blob)))
        levels.drop_local(keys, ())
        epoch = levels.epoch
        if use_l2:
            assert backend is not None
            try:
                # Bump the key versions first: a fill that read them before can no longer land.
                await levels.l2(backend.delete, *keys)
                await levels.l2(backend.set_many, [(k, b, t) for k, _, b, t, _ in entries])
                await self._publish(keys, ())
            except CacheUnavailable:
                self._defer(keys, ())
        elif backend is not None:
            self._defer(keys, ())
        for k, env, blob, _, value in entries:
            levels.remember(k, ns, env, value, len(blob), epoch)

    async def delete(self, *keys: str) -> None:
        """Remove ``keys`` everywhere; fills racing this are not stored."""
        await self._invalidate(tuple(keys), ())

    async def invalidate_tags(self, *tags: str) -> None:
        """Invalidate every entry carrying any of ``tags``: one counter bump per tag, no scan."""
        await self._invalidate((), tuple(tags))

    async def _invalidate(self, keys: tuple[str, ...], tags: tuple[str, ...]) -> None:
        if not keys and not tags:
            return
        levels = self._levels
        levels.drop_local(keys, tags)
        if levels.backend is None:
            return
        if not levels.l2_usable() or not await self._invalidate_l2(keys, tags):
            self._defer(keys, tags)
        if self.settings.reinvalidate_after is not None:
            self._spawn(self._reinvalidate(keys, tags), "reinvalidate")

    async def _invalidate_l2(self, keys: Sequence[str], tags: Sequence[str]) -> bool:
        levels, backend = self._levels, self._levels.backend
        assert backend is not None
        try:
            calls = []
            if keys:
                calls.append(levels.l2(backend.delete, *keys))
            if tags:
                calls.append(levels.l2(backend.bump_tags, tags))
            await asyncio.gather(*calls)
            await self._publish(keys, tags)
        except CacheUnavailable:
            return False
        return True

    async def _publish(self, keys: Sequence[str], tags: Sequence[str]) -> None:
        if self.invalidation is not None:
            self.last_published = await self.invalidation.publish(list(keys), list(tags))

    async def _reinvalidate(self, keys: tuple[str, ...], tags: tuple[str, ...]) -> None:
        """Repeat an invalidation once replicas caught up: drops fills that read a lagging one."""
        await asyncio.sleep(self.settings.reinvalidate_after or 0)
        self._levels.drop_local(keys, tags)
        if not self._levels.l2_usable() or not await self._invalidate_l2(keys, tags):
            self._defer(keys, tags)

    def _defer(self, keys: Sequence[str], tags: Sequence[str]) -> None:
        """Queue an invalidation Redis could not take; L2 is not read until it is replayed."""
        levels = self._levels
        levels.pending.append((tuple(keys), tuple(tags)))
        _log.warning("cache_invalidation_deferred", keys=len(keys), tags=len(tags))
        if self._replayer is None or self._replayer.done():
            self._replayer = self._spawn(self._replay(), "replay")

    async def _replay(self) -> None:
        levels = self._levels
        while levels.pending:
            await asyncio.sleep(min(self.settings.breaker_reset, 0.5))
            batch = list(levels.pending)
            keys = tuple({k for ks, _ in batch for k in ks})
            tags = tuple({t for _, ts in batch for t in ts})
            if await self._invalidate_l2(keys, tags):
                del levels.pending[: len(batch)]
                _log.info("cache_invalidation_replayed", keys=len(keys), tags=len(tags))
