"""tenfold.cache against cashews on the same work, the same Redis, in the same run.

``bench_cache`` compares the bare L1 stores (``LocalLRU.get`` against cashews
``mem://``); this one compares what an app uses, the caching decorator over
Redis, each library set up as its docs recommend (``_vs_cashews``):

a. hot read through the decorator with L1: tenfold's L1 against cashews'
   client-side cache (``client_side=True``, Redis tracking), and the same with
   ``lock=True``, cashews' cross-process stampede guard. µs per get and Redis
   commands per get (counted by Redis, commands inside Lua scripts included).
b. read from Redis without L1, plain and tagged, 1 task and 16 tasks.
c. cold stampede: N concurrent callers of one missing key, a 50 ms loader, in
   one process and spread over 3 processes: loader calls, time, Redis commands.
d. tag invalidation of K keys: its time and Redis commands, then whether a
   second process that holds the K entries in its L1 still serves them.
e. correctness and failure (``_vs_cashews_checks``): a fill racing an
   invalidation, a tag whose entries have different TTLs, a Redis that hangs.

Redis is started with ``tenfold.testing`` (or ``--redis-url`` /
``TENFOLD_TEST_REDIS_URL`` is used); part e starts a second one it can pause.
The figures go to ``benchmarks/results/bench_cache_vs_cashews.json``.

    python -m benchmarks bench_cache_vs_cashews [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

if not __package__:  # run as a file, not with -m: put the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _vs_cashews_checks as checks
from benchmarks._results import RESULTS_DIR, Results, Target, record
from benchmarks._vs_cashews import LIBRARIES, Side, counting_loader, side, versioned_loader
from benchmarks._vs_cashews_peer import Peer
from tenfold.cache import tag_key
from tenfold.testing import RedisServer

KEYS = 1_000
CLEAN_WITHIN = 5.0
PEERS = 3
LOADER_SECONDS = 0.05
Call = Callable[[str, int], Awaitable[Any]]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--hot-gets", type=int, default=100_000, help="L1 gets per round")
    parser.add_argument("--redis-gets", type=int, default=10_000, help="Redis gets per round")
    parser.add_argument("--tasks", type=int, default=16, help="concurrent tasks for part b")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callers", type=int, default=1_000, help="stampede callers")
    parser.add_argument("--tag-keys", type=int, default=1_000, help="keys under the tag")
    parser.add_argument("--race-trials", type=int, default=50)
    parser.add_argument("--outage-keys", type=int, default=5, help="keys read while Redis hangs")
    parser.add_argument("--keys", type=int, default=KEYS, help="keys of parts a and b (1000)")
    parser.add_argument(
        "--clean-within",
        type=float,
        default=CLEAN_WITHIN,
        help="part d: how long the other process re-reads for stale entries to go (5 s)",
    )
    parser.add_argument("--redis-url", help="a Redis to use instead of starting one")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.hot_gets, args.redis_gets, args.rounds = 10_000, 1_000, 1
        args.callers, args.tag_keys, args.race_trials, args.outage_keys = 150, 100, 10, 2
        # Filling the keys, and waiting out the entries that never go, were most of it.
        args.keys, args.clean_within = 200, 1.0
    return args


#: What docs/cache.md holds tenfold to here; reported after each run, never enforced.
TARGETS = {
    "tenfold/cashews-client-side.hot.us_per_get": Target.at_most(1.0),
    "stampede.tenfold.3-processes.loader_calls": Target.at_most(1),
    "tags.tenfold.peer_still_stale": Target.at_most(0),
    "race.tenfold.stale_entries": Target.at_most(0),
}


@dataclass
class Context:
    """One run: its id (every key has it), Redis, both libraries, and the peer processes."""

    url: str
    #: Distinct keys the hot and Redis reads cycle through (each filled first).
    keys: int = KEYS
    #: How long a peer re-reads for invalidated entries to go from its L1.
    clean_within: float = CLEAN_WITHIN
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    raw: aioredis.Redis = field(init=False)
    sides: dict[str, Side] = field(default_factory=dict)
    peers: list[Peer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.raw = aioredis.Redis.from_url(self.url)

    async def commands(self) -> int:
        """Commands Redis has run so far (the INFO asking is one of them)."""
        return int((await self.raw.info("stats"))["total_commands_processed"])

    async def loads(self, i: int) -> int:
        return int(await self.raw.get(f"vs:{self.run}:loads:{i}") or 0)


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def _constant(run: str, i: int) -> dict[str, Any]:
    return {"id": i, "name": "Kegstand Kings", "points": 1234, "rank": 3, "tags": ["a", "b"]}


async def _timed(ctx: Context, call: Call, n: int, tasks: int = 1) -> tuple[float, float]:
    """µs per call and Redis commands per call, over ``n`` calls cycling through the keys."""
    per_task = n // tasks

    async def worker(offset: int) -> None:
        for j in range(per_task):
            await call(ctx.run, (offset + j) % ctx.keys)

    before = await ctx.commands()
    started = time.perf_counter()
    await asyncio.gather(*(worker(t * 97) for t in range(tasks)))
    elapsed = time.perf_counter() - started
    done = per_task * tasks
    return elapsed / done * 1e6, (await ctx.commands() - before - 1) / done


# -- a: hot read with L1 --------------------------------------------------------


async def bench_hot(args: argparse.Namespace, ctx: Context, results: Results) -> None:
    tenfold, cashews = ctx.sides["tenfold"], ctx.sides["cashews"]
    contenders = {
        "tenfold": (tenfold.function("hot", _constant), args.hot_gets),
        "cashews-client-side": (cashews.function("hot", _constant), args.hot_gets),
        # Its lock wraps every call, hits too: it pays Redis, so fewer gets.
        "cashews-client-side-lock": (
            cashews.function("hotlock", _constant, lock=True),
            args.redis_gets // 4,
        ),
    }
    for call, _ in contenders.values():
        for _ in range(2):  # the second pass finds every key in L1
            for i in range(ctx.keys):
                await call(ctx.run, i)
    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (call, n) in contenders.items():
            rounds[name].append(await _timed(ctx, call, n))
    print(
        f"\na. hot read through the decorator, L1 hit, {ctx.keys} warm keys, "
        f"median of {args.rounds}"
    )
    us = {}
    for name, values in rounds.items():
        us[name] = _median([v[0] for v in values])
        commands = _median([v[1] for v in values])
        print(f"  {name:<26}{us[name]:9.2f} µs/get {commands:6.2f} Redis commands/get")
        results.figures[f"hot.{name}.us_per_get"] = us[name]
        results.figures[f"hot.{name}.redis_cmds_per_get"] = commands
    for peer in ("cashews-client-side", "cashews-client-side-lock"):
        ratio = us["tenfold"] / us[peer]
        results.ratios[f"tenfold/{peer}.hot.us_per_get"] = ratio
        print(f"  tenfold/{peer} = {ratio:.3f}")


# -- b: read from Redis, no L1 ----------------------------------------------------


async def bench_redis(args: argparse.Namespace, ctx: Context, results: Results) -> None:
    tenfold, cashews = ctx.sides["tenfold"], ctx.sides["cashews"]
    contenders = {
        "tenfold": tenfold.function("l2", _constant),
        "cashews": cashews.function("l2", _constant),
        "tenfold-tagged": tenfold.function("l2tagged", _constant, tag="l2tagged"),
        "cashews-tagged": cashews.function("l2tagged", _constant, tag="l2tagged"),
    }
    for call in contenders.values():
        for i in range(ctx.keys):
            await call(ctx.run, i)
    print("\nb. read from Redis without L1: bytes Redis holds per entry of the same value")
    for name in contenders:
        size = await _entry_bytes(ctx, name)
        print(f"  {name:<16}{size:5d} B")
        results.figures[f"redis.{name}.entry_bytes"] = size
    shapes = {1: "1-task", args.tasks: f"{args.tasks}-tasks"}
    rounds: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for tasks in shapes:
            for name, call in contenders.items():
                n = args.redis_gets // (4 if tasks == 1 else 1)
                rounds.setdefault((name, tasks), []).append(await _timed(ctx, call, n, tasks))
    print(f"  µs per get, median of {args.rounds}")
    for tasks, label in shapes.items():
        us = {}
        for name in contenders:
            us[name] = _median([v[0] for v in rounds[(name, tasks)]])
            commands = _median([v[1] for v in rounds[(name, tasks)]])
            print(f"  {label:<9}{name:<16}{us[name]:9.1f} µs/get {commands:6.2f} commands/get")
            results.figures[f"redis.{name}.{label}.us_per_get"] = us[name]
            results.figures[f"redis.{name}.{label}.redis_cmds_per_get"] = commands
        for suffix in ("", "-tagged"):
            ratio = us[f"tenfold{suffix}"] / us[f"cashews{suffix}"]
            results.ratios[f"tenfold{suffix}/cashews{suffix}.redis.{label}.us_per_get"] = ratio
            print(f"  {label:<9}tenfold{suffix}/cashews{suffix} = {ratio:.2f}")


async def _entry_bytes(ctx: Context, contender: str) -> int:
    """The size of entry 0 of a part-b contender as stored (tenfold's in its envelope)."""
    name = "l2tagged" if contender.endswith("-tagged") else "l2"
    tenfold = contender.startswith("tenfold")
    pattern = f"tf:{name}:*:{ctx.run}:#0" if tenfold else f"{name}:{ctx.run}:0"
    async for key in ctx.raw.scan_iter(match=pattern, count=10_000):
        return int(await ctx.raw.strlen(key))
    return 0


# -- c: cold stampede ---------------------------------------------------------------

#: The stampede contenders: label -> (library, lock=True).
STAMPEDE = {"tenfold": ("tenfold", False), "cashews": ("cashews", False)}
STAMPEDE["cashews-lock"] = ("cashews", True)


async def bench_stampede(args: argparse.Namespace, ctx: Context, results: Results) -> None:
    loader = counting_loader(ctx.raw, LOADER_SECONDS)
    print(
        f"\nc. cold stampede: {args.callers} concurrent callers of one missing key, "
        f"a {LOADER_SECONDS * 1e3:.0f} ms loader"
    )
    i = 0
    for label, (library, lock) in STAMPEDE.items():
        call = ctx.sides[library].function("stampede", loader, lock=lock)
        for shape in ("1-process", f"{PEERS}-processes"):
            i += 1
            before = await ctx.commands()
            if shape == "1-process":
                started = time.perf_counter()
                values = await asyncio.gather(*(call(ctx.run, i) for _ in range(args.callers)))
                ms = (time.perf_counter() - started) * 1e3
                distinct = len({v["load"] for v in values})
            else:
                ms, distinct = await _peer_stampede(ctx, library, lock, i, args.callers)
            commands = await ctx.commands() - before - 1
            loads = await ctx.loads(i)
            print(
                f"  {label:<13}{shape:<12} loader calls {loads:3d}  distinct values {distinct}"
                f"  {ms:8.1f} ms  {commands:6d} Redis commands"
            )
            prefix = f"stampede.{label}.{shape}"
            results.figures[f"{prefix}.loader_calls"] = loads
            results.figures[f"{prefix}.distinct_values"] = distinct
            results.figures[f"{prefix}.ms"] = ms
            results.figures[f"{prefix}.redis_cmds"] = commands
    shape = f"{PEERS}-processes"
    for measure in ("ms", "redis_cmds"):
        ours = results.figures[f"stampede.tenfold.{shape}.{measure}"]
        peer = results.figures[f"stampede.cashews-lock.{shape}.{measure}"]
        results.ratios[f"tenfold/cashews-lock.stampede.{shape}.{measure}"] = ours / peer


async def _peer_stampede(
    ctx: Context, library: str, lock: bool, i: int, callers: int
) -> tuple[float, int]:
    """The callers split over the peers, released together; slowest peer's ms, values seen."""
    shares = [callers // PEERS + (p < callers % PEERS) for p in range(PEERS)]
    for peer, calls in zip(ctx.peers, shares, strict=True):
        await peer.send(op="stampede", library=library, run=ctx.run, i=i, calls=calls, lock=lock)
    replies = [await peer.receive() for peer in ctx.peers]
    return max(r["ms"] for r in replies), len({v for r in replies for v in r["values"]})


# -- d: tag invalidation ---------------------------------------------------------------


async def bench_tags(args: argparse.Namespace, ctx: Context, results: Results) -> None:
    n = args.tag_keys
    print(
        f"\nd. invalidate one tag over {n} keys; a second process holds them in L1 "
        f"and re-reads them (one loop turn between reads) until none is stale"
    )
    for library in ctx.sides:
        seen = await _tag_round(ctx, library, n)
        print(
            f"  {library:<14} invalidate {seen['invalidate_ms']:7.2f} ms, "
            f"{seen['invalidate_redis_cmds']:5d} Redis commands, tag bookkeeping "
            f"{seen['tag_bytes']:6d} B; same process stale {seen['own_stale']}; other process: "
            f"stale on first pass {seen['peer_first_pass_stale']}, clean after "
            f"{seen['passes']} pass(es) / {seen['peer_clean_ms']:.1f} ms, "
            f"still stale {seen['peer_still_stale']}"
        )
        del seen["passes"]
        for name, value in seen.items():
            results.figures[f"tags.{library}.{name}"] = value
    ours, theirs = (results.figures[f"tags.{lib}.invalidate_ms"] for lib in ("tenfold", "cashews"))
    results.ratios["tenfold/cashews.tags.invalidate_ms"] = ours / theirs


async def _tag_round(ctx: Context, library: str, n: int) -> dict[str, Any]:
    """Fill n tagged entries here, read them into the peer's L1, write, invalidate, re-read."""
    s, peer, run = ctx.sides[library], ctx.peers[0], f"{ctx.run}-{library}"
    call, db = s.function("tags", versioned_loader(ctx.raw), tag="tags"), f"vs:{run}:db"
    await ctx.raw.set(db, 1)
    for i in range(n):
        await call(run, i)
    for _ in range(2):  # the second read finds them in the peer's L1
        warm = await peer.ask(op="read", library=library, run=run, n=n, expect=1, until_clean=False)
        if warm["stale"]:
            raise RuntimeError(f"the peer read {warm['stale']} entries that were never filled")
    tag_bytes = await _tag_bytes(library, run, ctx.raw)
    await ctx.raw.set(db, 2)  # the write...
    before = await ctx.commands()
    started = time.perf_counter()
    await s.invalidate("tags", run)  # ...and its invalidation
    ms = (time.perf_counter() - started) * 1e3
    commands = await ctx.commands() - before - 1
    seen = await peer.ask(
        op="read", library=library, run=run, n=n, expect=2, until_clean=ctx.clean_within
    )
    return {
        "invalidate_ms": ms,
        "invalidate_redis_cmds": commands,
        # tenfold's counter appears at the first invalidation; cashews' set empties then.
        "tag_bytes": max(tag_bytes, await _tag_bytes(library, run, ctx.raw)),
        "own_stale": sum([(await call(run, i))["v"] != 2 for i in range(n)]),
        "peer_first_pass_stale": seen["first_pass_stale"],
        "passes": seen["passes"],
        "peer_clean_ms": seen["ms"],
        "peer_still_stale": seen["still_stale"],
    }


async def _tag_bytes(library: str, run: str, raw: aioredis.Redis) -> int:
    """What Redis holds to find the tag's entries: a version counter, or a set of keys."""
    tag = f"tags:{run}"
    name = tag_key(tag) if library == "tenfold" else f"_tag:{tag}"
    return int(await raw.memory_usage(name) or 0)


# -- the run ---------------------------------------------------------------------------


async def run(args: argparse.Namespace, url: str, workdir: Path) -> Results:
    """Every part against the Redis at ``url`` (``workdir`` holds the one part e pauses)."""
    results = Results(Path(__file__).stem, quick=args.quick, targets=dict(TARGETS))
    ctx = Context(url, keys=args.keys, clean_within=args.clean_within)
    ctx.sides = {name: side(name, url) for name in LIBRARIES}
    try:
        for s in ctx.sides.values():
            await s.start()
        peers = (Peer.start(url, LOADER_SECONDS) for _ in range(PEERS))
        ctx.peers = list(await asyncio.gather(*peers))
        await bench_hot(args, ctx, results)
        await bench_redis(args, ctx, results)
        await bench_stampede(args, ctx, results)
        await bench_tags(args, ctx, results)
        pair = {name: ctx.sides[name] for name in ("tenfold", "cashews")}
        await checks.check_race(args.race_trials, pair, ctx.raw, ctx.run, results)
        await checks.check_mixed_ttl(pair, ctx.raw, ctx.run, results)
        await checks.check_outage(args.outage_keys, workdir, results)
    finally:
        for peer in ctx.peers:
            await peer.close()
        for s in ctx.sides.values():
            await s.stop()
        await ctx.raw.aclose()
    record(results, directory=args.results_dir)
    return results


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tenfold-bench-"))
    server = None
    url = args.redis_url
    if url is None:
        server = RedisServer.from_env()
        if server is None:
            server = RedisServer.launch(workdir)
        url = server.url
    try:
        asyncio.run(run(args, url, workdir))
    finally:
        if server is not None and server.managed:
            server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
