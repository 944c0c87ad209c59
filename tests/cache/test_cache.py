"""Cache semantics, the same on every level setup: L1 only, memory, Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
from typing import Any

from tenfold.cache import CacheSettings, NamespacePolicy

from .conftest import FakeClock, eventually


class Loader:
    """A loader that counts its calls and can be held until released."""

    def __init__(self, value: Any = "v", *, hold: bool = False) -> None:
        self.value = value
        self.calls = 0
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        if not hold:
            self.release.set()

    async def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        return self.value() if callable(self.value) else self.value


async def test_set_get_round_trip_and_default(make_cache, ns: str) -> None:
    """A set value is read back; a missing key gives the default."""
    cache = await make_cache()
    k = cache.key(ns, "a")
    assert await cache.get(k) is None
    assert await cache.get(k, "dflt") == "dflt"
    await cache.set(k, {"name": "Kegstand Kings", "points": [1, 2]})
    assert await cache.get(k) == {"name": "Kegstand Kings", "points": [1, 2]}


async def test_second_instance_reads_what_first_wrote(make_cache, kind: str, ns: str) -> None:
    """With a shared L2, a value set on one instance is read on another (L1 only: not shared)."""
    one, two = await make_cache(), await make_cache()
    k = one.key(ns, "shared")
    await one.set(k, 7)
    assert await two.get(k) == (None if kind == "l1-only" else 7)


async def test_namespace_ttl_policy(make_cache, clock: FakeClock, ns: str) -> None:
    """Entries expire after their namespace's TTL, and apps can declare namespaces."""
    settings = CacheSettings().with_namespaces(**{ns: 30, "immutable": None})
    cache = await make_cache(settings)
    short, long_ = cache.key(ns, 1), cache.key("immutable", ns)
    await cache.set(short, "s")
    await cache.set(long_, "forever")
    clock.advance(29)
    assert await cache.get(short) == "s"
    clock.advance(2)
    assert await cache.get(short) is None
    clock.advance(10 * 365 * 86400)
    assert await cache.get(long_) == "forever"


async def test_explicit_ttl_wins_over_policy(make_cache, clock: FakeClock, ns: str) -> None:
    """A ttl passed to set overrides the namespace's TTL."""
    cache = await make_cache()
    k = cache.key("profile", ns)
    await cache.set(k, "x", ttl=2)
    clock.advance(3)
    assert await cache.get(k) is None


async def test_delete_removes_everywhere(make_cache, kind: str, ns: str) -> None:
    """delete drops the key from L1 and L2, on this instance and (via pub/sub) on the others."""
    one, two = await make_cache(), await make_cache()
    k = one.key(ns, "gone")
    await one.set(k, "old")
    if kind != "l1-only":
        assert await two.get(k) == "old"  # now in two's L1 as well
    await one.delete(k)
    assert await one.get(k) is None
    await eventually(_missing(two, k), "the delete to reach the second instance")


def _missing(cache, k: str):
    async def check() -> bool:
        return await cache.get(k) is None

    return check


async def test_get_many_and_set_many(make_cache, ns: str) -> None:
    """get_many answers in order with defaults for misses; set_many stores them all."""
    cache = await make_cache()
    keys = [cache.key(ns, i) for i in range(5)]
    await cache.set_many({keys[0]: 0, keys[2]: 2})
    await cache.set_many([(keys[4], 4)])
    assert await cache.get_many(keys, default="-") == [0, "-", 2, "-", 4]


async def test_get_many_reads_l2_after_l1_loss(make_cache, kind: str, ns: str) -> None:
    """get_many finds in L2 what this instance's L1 no longer holds."""
    cache = await make_cache()
    keys = [cache.key(ns, i) for i in range(3)]
    await cache.set_many({k: i for i, k in enumerate(keys)})
    cache.l1.clear()
    expected = [None] * 3 if kind == "l1-only" else [0, 1, 2]
    assert await cache.get_many(keys) == expected


async def test_get_or_load_loads_once_per_process(make_cache, ns: str) -> None:
    """100 concurrent cold calls on one key share one loader call."""
    cache = await make_cache()
    loader = Loader({"n": 1}, hold=True)
    k = cache.key(ns, "hot")
    calls = [asyncio.create_task(cache.get_or_load(k, loader)) for _ in range(100)]
    await loader.started.wait()
    loader.release.set()
    assert await asyncio.gather(*calls) == [{"n": 1}] * 100
    assert loader.calls == 1
    assert cache.stats.namespace(ns).merges == 99


async def test_get_or_load_hits_after_fill(make_cache, ns: str) -> None:
    """A second get_or_load is a hit: the loader is not called again."""
    cache = await make_cache()
    loader = Loader(["a"])
    k = cache.key(ns, "x")
    assert await cache.get_or_load(k, loader) == ["a"]
    assert await cache.get_or_load(k, loader) == ["a"]
    assert loader.calls == 1
    assert cache.stats.namespace(ns).l1_hits == 1


async def test_loader_error_reaches_every_waiter_and_is_not_cached(make_cache, ns: str) -> None:
    """A loader that raises fails all merged callers, and the next call loads again."""
    cache = await make_cache()
    k = cache.key(ns, "boom")
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise LookupError("db down")

    results = await asyncio.gather(
        *(cache.get_or_load(k, failing) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)
    assert await cache.get_or_load(k, Loader("ok")) == "ok"
    assert cache.stats.namespace(ns).load_errors >= 1


async def test_negative_caching_has_its_own_ttl(make_cache, clock: FakeClock, ns: str) -> None:
    """A None from the loader is cached for negative_ttl, then loaded again."""
    settings = CacheSettings(negative_ttl=10).with_namespaces(**{ns: 3600})
    cache = await make_cache(settings)
    loader = Loader(None)
    k = cache.key(ns, "nobody")
    assert await cache.get_or_load(k, loader) is None
    assert await cache.get_or_load(k, loader) is None
    assert loader.calls == 1
    assert await cache.get(k, "dflt") == "dflt"  # a cached "not found" reads as a miss
    clock.advance(11)
    assert await cache.get_or_load(k, loader) is None
    assert loader.calls == 2


async def test_tag_invalidation_drops_only_tagged_entries(make_cache, ns: str) -> None:
    """invalidate_tags drops every entry carrying the tag and nothing else."""
    cache = await make_cache()
    team, other = f"{ns}:team:7", f"{ns}:team:8"
    keys = [cache.key(ns, i) for i in range(4)]
    for i, k in enumerate(keys):
        await cache.get_or_load(k, Loader(i), tags=[team if i < 3 else other])
    await cache.invalidate_tags(team)
    fresh = Loader("new")
    assert [await cache.get_or_load(k, fresh, tags=[team]) for k in keys[:3]] == ["new"] * 3
    assert await cache.get(keys[3]) == 3
    assert fresh.calls == 3


async def test_tagged_set_is_invalidated_by_tag(make_cache, kind: str, ns: str) -> None:
    """A value stored with set(tags=...) goes when its tag is invalidated, on every instance."""
    one, two = await make_cache(), await make_cache()
    k, tag = one.key(ns, "p"), f"{ns}:player:1"
    await one.set(k, "v", tags=[tag])
    if kind != "l1-only":
        assert await two.get(k) == "v"
    await two.invalidate_tags(tag)
    assert await two.get(k) is None
    if kind != "l1-only":  # separate L1-only caches share nothing, tags included
        await eventually(_missing(one, k), "the tag invalidation to reach the first instance")


async def test_stale_while_revalidate(make_cache, clock: FakeClock, ns: str) -> None:
    """Past its TTL but inside stale_ttl, the old value is served while ONE refresh reloads."""
    policy = NamespacePolicy(ttl=10, stale_ttl=60)
    cache = await make_cache(CacheSettings(xfetch_beta=0).with_namespaces(**{ns: policy}))
    k = cache.key(ns, "board")
    await cache.get_or_load(k, Loader("old"))
    clock.advance(15)
    refresh = Loader("new", hold=True)
    served = [await cache.get_or_load(k, refresh) for _ in range(20)]
    assert served == ["old"] * 20
    await refresh.started.wait()
    refresh.release.set()
    await eventually(lambda: cache.l1.get(k) == "new", "the refresh to land")
    assert await cache.get_or_load(k, refresh) == "new"
    assert refresh.calls == 1
    clock.advance(200)  # beyond the stale window: a plain miss again
    assert await cache.get(k) is None


async def test_xfetch_refreshes_early_with_injected_rng(make_cache, clock: FakeClock, ns: str):
    """Near expiry, a draw of the injected RNG triggers one early refresh; far from it none."""
    draws: list[float] = []

    def rng() -> float:
        draws.append(0.999999)
        return 0.999999  # -ln(1e-6) ~ 13.8: refresh once within ~13.8 * delta of expiry

    cache = await make_cache(CacheSettings(xfetch_beta=1).with_namespaces(**{ns: 100}), rng=rng)
    k = cache.key(ns, "x")

    async def slow() -> str:
        clock.advance(1.0)  # the loader "takes" 1 s: delta = 1
        return "first"

    await cache.get_or_load(k, slow)
    clock.advance(50)  # 49 s left: more than 20 * delta, no draw at all
    assert await cache.get_or_load(k, Loader("second")) == "first"
    assert draws == []
    clock.advance(40)  # 9 s left: the draw says refresh
    second = Loader("second")
    assert await cache.get_or_load(k, second) == "first"  # served at once, refreshed behind
    await eventually(lambda: second.calls == 1 and cache.l1.get(k) == "second", "early refresh")
    assert cache.stats.namespace(ns).early_refreshes == 1


async def test_invalidation_racing_a_slow_fill_is_not_stored(make_cache, ns: str) -> None:
    """A loader that read before an invalidation returns its old value, but it is not stored."""
    cache = await make_cache()
    k, tag = cache.key(ns, "slow"), f"{ns}:t"
    for invalidate in (lambda: cache.delete(k), lambda: cache.invalidate_tags(tag)):
        slow = Loader("stale", hold=True)
        fill = asyncio.create_task(cache.get_or_load(k, slow, tags=[tag]))
        await slow.started.wait()
        await invalidate()  # the write happened; the slow loader read before it
        slow.release.set()
        assert await fill == "stale"  # its caller gets what it loaded...
        assert await cache.get(k) is None  # ...but nobody else will
        assert await cache.get_or_load(k, Loader("fresh"), tags=[tag]) == "fresh"
        await cache.delete(k)
    assert cache.stats.namespace(ns).rejected_fills == 2


async def test_write_through_set_beats_racing_fill(make_cache, ns: str) -> None:
    """A set during a slow fill wins: the fill's older value does not overwrite it."""
    cache = await make_cache()
    k = cache.key(ns, "w")
    slow = Loader("from-loader", hold=True)
    fill = asyncio.create_task(cache.get_or_load(k, slow))
    await slow.started.wait()
    await cache.set(k, "written")
    slow.release.set()
    await fill
    assert await cache.get(k) == "written"


async def test_unserializable_value_is_a_loud_error(make_cache, ns: str) -> None:
    """A value the serializer cannot store fails the same way on every profile."""
    from tenfold.cache._errors import CacheSerializationError

    cache = await make_cache()
    try:
        await cache.set(cache.key(ns, "obj"), object())
    except CacheSerializationError:
        pass
    else:
        raise AssertionError("expected CacheSerializationError")
