"""One process of the exact-limit test: fire hits at one key with its own RedisBackend.

    python _hit_worker.py <redis url|cluster nodes> <key> <hits> <limit> <period> <algorithm>

Prints ``ready`` once connected, waits for ``go`` on stdin, fires ``hits``
decisions (50 at a time), then prints the number it was admitted.
"""

from __future__ import annotations

import asyncio
import sys

from tenfold.ratelimit import Rate, RedisBackend, Rule


async def main(target: str, key: str, hits: int, limit: int, period: float, algorithm: str) -> None:
    if target.startswith("redis://"):
        backend = RedisBackend.from_url(target, socket_timeout=5.0, pool_timeout=5.0)
    else:
        backend = RedisBackend.from_cluster(target.split(","), socket_timeout=5.0, pool_timeout=5.0)
    rule = Rule(Rate(limit, period), algorithm=algorithm)
    await backend.hit(key + ":warm-up", rule)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    admitted = 0

    async def fire(n: int) -> None:
        nonlocal admitted
        for _ in range(n):
            decision = await backend.hit(key, rule)  # awaited first: += would read stale
            admitted += decision.allowed

    await asyncio.gather(*(fire(hits // 50 + (i < hits % 50)) for i in range(50)))
    print(admitted, flush=True)
    await backend.aclose()


if __name__ == "__main__":
    target, key, hits, limit, period, algorithm = sys.argv[1:]
    asyncio.run(main(target, key, int(hits), int(limit), float(period), algorithm))
