"""LocalLRU: LRU order, entry and byte bounds, TTL and stale window on an injected clock."""

from __future__ import annotations

import pytest

from tenfold.cache._l1 import ENTRY_OVERHEAD, MISS, LocalLRU
from tenfold.testing import ManualClock as Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_get_returns_value_or_miss(clock: Clock) -> None:
    """A stored value comes back; an unknown key is MISS, which is falsy and not None."""
    lru = LocalLRU(clock=clock)
    lru.set("a", None, 10)
    assert lru.get("a") is None
    assert lru.get("b") is MISS
    assert not MISS
    assert repr(MISS) == "MISS"


def test_entry_bound_evicts_least_recently_used(clock: Clock) -> None:
    """Past max_entries the least recently *used* entry goes, and evictions are counted."""
    lru = LocalLRU(max_entries=3, clock=clock)
    for k in "abc":
        lru.set(k, k, 10)
    lru.get("a")  # a is now the most recent; b is the oldest
    lru.set("d", "d", 10)
    assert [lru.get(k) for k in "abcd"] == ["a", MISS, "c", "d"]
    assert lru.evictions == 1
    assert len(lru) == 3


def test_byte_bound_evicts_until_it_fits(clock: Clock) -> None:
    """The byte bound (value size + per-entry overhead) evicts oldest entries first."""
    lru = LocalLRU(max_bytes=3 * (100 + ENTRY_OVERHEAD), clock=clock)
    for k in "abc":
        lru.set(k, k, 10, size=100)
    assert lru.nbytes == 3 * (100 + ENTRY_OVERHEAD)
    lru.set("d", "d", 10, size=250)
    assert [k for k in "abcd" if k in lru] == ["c", "d"]
    assert lru.evictions == 2
    assert lru.nbytes <= lru.max_bytes


def test_value_larger_than_the_bound_is_not_stored(clock: Clock) -> None:
    """An entry that alone exceeds max_bytes is refused and evicts nothing."""
    lru = LocalLRU(max_bytes=1000, clock=clock)
    lru.set("small", "x", 10)
    assert lru.set("huge", b"x" * 5000, 10) is False
    assert "huge" not in lru
    assert lru.get("small") == "x"
    assert lru.evictions == 0


def test_size_is_estimated_when_not_given(clock: Clock) -> None:
    """Without size the byte cost comes from len() or the JSON length of the value."""
    lru = LocalLRU(clock=clock)
    lru.set("s", "x" * 500, 10)
    lru.set("j", {"k": "v" * 300}, 10)
    assert lru.nbytes == 500 + ENTRY_OVERHEAD + len('{"k":""}') + 300 + ENTRY_OVERHEAD


def test_ttl_expires_on_the_injected_clock(clock: Clock) -> None:
    """An entry is fresh before its TTL and a MISS at and after it; None means no expiry."""
    lru = LocalLRU(clock=clock)
    lru.set("a", 1, 10)
    lru.set("forever", 2, None)
    clock.now += 9.999
    assert lru.get("a") == 1
    clock.now += 0.001
    assert lru.get("a") is MISS
    assert "a" not in lru
    clock.now += 10**9
    assert lru.get("forever") == 2


def test_stale_window_serves_get_entry_not_get(clock: Clock) -> None:
    """Past the TTL but within stale_ttl, get() misses while get_entry() returns the entry."""
    lru = LocalLRU(clock=clock)
    lru.set("a", "v", 10, stale_ttl=5, tags=["t"], versions=[3])
    clock.now += 12
    assert lru.get("a") is MISS
    entry = lru.get_entry("a")
    assert entry is not None
    assert entry.value == "v"
    assert entry.expires < clock.now < entry.stale_until
    assert entry.tags == ("t",)
    assert entry.versions == (3,)
    clock.now += 3
    assert lru.get_entry("a") is None
    assert "a" not in lru


def test_non_positive_ttl_is_not_stored(clock: Clock) -> None:
    """ttl <= 0 without a stale window stores nothing and drops the old value."""
    lru = LocalLRU(clock=clock)
    lru.set("a", 1, 10)
    assert lru.set("a", 2, 0) is False
    assert lru.get("a") is MISS


def test_overwrite_replaces_value_and_accounting(clock: Clock) -> None:
    """Setting a key again replaces it and charges only the new size."""
    lru = LocalLRU(clock=clock)
    lru.set("a", "x", 10, size=100)
    lru.set("a", "y", 10, size=10)
    assert lru.get("a") == "y"
    assert lru.nbytes == 10 + ENTRY_OVERHEAD
    assert len(lru) == 1


def test_delete_invalidate_tags_and_clear(clock: Clock) -> None:
    """delete drops one key, invalidate_tags every key with a tag, clear everything."""
    lru = LocalLRU(clock=clock)
    lru.set("a", 1, 10, tags=["user:1", "team:9"])
    lru.set("b", 2, 10, tags=["user:1"])
    lru.set("c", 3, 10, tags=["team:9"])
    lru.set("d", 4, 10)
    assert lru.delete("d") is True
    assert lru.delete("d") is False
    assert lru.invalidate_tags(["user:1"]) == 2
    assert [k for k in "abcd" if k in lru] == ["c"]
    assert lru.invalidate_tags(["team:9", "nobody"]) == 1
    lru.set("e", 5, 10)
    lru.clear()
    assert len(lru) == 0
    assert lru.nbytes == 0


def test_tag_index_forgets_evicted_entries(clock: Clock) -> None:
    """An entry evicted by the bound no longer answers to its tag."""
    lru = LocalLRU(max_entries=1, clock=clock)
    lru.set("a", 1, 10, tags=["t"])
    lru.set("b", 2, 10, tags=["t"])
    assert lru.invalidate_tags(["t"]) == 1
    assert len(lru) == 0


def test_purge_expired_sweeps_dead_entries(clock: Clock) -> None:
    """purge_expired drops entries past their stale window and keeps the rest."""
    lru = LocalLRU(clock=clock)
    lru.set("old", 1, 1)
    lru.set("stale", 2, 1, stale_ttl=100)
    lru.set("new", 3, 100)
    clock.now += 50
    assert lru.purge_expired() == 1
    assert [k for k in ("old", "stale", "new") if k in lru] == ["stale", "new"]


def test_bounds_must_be_positive() -> None:
    """A zero bound is a configuration error, caught at construction."""
    with pytest.raises(ValueError, match="max_entries"):
        LocalLRU(max_entries=0)
