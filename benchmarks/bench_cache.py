"""What tenfold.cache costs per hit, against the peers, measured in the same run.

Part 1, L1 hit: ``LocalLRU.get`` on a warm key (a sync call, and the same call
behind an ``async def`` so it pays what an awaited cache pays) against
cashews ``mem://`` and aiocache ``SimpleMemoryCache``. Target: <= 0.5 µs.

Part 2, L2 hit: ``RedisBackend.get`` + ``OrjsonSerializer.loads`` of a small
JSON value against a raw redis-py ``GET`` of the same bytes, one task and
16 concurrent tasks. Target: <= 1.3x raw. Then the compression threshold:
read + decode of values of growing size, stored plain or zlib'd.

Part 3, ``@cached`` hit path: an L1 hit through the decorator (key memo, L1
read, counters) against a direct call of an async function returning a
constant. Part 4, Zipf(1.1) over 100k keys with a 2 ms loader: hit ratio and
loader calls per 1000 requests, cold then warm. Target: >= 95% once warm.

Rounds are interleaved and the median round is reported. Redis is started
with ``tenfold.testing`` (or ``TENFOLD_TEST_REDIS_URL`` is used). The figures,
ratios and targets go to ``benchmarks/results/bench_cache.json``.

    .venv/bin/python benchmarks/bench_cache.py [--quick]
    python -m benchmarks bench_cache
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from tenfold.cache._keys import key
from tenfold.cache._l1 import LocalLRU
from tenfold.cache._redis import RedisBackend
from tenfold.cache._serde import OrjsonSerializer
from tenfold.testing import RedisServer

if not __package__:  # run as a file, not with -m: put the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._results import Results, Target, record

KEYS = 1_000
SMALL = {"id": 42, "name": "Kegstand Kings", "points": 1234, "rank": 3, "tags": ["a", "b"]}
#: The policy of the "profile" namespace the runs read (fresh well past any run).
PROFILE = {"ttl": 3600, "stale_ttl": 300}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--l1-gets", type=int, default=300_000, help="L1 gets per round")
    parser.add_argument("--l2-gets", type=int, default=20_000, help="L2 gets per round")
    parser.add_argument("--tasks", type=int, default=16, help="concurrent tasks for L2")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.quick:
        args.l1_gets, args.l2_gets, args.rounds = 30_000, 2_000, 1
    return args


def _tasks_label(tasks: int) -> str:
    return "1-task" if tasks == 1 else f"{tasks}-tasks"


def _targets(tasks: int) -> dict[str, Target]:
    """What docs/benchmarks.md holds the cache to; reported after each run, never enforced."""
    l2 = Target.at_most(1.3)
    return {
        "l1.LocalLRU.us_per_get": Target.at_most(0.5),
        **{f"RedisBackend/redis-py.{_tasks_label(n)}.us_per_get": l2 for n in (1, tasks)},
        "zipf.warm.hit_ratio": Target.at_least(0.95),
    }


def _median(values: list[float]) -> float:
    return statistics.median(values)


# -- part 1: L1 ---------------------------------------------------------------


async def _time_async(get: Callable[[str], Awaitable[Any]], keys: list[str], n: int) -> float:
    """Mean µs per awaited get over ``n`` gets cycling through ``keys``."""
    batch = (keys * (n // len(keys) + 1))[:n]
    started = time.perf_counter()
    for k in batch:
        await get(k)
    return (time.perf_counter() - started) / n * 1e6


def _time_sync(get: Callable[[str], Any], keys: list[str], n: int) -> float:
    batch = (keys * (n // len(keys) + 1))[:n]
    started = time.perf_counter()
    for k in batch:
        get(k)
    return (time.perf_counter() - started) / n * 1e6


#: Each L1 contender's printed name and the name its figure is recorded under.
_L1_NAMES = {
    "LocalLRU.get (sync)": "LocalLRU",
    "LocalLRU.get (awaited)": "LocalLRU-awaited",
    "cashews mem://": "cashews-mem",
    "aiocache SimpleMemory": "aiocache-memory",
}


async def _l1_contenders(keys: list[str]) -> dict[str, Callable[[list[str], int], Any]]:
    from aiocache import SimpleMemoryCache
    from cashews import Cache

    lru = LocalLRU(max_entries=10 * KEYS)
    cashews = Cache()
    cashews.setup("mem://")
    aiocache = SimpleMemoryCache()
    for k in keys:
        lru.set(k, SMALL, 3600)
        await cashews.set(k, SMALL, expire=3600)
        await aiocache.set(k, SMALL, ttl=3600)
    lru_get = lru.get

    async def lru_async(k: str) -> Any:
        return lru_get(k)

    for k in keys:  # every contender answers hits, never misses
        assert lru_get(k) == SMALL
        assert await cashews.get(k) == SMALL
        assert await aiocache.get(k) == SMALL
    return {
        "LocalLRU.get (sync)": lambda ks, n: _time_sync(lru_get, ks, n),
        "LocalLRU.get (awaited)": lambda ks, n: _time_async(lru_async, ks, n),
        "cashews mem://": lambda ks, n: _time_async(cashews.get, ks, n),
        "aiocache SimpleMemory": lambda ks, n: _time_async(aiocache.get, ks, n),
    }


async def bench_l1(args: argparse.Namespace, results: Results) -> dict[str, float]:
    keys = [key("bench", "player", i) for i in range(KEYS)]
    contenders = await _l1_contenders(keys)
    rounds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            result = run(keys, args.l1_gets)
            rounds[name].append(await result if asyncio.iscoroutine(result) else result)
    us = {name: _median(values) for name, values in rounds.items()}
    print(f"\nPart 1, L1 hit: {args.l1_gets} gets over {KEYS} warm keys, median of {args.rounds}")
    ours = us["LocalLRU.get (sync)"]
    for name, value in us.items():
        print(f"  {name:<24}{value:8.3f} µs/get   {value / ours:6.1f}x LocalLRU.get")
        results.figures[f"l1.{_L1_NAMES[name]}.us_per_get"] = value
    print(
        f"  cashews/LocalLRU = {us['cashews mem://'] / ours:.1f}x, "
        f"aiocache/LocalLRU = {us['aiocache SimpleMemory'] / ours:.1f}x"
    )
    # Printed as the peer's time over ours: ours/peer by gets per second.
    for peer in ("cashews mem://", "aiocache SimpleMemory"):
        results.ratios[f"LocalLRU/{_L1_NAMES[peer]}.gets_per_s"] = us[peer] / ours
    return us


# -- part 2: L2 ---------------------------------------------------------------


async def _time_l2(get: Callable[[str], Awaitable[Any]], keys: list[str], n: int, tasks: int):
    per_task = n // tasks

    async def worker(offset: int) -> None:
        for i in range(per_task):
            await get(keys[(offset + i) % len(keys)])

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(t * 97) for t in range(tasks)))
    done = per_task * tasks
    return (time.perf_counter() - started) / done * 1e6, (time.process_time() - cpu) / done * 1e6


async def bench_l2(args: argparse.Namespace, url: str, results: Results) -> dict[str, float]:
    backend = RedisBackend.from_url(url, max_connections=args.tasks)
    raw = aioredis.Redis.from_url(url, max_connections=args.tasks)
    serializer = OrjsonSerializer()
    keys = [key("bench", "l2", i) for i in range(KEYS)]
    blob = serializer.dumps(SMALL)
    await backend.set_many([(k, blob, 3600) for k in keys])

    async def ours(k: str) -> Any:
        return serializer.loads(await backend.get(k))  # type: ignore[arg-type]

    variants = {"RedisBackend.get+loads": ours, "redis-py GET (raw bytes)": raw.get}
    recorded = {"RedisBackend.get+loads": "RedisBackend", "redis-py GET (raw bytes)": "redis-py"}
    for get in variants.values():
        assert await get(keys[0]) in (SMALL, blob)
    timings: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        for _ in range(args.rounds):
            for tasks in (1, args.tasks):
                for name, get in variants.items():
                    n = args.l2_gets // (4 if tasks == 1 else 1)
                    timings.setdefault((name, tasks), []).append(
                        await _time_l2(get, keys, n, tasks)
                    )
        print(f"\nPart 2, L2 hit: {len(blob)}-byte JSON entry, median of {args.rounds} round(s)")
        results.figures["l2.entry_bytes"] = len(blob)
        ratios = {}
        for tasks in (1, args.tasks):
            wall = {n: _median([r[0] for r in timings[(n, tasks)]]) for n in variants}
            cpu = {n: _median([r[1] for r in timings[(n, tasks)]]) for n in variants}
            label = _tasks_label(tasks)
            for name in variants:
                print(
                    f"  {tasks:>2} task(s)  {name:<26}{wall[name]:8.1f} µs/get wall"
                    f"{cpu[name]:8.1f} µs/get client CPU"
                )
                results.figures[f"l2.{recorded[name]}.{label}.us_per_get"] = wall[name]
                results.figures[f"l2.{recorded[name]}.{label}.cpu_us_per_get"] = cpu[name]
            ours_us, raw_us = wall["RedisBackend.get+loads"], wall["redis-py GET (raw bytes)"]
            ratios[tasks] = ours_us / raw_us
            print(f"  {tasks:>2} task(s)  ratio ours/raw = {ratios[tasks]:.2f}x (target <= 1.3x)")
            results.ratios[f"RedisBackend/redis-py.{label}.us_per_get"] = ratios[tasks]
        await _bench_compression(args, backend, raw, results)
        return {f"ratio_{t}": r for t, r in ratios.items()}
    finally:
        await backend.aclose()
        await raw.aclose()


async def _bench_compression(
    args: argparse.Namespace, backend: RedisBackend, raw: Any, results: Results
) -> None:
    """Read + decode time of plain vs zlib'd entries by size: where compression pays."""
    plain, packed = (
        OrjsonSerializer(compress_threshold=None),
        OrjsonSerializer(compress_threshold=0),
    )
    print("\n  compression: get+loads µs (1 task) and stored bytes, plain vs zlib level 1")
    n = max(200, args.l2_gets // 20)
    for size in (256, 1024, 4096, 16384, 65536):
        rows = [{"id": i, "name": f"player {i}", "team": "Kegstand Kings"} for i in range(size)]
        value = rows[: max(1, size // len(orjson.dumps(rows[0])))]
        line = f"  {len(orjson.dumps(value)):>6} B JSON:"
        results.figures[f"compression.{size}B.json_bytes"] = len(orjson.dumps(value))
        for label, serializer in (("plain", plain), ("zlib", packed)):
            k = key("bench", "zip", label, size)
            await backend.set(k, serializer.dumps(value), 3600)
            stored = await raw.strlen(k)

            async def get(name: str, s: OrjsonSerializer = serializer) -> Any:
                return s.loads(await backend.get(name))  # type: ignore[arg-type]

            wall = _median([(await _time_l2(get, [k], n, 1))[0] for _ in range(args.rounds)])
            line += f"  {label} {wall:7.1f} µs {stored:>6} B"
            results.figures[f"compression.{size}B.{label}.us_per_get"] = wall
            results.figures[f"compression.{size}B.{label}.stored_bytes"] = stored
        print(line)


# -- part 3: the @cached hit path ---------------------------------------------


async def _constant(player_id: int) -> dict[str, Any]:
    return SMALL


#: Each call path's printed name and the name its figure is recorded under.
_CALL_NAMES = {
    "direct call": "direct-call",
    "@cached hit f(i)": "cached-hit",
    "@cached hit f(player_id=i)": "cached-hit-kwargs",
    "cache.get_or_load hit": "get_or_load-hit",
    "cache.get hit": "get-hit",
}


async def bench_cached_decorator(
    args: argparse.Namespace, url: str, results: Results
) -> dict[str, float]:
    """``@cached`` hit (L1) vs a direct call of an async function returning a constant."""
    from tenfold import CacheSettings, RedisSettings
    from tenfold.cache._cache import Cache
    from tenfold.cache._decorator import cached

    settings = CacheSettings(warm_check_interval=None).with_namespaces(profile=PROFILE)
    cache = Cache(settings, RedisSettings(url=url))
    await cache.start()
    player = cached(namespace="profile", cache=cache)(_constant)
    ids = list(range(KEYS))
    keys = [cache.key("profile", i) for i in ids]
    for i in ids:
        await player(i)  # warm: every call below is an L1 hit

    async def loader() -> dict[str, Any]:
        return SMALL

    async def run(call: Callable[[int], Awaitable[Any]], n: int) -> float:
        batch = (ids * (n // KEYS + 1))[:n]
        started = time.perf_counter()
        for i in batch:
            await call(i)
        return (time.perf_counter() - started) / n * 1e6

    variants: dict[str, Callable[[int], Awaitable[Any]]] = {
        "direct call": _constant,
        "@cached hit f(i)": player,
        "@cached hit f(player_id=i)": lambda i: player(player_id=i),
        "cache.get_or_load hit": lambda i: cache.get_or_load(keys[i], loader),
        "cache.get hit": lambda i: cache.get(keys[i]),
    }
    try:
        rounds: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, call in variants.items():
                rounds[name].append(await run(call, args.l1_gets // 2))
        assert cache.stats.namespace("profile").loader_calls == KEYS, "every timed call must hit"
    finally:
        await cache.stop()
    us = {name: _median(values) for name, values in rounds.items()}
    direct = us["direct call"]
    print(f"\nPart 3, @cached hit path: {args.l1_gets // 2} awaited calls, median of {args.rounds}")
    for name, value in us.items():
        print(f"  {name:<28}{value:8.3f} µs/call   {value / direct:6.1f}x direct")
        results.figures[f"decorator.{_CALL_NAMES[name]}.us_per_call"] = value
        if name != "direct call":
            results.ratios[f"{_CALL_NAMES[name]}/direct-call.us_per_call"] = value / direct
    overhead = us["@cached hit f(i)"] - direct
    print(f"  @cached overhead per hit: {overhead:.3f} µs")
    results.figures["decorator.cached-overhead.us_per_call"] = overhead
    return us


# -- part 4: Zipf workload -----------------------------------------------------

ZIPF_KEYS = 100_000
ZIPF_S = 1.1
LOADER_SECONDS = 0.002


def _zipf_sampler(n: int, s: float, seed: int) -> Callable[[], int]:
    """Draws ranks 0..n-1 with P(k) proportional to 1 / (k + 1) ** s (inverse CDF, bisect)."""
    import bisect
    import random
    from itertools import accumulate

    cdf = list(accumulate(1.0 / (k + 1) ** s for k in range(n)))
    total, rng = cdf[-1], random.Random(seed)
    return lambda: bisect.bisect_left(cdf, rng.random() * total)


async def bench_zipf(args: argparse.Namespace, url: str, results: Results) -> dict[str, float]:
    """Zipf(1.1) over 100k keys, 2 ms loader: hit ratio and loads per 1000 requests, per
    window of traffic from a cold start, then from a start with a warmer."""
    window = 20_000 if args.quick else 150_000
    windows = 6
    draw = _zipf_sampler(ZIPF_KEYS, ZIPF_S, seed=11)
    plan = [draw() for _ in range(window * windows)]
    print(
        f"\nPart 4, Zipf({ZIPF_S}) over {ZIPF_KEYS} keys, {LOADER_SECONDS * 1e3:.0f} ms loader, "
        f"{ZIPF_WORKERS} concurrent callers, L1 10000 entries + Redis, windows of {window}"
    )
    cold = await _zipf_run(url, [plan[i * window : (i + 1) * window] for i in range(windows)])
    warmed = await _zipf_run(url, [plan[:window]], warm_top=10_000)
    for i, r in enumerate(cold):
        _print_zipf(f"cold start, window {i + 1}", r)
        _record_zipf(results, f"zipf.cold.window-{i + 1}", r)
    _print_zipf("warmer (top 10k) + window 1", warmed[0])
    _record_zipf(results, "zipf.warmer.window-1", warmed[0])
    print(f"  once warm (the last window): hit ratio {cold[-1]['hit_ratio']:.2%}")
    results.figures["zipf.warm.hit_ratio"] = cold[-1]["hit_ratio"]
    results.figures["zipf.warm.loads_per_1000"] = cold[-1]["loads_per_1000"]
    return cold[-1]


ZIPF_WORKERS = 32


def _print_zipf(label: str, r: dict[str, float]) -> None:
    print(
        f"  {label:<30} hit ratio {r['hit_ratio']:6.2%} (L1 {r['l1_ratio']:6.2%}, "
        f"L2 {r['l2_ratio']:6.2%})  loader calls/1000 req {r['loads_per_1000']:6.1f}  "
        f"{r['rate']:7.0f} req/s"
    )


def _record_zipf(results: Results, prefix: str, r: dict[str, float]) -> None:
    results.figures[f"{prefix}.hit_ratio"] = r["hit_ratio"]
    results.figures[f"{prefix}.l1_hit_ratio"] = r["l1_ratio"]
    results.figures[f"{prefix}.l2_hit_ratio"] = r["l2_ratio"]
    results.figures[f"{prefix}.loads_per_1000"] = r["loads_per_1000"]
    results.figures[f"{prefix}.req_per_s"] = r["rate"]


async def _zipf_run(url: str, phases: list[list[int]], warm_top: int = 0) -> list[dict[str, float]]:
    """Run ``phases`` of requests against a fresh cache; figures per phase."""
    from tenfold import CacheSettings, RedisSettings
    from tenfold.cache._cache import Cache
    from tenfold.cache._decorator import cached

    run_id = time.time_ns()
    settings = CacheSettings(warm_check_interval=None).with_namespaces(profile=PROFILE)
    cache = Cache(settings, RedisSettings(url=url))
    loads = 0

    @cached(namespace="profile", cache=cache)
    async def item(run: int, rank: int) -> dict[str, int]:
        nonlocal loads
        loads += 1
        await asyncio.sleep(LOADER_SECONDS)  # the database
        return {"rank": rank}

    @cache.warmer
    async def top_items(c: Cache) -> None:
        if warm_top:
            await asyncio.sleep(LOADER_SECONDS)  # one batch query for the known-hot items
            await c.set_many({item.cache_key(run_id, r): {"rank": r} for r in range(warm_top)})

    await cache.start()
    stats = cache.stats.namespace("profile")
    results = []
    try:
        for ranks in phases:
            before = (loads, stats.l1_hits, stats.l2_hits)
            queue = iter(ranks)

            async def worker() -> None:
                for rank in queue:  # noqa: B023 (the phase's queue, consumed before the next)
                    await item(run_id, rank)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(ZIPF_WORKERS)))
            n, seconds = len(ranks), time.perf_counter() - started
            results.append(
                {
                    "rate": n / seconds,
                    "loads_per_1000": (loads - before[0]) / n * 1000,
                    "hit_ratio": 1 - (loads - before[0]) / n,
                    "l1_ratio": (stats.l1_hits - before[1]) / n,
                    "l2_ratio": (stats.l2_hits - before[2]) / n,
                }
            )
    finally:
        await cache.stop()
    return results


async def _bench(args: argparse.Namespace, url: str) -> None:
    results = Results(Path(__file__).stem, quick=args.quick, targets=_targets(args.tasks))
    await bench_l1(args, results)
    await bench_l2(args, url, results)
    await bench_cached_decorator(args, url, results)
    await bench_zipf(args, url, results)
    record(results)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    server = RedisServer.from_env()
    workdir = None
    if server is None:
        workdir = Path(tempfile.mkdtemp(prefix="tenfold-bench-"))
        server = RedisServer.launch(workdir)
    try:
        asyncio.run(_bench(args, server.url))
    finally:
        if workdir is not None:
            server.close()
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
