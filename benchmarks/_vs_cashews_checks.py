"""Part e of ``bench_cache_vs_cashews``: correctness and failure, counted the same way for both.

* **race**: a fill whose loader read the row *before* a write, and returns
  *after* the write's invalidation (the slow-request race; events, not
  sleeps, put the steps in that order). Stale entries left in the cache.
* **mixed TTL**: one tag over entries of 1 h and one entry of 1 s; after the
  short one has expired, invalidate the tag. Long entries still served stale.
* **outage**: a Redis that hangs (SIGSTOP, as a stuck server or a partition
  looks to a client): each key read twice, one after another. Time per call,
  the slowest call, and loader calls. tenfold with its defaults (100 ms per
  command, a breaker); cashews with its default 1 s socket timeout, and with
  100 ms to match.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from benchmarks._results import Results
from benchmarks._vs_cashews import Side, side, versioned_loader
from tenfold.testing import MissingBinary, RedisServer

__all__ = ["check_mixed_ttl", "check_outage", "check_race"]

MIXED_LONG = 10
SHORT_TTL = 1.0
#: Turns a hang into a recorded failure; never a measurement.
BOUND = 30.0


async def check_race(
    trials: int, sides: dict[str, Side], raw: aioredis.Redis, run: str, results: Results
) -> None:
    print(f"\ne. a fill racing an invalidation, {trials} trials")
    for library, s in sides.items():
        stale = await _race(trials, s, raw, run)
        print(f"  {library:<8} stale entries left: {stale} of {trials}")
        results.figures[f"race.{library}.stale_entries"] = stale


async def _race(trials: int, s: Side, raw: aioredis.Redis, run: str) -> int:
    gates: dict[int, tuple[asyncio.Event, asyncio.Event]] = {}

    def version(i: int) -> str:
        return f"vs:{run}:race:{i}"

    async def load(run: str, i: int) -> dict[str, Any]:
        v = int(await raw.get(version(i)) or 0)
        read, release = gates[i]
        read.set()
        await release.wait()
        return {"i": i, "v": v}

    call = s.function("race", load, tag="race")
    stale = 0
    for i in range(trials):
        gates[i] = read, release = asyncio.Event(), asyncio.Event()
        await raw.set(version(i), 1)
        fill = asyncio.create_task(call(run, i))
        await read.wait()  # the loader has read version 1
        await raw.set(version(i), 2)  # the write commits, then invalidates
        await s.invalidate("race", run)
        release.set()
        await fill  # its own caller gets version 1: it asked before the write
        stale += (await call(run, i))["v"] != 2
    return stale


async def check_mixed_ttl(
    sides: dict[str, Side], raw: aioredis.Redis, run: str, results: Results
) -> None:
    print(
        f"\ne. one tag over {MIXED_LONG} entries of 1 h and one of {SHORT_TTL:g} s; "
        "the tag invalidated after the short one expired"
    )
    loader = versioned_loader(raw)
    db = f"vs:{run}:db"
    await raw.set(db, 1)
    calls = {}
    for library, s in sides.items():
        long, short = (
            s.function("mixlong", loader, tag="mix"),
            s.function("mixshort", loader, tag="mix", ttl=SHORT_TTL),
        )
        for i in range(MIXED_LONG):
            await long(run, i)
        await short(run, 0)
        calls[library] = long
    await asyncio.sleep(SHORT_TTL * 1.5)  # the short entry expires (a benchmark may wait)
    await raw.set(db, 2)
    for library, s in sides.items():
        await s.invalidate("mix", run)
        stale = sum([(await calls[library](run, i))["v"] != 2 for i in range(MIXED_LONG)])
        print(f"  {library:<8} long entries still served stale: {stale} of {MIXED_LONG}")
        results.figures[f"mixed-ttl.{library}.stale_entries"] = stale
    await raw.delete(db)


#: The outage contenders: label -> (library, Redis timeout in seconds).
OUTAGE = {"tenfold": ("tenfold", 0.1), "cashews": ("cashews", 1.0)}
OUTAGE["cashews-100ms"] = ("cashews", 0.1)


async def check_outage(keys: int, workdir: Path, results: Results) -> None:
    print(f"\ne. Redis hangs (SIGSTOP): {keys} keys, each read twice, one call at a time")
    try:
        server = RedisServer.launch(workdir, name="redis-outage")
    except MissingBinary as exc:  # say so and keep the rest of the run
        print(f"  skipped: cannot start a Redis to pause ({exc})")
        return
    sides = {label: side(library, server.url, timeout=t) for label, (library, t) in OUTAGE.items()}
    try:
        for s in sides.values():
            await s.start()
        server.pause()
        # cashews logs each Redis error it swallows with its traceback: the counts are
        # what this part reports, so its log stays quiet meanwhile.
        logger = logging.getLogger("cashews")
        level = logger.level
        logger.setLevel(logging.CRITICAL)
        try:
            for label, s in sides.items():
                _record_outage(label, await _outage(keys, s, label), results)
        finally:
            server.resume()
            logger.setLevel(level)
    finally:
        for s in sides.values():
            await s.stop()
        server.close()


async def _outage(keys: int, s: Side, run: str) -> dict[str, float]:
    loads = 0

    async def load(run: str, i: int) -> dict[str, int]:
        nonlocal loads
        loads += 1
        return {"i": i}

    call = s.function("outage", load)
    times = []
    started = time.perf_counter()
    for _ in range(2):
        for i in range(keys):
            t = time.perf_counter()
            await asyncio.wait_for(call(run, i), BOUND)
            times.append((time.perf_counter() - t) * 1e3)
    return {
        "total_ms": (time.perf_counter() - started) * 1e3,
        "ms_per_call": sum(times) / len(times),
        "max_ms": max(times),
        "loader_calls": loads,
    }


def _record_outage(label: str, figures: dict[str, float], results: Results) -> None:
    print(
        f"  {label:<14} {figures['ms_per_call']:8.1f} ms/call, slowest {figures['max_ms']:7.1f} ms,"
        f" {figures['loader_calls']:.0f} loader calls, {figures['total_ms']:7.0f} ms in all"
    )
    for name, value in figures.items():
        results.figures[f"outage.{label}.{name}"] = value
