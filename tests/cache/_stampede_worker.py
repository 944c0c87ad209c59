"""One process of the stampede test: N concurrent cold get_or_load calls on one key.

    python _stampede_worker.py <redis url|cluster nodes> <key part> <counter key> <calls>

Prints ``ready`` once its cache is started, waits for ``go`` on stdin, then
prints one JSON line: the values it got. The loader counts itself with INCR
on ``<counter key>`` (a place every process shares) and takes 200 ms, so the
processes' fills overlap.
"""

from __future__ import annotations

import asyncio
import json
import sys

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from tenfold import CacheSettings, RedisSettings
from tenfold.cache import NamespacePolicy
from tenfold.cache._cache import Cache


async def main(target: str, part: str, counter: str, calls: int) -> None:
    if target.startswith("redis://"):
        redis = RedisSettings(url=target)
        raw = aioredis.Redis.from_url(target)
    else:
        nodes = target.split(",")
        redis = RedisSettings(cluster_nodes=nodes)
        host, port = nodes[0].rsplit(":", 1)
        raw = RedisCluster(host=host, port=int(port))
    # Waiters wait for the holder however busy the machine: the test counts loader calls.
    settings = CacheSettings(
        redis_timeout=2.0, lock_wait=10.0, warm_check_interval=None
    ).with_namespaces(tournament=NamespacePolicy(ttl=300, stale_ttl=60))
    cache = Cache(settings, redis)
    await cache.start()

    async def loader() -> dict[str, int]:
        n = await raw.incr(counter)
        await asyncio.sleep(0.2)
        return {"loaded": n}

    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    key = cache.key("tournament", part)
    values = await asyncio.gather(*(cache.get_or_load(key, loader) for _ in range(calls)))
    stats = cache.stats.namespace("tournament")
    print(json.dumps({"values": values, "merges": stats.merges, "waits": stats.lock_waits}))
    await cache.stop()
    await raw.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
