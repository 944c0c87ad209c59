"""Rate-limit decisions per second: tenfold vs the ``limits`` library, same Redis, same run.

- ``tenfold-gcra``: ``RedisBackend.hit`` (exact mode: GCRA, one EVALSHA per decision).
- ``tenfold-sliding``: tenfold's exact sliding window, when the backend has one.
- ``tenfold-lease``: ``LeasedBackend`` (local-lease mode, ``--lease-size`` tokens per
  round trip) over ``RedisBackend``, when tenfold has it.
- ``tenfold-memory``: ``MemoryBackend.hit`` (no Redis; the embedded profile).
- ``limits-moving``: ``limits.aio`` ``MovingWindowRateLimiter`` on its async Redis
  storage (``async+redis://``, coredis, the library's default implementation).
- ``limits-sliding``: ``limits.aio`` ``SlidingWindowCounterRateLimiter``, same storage.

Every variant runs ``--tasks`` concurrent asyncio tasks in this one process,
spreading hits over ``--keys`` keys under the same rule (``--limit`` per minute
per key, generous enough that nearly every hit is admitted), on one fresh
redis-server (or ``TENFOLD_TEST_REDIS_URL``). Variants are interleaved for
``--rounds`` rounds and the median round is reported. Ratios are between
figures measured here, now; the target for exact mode (``tenfold-gcra`` and
``tenfold-sliding``) is >= 1.5x ``limits``. The figures, ratios and targets go
to ``benchmarks/results/bench_ratelimit.json``.

    python -m benchmarks bench_ratelimit [--quick]
    python -m benchmarks.bench_ratelimit --tasks 32 --keys 1000 --duration 3
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenfold.ratelimit import MemoryBackend, Rate, RedisBackend, Rule
from tenfold.testing import RedisServer

if not __package__:  # run as a file, not with -m: put the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._results import Results, Target, record

Hit = Callable[[str], Awaitable[bool]]
_EXACT = ("tenfold-gcra", "tenfold-sliding")
_PEERS = ("limits-moving", "limits-sliding")
#: Exact mode against ``limits``, by decisions/s; reported after each run, never enforced.
TARGETS = {f"{ours}/{peer}": Target.at_least(1.5) for ours in _EXACT for peer in _PEERS}


@dataclass(frozen=True, slots=True)
class Run:
    decisions: int
    admitted: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.decisions / self.seconds

    @property
    def us_per_decision(self) -> float:
        return self.seconds / self.decisions * 1e6 if self.decisions else float("nan")


async def _drive(hit: Hit, keys: list[str], tasks: int, duration: float) -> Run:
    stop = time.perf_counter() + duration
    counts = [0] * tasks
    admitted = [0] * tasks

    async def worker(n: int) -> None:
        i = n
        while time.perf_counter() < stop:
            if await hit(keys[i % len(keys)]):
                admitted[n] += 1
            counts[n] += 1
            i += tasks

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(tasks)))
    return Run(sum(counts), sum(admitted), time.perf_counter() - start)


class _Variant:
    """One way of deciding: opened once, driven every round, closed at the end."""

    def __init__(self, name: str, hit: Hit, close: Callable[[], Awaitable[Any]]) -> None:
        self.name, self.hit, self.close = name, hit, close


def _tenfold(name: str, backend: Any, rule: Rule, method: str = "hit") -> _Variant:
    decide = getattr(backend, method)

    async def hit(key: str) -> bool:
        return bool((await decide(key, rule)).allowed)

    return _Variant(name, hit, backend.aclose)


def _limits(name: str, url: str, strategy: str, limit: int) -> _Variant:
    from limits import RateLimitItemPerMinute
    from limits.aio import strategies
    from limits.aio.storage import RedisStorage

    storage = RedisStorage("async+" + url, key_prefix=f"bench-{name}")
    limiter = getattr(strategies, strategy)(storage)
    item = RateLimitItemPerMinute(limit)

    async def hit(key: str) -> bool:
        return bool(await limiter.hit(item, key))

    async def close() -> None:
        await storage.reset()

    return _Variant(name, hit, close)


def _variants(url: str, limit: int, lease_size: int, only: set[str] | None) -> list[_Variant]:
    rule = Rule(Rate(limit, 60.0))
    variants: list[_Variant] = []

    def want(name: str) -> bool:
        return only is None or name in only

    if want("tenfold-gcra"):
        variants.append(_tenfold("tenfold-gcra", RedisBackend.from_url(url), rule))
    sliding = _sliding_rule(limit)
    if want("tenfold-sliding") and sliding is not None:
        backend = RedisBackend.from_url(url, prefix="tf:rl-sw:")
        variants.append(_tenfold("tenfold-sliding", backend, sliding))
    lease = _lease_backend(url, lease_size)
    if want("tenfold-lease") and lease is not None:
        variants.append(_tenfold("tenfold-lease", lease, rule))
    if want("tenfold-memory"):
        variants.append(_tenfold("tenfold-memory", MemoryBackend(), rule))
    if want("limits-moving"):
        variants.append(_limits("limits-moving", url, "MovingWindowRateLimiter", limit))
    if want("limits-sliding"):
        variants.append(_limits("limits-sliding", url, "SlidingWindowCounterRateLimiter", limit))
    return variants


def _sliding_rule(limit: int) -> Rule | None:
    """A sliding-window rule, or None while ``Rule`` has no ``algorithm``."""
    from tenfold.ratelimit import _rule

    if "sliding_window" not in getattr(_rule, "ALGORITHMS", ()):
        return None
    return Rule(Rate(limit, 60.0), algorithm="sliding_window")  # type: ignore[call-arg]


def _lease_backend(url: str, lease_size: int) -> Any:
    """tenfold's local-lease backend, or None while tenfold.ratelimit has none."""
    import tenfold.ratelimit as rl

    lease_cls = getattr(rl, "LeasedBackend", None)
    if lease_cls is None:
        return None
    shared = RedisBackend.from_url(url, prefix="tf:rl-lease:")
    return lease_cls(shared, lease_size=lease_size)


async def _bench(args: argparse.Namespace, url: str) -> dict[str, list[Run]]:
    keys = [f"bench:{n}" for n in range(args.keys)]
    variants = _variants(url, args.limit, args.lease_size, set(args.only) if args.only else None)
    missing = [
        name
        for name in ("tenfold-sliding", "tenfold-lease")
        if name not in {v.name for v in variants} and (not args.only or name in args.only)
    ]
    for name in missing:
        print(f"  {name}: not in tenfold.ratelimit yet, not measured")
    usable = []
    for v in variants:
        try:
            await v.hit(keys[0])
        except Exception as exc:  # a mode the backend does not decide yet
            print(f"  {v.name}: not measured, the backend refused it: {type(exc).__name__}: {exc}")
            await v.close()
        else:
            usable.append(v)
    variants = usable
    runs: dict[str, list[Run]] = {v.name: [] for v in variants}
    try:
        for v in variants:  # warm-up: connections, script cache, keys
            await _drive(v.hit, keys, args.tasks, args.warmup)
        for _ in range(args.rounds):
            for v in variants:
                runs[v.name].append(await _drive(v.hit, keys, args.tasks, args.duration))
    finally:
        for v in variants:
            await v.close()
    return runs


def _report(runs: dict[str, list[Run]], results: Results) -> None:
    best = {
        name: sorted(rs, key=lambda r: r.per_second)[(len(rs) - 1) // 2]
        for name, rs in runs.items()
    }
    print(f"{'variant':<18}{'decisions/s':>13}{'us/decision':>13}{'admitted':>10}")
    for name, r in best.items():
        share = r.admitted / r.decisions
        print(f"{name:<18}{r.per_second:>13.0f}{r.us_per_decision:>13.2f}{share:>10.3f}")
        results.figures[f"{name}.decisions_per_s"] = r.per_second
        results.figures[f"{name}.us_per_decision"] = r.us_per_decision
        results.figures[f"{name}.admitted_share"] = share
    for name, rs in runs.items():
        if len(rs) > 1:
            spread = ", ".join(f"{r.per_second:.0f}" for r in rs)
            stdev = statistics.pstdev(r.per_second for r in rs)
            print(f"  {name} per round: {spread} (stdev {stdev:.0f})")
    ours = [
        n
        for n in ("tenfold-gcra", "tenfold-sliding", "tenfold-lease", "tenfold-memory")
        if n in best
    ]
    for mine in ours:
        for peer in _PEERS:
            if peer in best:
                ratio = best[mine].per_second / best[peer].per_second
                print(f"ratio {mine}/{peer}: {ratio:.2f}x")
                results.ratios[f"{mine}/{peer}"] = ratio


_NAMES = (
    "tenfold-gcra",
    "tenfold-sliding",
    "tenfold-lease",
    "tenfold-memory",
    "limits-moving",
    "limits-sliding",
)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=32, help="concurrent asyncio tasks (32)")
    parser.add_argument("--keys", type=int, default=1000, help="distinct keys (1000)")
    parser.add_argument("--limit", type=int, default=100_000, help="rule: N per minute per key")
    parser.add_argument("--lease-size", type=int, default=10, help="lease mode's batch (10)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (3)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds (0.5)")
    parser.add_argument("--quick", action="store_true", help="1 round of 0.5 s: a smoke test")
    parser.add_argument("--only", nargs="+", choices=_NAMES, help="variants to run")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup = 0.5, 1, 0.2
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    server = RedisServer.from_env()
    workdir = None
    if server is None:
        workdir = Path(tempfile.mkdtemp(prefix="tenfold-bench-"))
        server = RedisServer.launch(workdir)
    print(
        f"{args.tasks} tasks, {args.keys} keys, rule {args.limit}/minute per key (GCRA; "
        f"sliding window for tenfold-sliding), lease size {args.lease_size}, "
        f"{args.rounds} round(s) of {args.duration:g} s, redis {server.url} "
        f"({'fresh' if workdir is not None else 'TENFOLD_TEST_REDIS_URL'})",
        flush=True,
    )
    try:
        runs = asyncio.run(_bench(args, server.url))
    finally:
        if workdir is not None:
            server.close()
            shutil.rmtree(workdir, ignore_errors=True)
    results = Results(Path(__file__).stem, quick=args.quick, targets=dict(TARGETS))
    _report(runs, results)
    record(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
