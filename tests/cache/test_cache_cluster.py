"""Tag invalidation on Redis Cluster: one call invalidates keys living on every master."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tenfold import CacheSettings, RedisSettings
from tenfold.cache._cache import Cache
from tenfold.cache._keys import tag_key
from tenfold.testing import RedisCluster

from .conftest import eventually, with_test_namespaces


def _master_of(cluster: RedisCluster, name: str) -> int:
    """The port of the master serving ``name``'s slot (asked from Redis itself)."""
    slot = int(cluster.nodes[0].command("CLUSTER", "KEYSLOT", name))
    for start, end, master, *_ in cluster.nodes[0].command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(master[1])
    raise AssertionError(f"slot {slot} has no master")


@pytest.fixture
async def caches(redis_cluster: RedisCluster) -> AsyncIterator[list[Cache]]:
    """Two instances on the Cluster."""
    settings = with_test_namespaces(CacheSettings(redis_timeout=2.0, warm_check_interval=None))
    made = [Cache(settings, RedisSettings(cluster_nodes=redis_cluster.startup_nodes))]
    made.append(Cache(settings, RedisSettings(cluster_nodes=redis_cluster.startup_nodes)))
    for cache in made:
        await cache.start()
    yield made
    for cache in made:
        await cache.stop()


async def test_one_tag_call_invalidates_keys_on_all_masters(
    caches: list[Cache], redis_cluster: RedisCluster
) -> None:
    """Entries on all 3 masters sharing a tag are gone, in L2 and in every L1, after one
    invalidate_tags call that wrote a single counter."""
    one, two = caches
    run = uuid.uuid4().hex
    tag = f"tournament:{run}"
    keys = [one.key("tournament", run, i) for i in range(30)]
    masters = {_master_of(redis_cluster, k) for k in keys}
    assert len(masters) == 3, "the keys must spread over every master"
    for i, k in enumerate(keys):
        await one.set(k, i, tags=[tag])
    assert await two.get_many(keys) == list(range(30))  # now in two's L1 as well

    await one.invalidate_tags(tag)

    assert int(redis_cluster.client().get(tag_key(tag))) == 1  # one counter, one write
    assert await one.get_many(keys) == [None] * 30
    await eventually(lambda: not any(k in two.l1 for k in keys), "two's L1 to drop them")
    assert await two.get_many(keys) == [None] * 30
    # The entries are still in Redis (no scan, no per-key delete), but no reader accepts them.
    assert all(redis_cluster.client().exists(k) for k in keys[:3])
