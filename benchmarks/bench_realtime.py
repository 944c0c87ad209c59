"""Realtime fan-out over WebSockets, each side in the same run, on one Redis launched for it.

Sides (``SIDES``: a name and a function serving the benchmark's channel):

- ``broadcaster``: what a FastAPI user assembles today, FastAPI WebSockets with
  encode/broadcaster 0.3.1 on Redis pub/sub (``benchmarks/_realtime_peer.py``):
  one text frame per publication, no batching. Publications are sent with
  ``Broadcast.publish`` from the benchmark's process, as a worker or another
  service publishes. Two faults of broadcaster are worked around, each where a
  user meeting it would: with redis-py 8 its listener stops at the first
  channel (the app holds one channel subscribed from startup), and subscribers
  arriving together at a process with none yet on the channel overwrite each
  other (the load side opens each server's first subscriber alone; a late
  joiner never meets it). ``silent_subscribers`` counts any it still leaves
  with nothing.

To add a side, write ``serve(bench, processes, batch_ms)`` beside
``peer_side`` in ``benchmarks/_realtime_sides.py``: an async context manager
that starts ``processes`` server processes serving ``CHANNEL`` and yields a
``Deployment`` (their WebSocket URLs and pids, the load side's frame adapter,
a ``publish`` coroutine function, the batching it applies); then add it to
``SIDES``. Its table column and its ratios over the peer follow.

Every side is served by uvicorn processes (one worker each, uvloop, httptools,
its default WebSocket implementation) on loopback ports. Subscribers are
picows clients (frames parsed in C, handled in a callback) in load-generator
processes (``benchmarks/_realtime_load.py``), spread evenly over the server
processes; each publication carries its sequence number and its send time.
The load side is kept light because it shares the cores with the servers:
whatever CPU it spends delays the receipts it times.

Sections (``SECTIONS``, each an async function of the ``Bench``):

1. **fanout**: ``--rate`` publications per second for ``--seconds`` into one
   channel with ``--subscribers`` subscribers over 2 server processes, batching
   ``--batch-ms`` where the side batches. Deliveries per second (unique
   deliveries over the time from the first publication to the last receipt),
   publish -> receive latency p50/p99 (first receipt), lost (per subscriber,
   publications not received within ``--drain`` s of the last publication;
   late ones count as lost) and duplicated (receipts beyond the first), and the
   server processes' CPU time (``/proc``) per delivery, over the same window
   (it includes closing the clients), and the load generators' CPU time.
   Targets (reported, never enforced): 0 lost, 0 duplicated, p99 <= 150 ms,
   >= 2x the peer's deliveries per CPU second.
2. **fanout_unbatched**: the same with ``--unbatched-subscribers`` and no
   batching; target p99 < 20 ms.
3. **connections**: ``--connections`` idle subscribed connections held by one
   server process, for ``--idle`` s; the server's RSS growth per connection
   (``/proc/<pid>/status``), measured above a few warm connections. Targets:
   10,000 per process, <= 32 KiB each. The open-files limit is raised to its
   hard limit first; the output says when it caps the count.

The load generators, servers and Redis share the machine's cores, so a side
that needs more CPU for the same deliveries also slows the clients: deliveries
per server CPU second is the steadier comparison.

    python -m benchmarks bench_realtime [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if not __package__:  # run as a file, not with -m: put the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._realtime_load import Delivery, LoadGroup
from benchmarks._realtime_sides import (
    CHANNEL,
    PEER,
    Bench,
    Deployment,
    Serve,
    peer_side,
    tenfold_side,
)
from benchmarks._results import Results, Target, record
from benchmarks._wrk import Server
from tenfold.testing import RedisServer

#: Server processes per side in the fan-out sections.
SERVER_PROCESSES = 2
#: Connections opened before the connections section's baseline (imports and caches warm).
WARM_CONNECTIONS = 20
#: Connections each load process opens at most in the connections section.
CONNECTIONS_PER_LOAD_PROCESS = 5000
#: File descriptors kept free of connections (the server's Redis, logs, imports).
FD_HEADROOM = 200
#: Reported after each run, never enforced.
TARGETS = {
    "tenfold.fanout_lost": Target.at_most(0),
    "tenfold.fanout_duplicated": Target.at_most(0),
    "tenfold.fanout_p99_ms": Target.at_most(150),
    "tenfold.fanout_unbatched_p99_ms": Target.at_most(20),
    f"tenfold/{PEER}.fanout_deliveries_per_cpu_s": Target.at_least(2.0),
    "tenfold.connections_held": Target.at_least(10_000),
    "tenfold.connections_kib_each": Target.at_most(32),
}
SectionResult = dict[str, dict[str, float]]


#: Each measured in every section, in this order.
SIDES: dict[str, Serve] = {PEER: peer_side, "tenfold": tenfold_side}


# -- 1, 2. fan-out -----------------------------------------------------------------------------


async def fanout(bench: Bench) -> SectionResult:
    """``--subscribers`` subscribers, ``--batch-ms`` batching: deliveries, latency, loss, CPU."""
    args = bench.args
    return await _fanout(bench, "fanout", args.subscribers, args.batch_ms)


async def fanout_unbatched(bench: Bench) -> SectionResult:
    """``--unbatched-subscribers`` subscribers, a frame per publication: latency above all."""
    return await _fanout(bench, "fanout_unbatched", bench.args.unbatched_subscribers, 0.0)


async def _fanout(bench: Bench, key: str, subscribers: int, batch_ms: float) -> SectionResult:
    figures: dict[str, float] = {}
    for side, serve in SIDES.items():
        async with serve(bench, SERVER_PROCESSES, batch_ms) as deployment:
            measured = await _fanout_run(bench, deployment, f"{side}-{key}", subscribers)
        figures.update({f"{side}.{key}_{name}": value for name, value in measured.items()})
    args = bench.args
    print(
        f"\n{key}: {args.rate:g} publications/s for {args.seconds:g} s, {subscribers:,} "
        f"subscribers over {SERVER_PROCESSES} server processes"
    )
    rows = [
        ("batching (ms)", "batch_ms", "{:.0f}"),
        ("deliveries/s", "deliveries_per_s", "{:,.0f}"),
        ("deliveries/CPU s", "deliveries_per_cpu_s", "{:,.0f}"),
        ("CPU µs/delivery", "cpu_us_per_delivery", "{:.2f}"),
        ("wall s", "wall_s", "{:.1f}"),
        ("server CPU s", "server_cpu_s", "{:.2f}"),
        ("load generators' CPU s", "load_cpu_s", "{:.2f}"),
        ("latency p50 ms", "p50_ms", "{:.1f}"),
        ("latency p99 ms", "p99_ms", "{:.1f}"),
        ("lost", "lost", "{:,.0f}"),
        ("duplicated", "duplicated", "{:,.0f}"),
        ("subscribers given none", "silent_subscribers", "{:,.0f}"),
        ("expected", "expected", "{:,.0f}"),
        ("publications/s reached", "published_per_s", "{:,.0f}"),
    ]
    ratios = _ratios(figures, key, ("deliveries_per_s", "deliveries_per_cpu_s", "p99_ms"))
    _table(figures, key, rows)
    print(
        f"  (lost: not received within {args.drain:g} s of the last publication; wall: first "
        "publication to last receipt; the load generators share the cores with the servers, "
        "so when their CPU nears the wall time they, not the servers, set deliveries/s)"
    )
    return {"figures": figures, "ratios": ratios}


async def _fanout_run(
    bench: Bench, deployment: Deployment, tag: str, subscribers: int
) -> dict[str, float]:
    args = bench.args
    group = LoadGroup(
        deployment.adapter,
        deployment.urls,
        CHANNEL,
        subscribers,
        min(args.load_processes, subscribers),
        bench.workdir,
        tag,
    )
    try:
        await group.start()
        if group.failed:
            raise RuntimeError(f"{tag}: {group.failed} subscribers failed: {group.errors[0]}")
        await asyncio.sleep(0.2)  # the servers' own subscriptions to Redis settle
        count = int(args.rate * args.seconds)
        cpu_before, started = _cpu_seconds(deployment.pids), time.time()
        published_per_s = await _publish_paced(deployment.publish, args.rate, count)
        delivery = await group.stop(count, time.time() + args.drain)
        cpu = _cpu_seconds(deployment.pids) - cpu_before
    finally:
        await group.kill()
    return _fanout_figures(delivery, started, cpu, published_per_s, deployment.batch_ms)


def _fanout_figures(
    delivery: Delivery, started: float, cpu: float, published_per_s: float, batch_ms: float
) -> dict[str, float]:
    span = delivery.last_receive - started
    nan = float("nan")
    return {
        "batch_ms": batch_ms,
        "subscribers": float(delivery.clients),
        "expected": float(delivery.clients * delivery.expected_each),
        "deliveries": float(delivery.unique),
        "deliveries_per_s": delivery.unique / span if span > 0 else nan,
        "wall_s": span,
        "server_cpu_s": cpu,
        "load_cpu_s": delivery.load_cpu_s,
        "deliveries_per_cpu_s": delivery.unique / cpu if cpu > 0 else nan,
        "cpu_us_per_delivery": cpu / delivery.unique * 1e6 if delivery.unique else nan,
        "p50_ms": delivery.percentile(50),
        "p99_ms": delivery.percentile(99),
        "lost": float(delivery.lost),
        "duplicated": float(delivery.duplicated),
        "silent_subscribers": float(delivery.silent),
        "published_per_s": published_per_s,
    }


async def _publish_paced(
    publish: Callable[[dict[str, Any]], Awaitable[None]], rate: float, count: int
) -> float:
    """Publish ``count`` at ``rate``/s, each due at its own time; the rate reached."""
    start = time.perf_counter()
    for seq in range(count):
        wait = start + seq / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        await publish({"seq": seq, "t": time.time()})
    elapsed = time.perf_counter() - start
    return (count - 1) / elapsed if count > 1 and elapsed > 0 else float("nan")


# -- 3. idle connections -----------------------------------------------------------------------


async def connections(bench: Bench) -> SectionResult:
    """Idle subscribed connections one server process holds, and its RSS per connection."""
    args = bench.args
    wanted = args.connections
    cap = bench.args.nofile - FD_HEADROOM
    capped = wanted > cap
    figures: dict[str, float] = {"connections_wanted": float(wanted), "nofile": args.nofile}
    for side, serve in SIDES.items():
        async with serve(bench, 1, args.batch_ms) as deployment:
            measured = await _connections_run(bench, deployment, side, min(wanted, cap))
        figures.update({f"{side}.connections_{name}": value for name, value in measured.items()})
    print(f"\nconnections: {min(wanted, cap):,} idle subscribers on one server process")
    rows = [
        ("opened", "opened", "{:,.0f}"),
        ("held after idle", "held", "{:,.0f}"),
        ("server sockets added", "server_fds", "{:,.0f}"),
        ("RSS growth MiB", "rss_mib", "{:.1f}"),
        ("KiB per connection", "kib_each", "{:.1f}"),
    ]
    _table(figures, "connections", rows)
    if capped:
        print(f"  (capped at {cap:,} by the open-files limit, {args.nofile:,}: not {wanted:,})")
    ratios = _ratios(figures, "connections", ("held", "kib_each"))
    return {"figures": figures, "ratios": ratios}


async def _connections_run(
    bench: Bench, deployment: Deployment, side: str, wanted: int
) -> dict[str, float]:
    pid, args = deployment.pids[0], bench.args
    warm = LoadGroup(
        deployment.adapter, deployment.urls, CHANNEL, WARM_CONNECTIONS, 1, bench.workdir, "warm"
    )
    processes = math.ceil(wanted / CONNECTIONS_PER_LOAD_PROCESS)
    group = LoadGroup(
        deployment.adapter, deployment.urls, CHANNEL, wanted, processes, bench.workdir, side
    )
    try:
        await warm.start()
        await asyncio.sleep(0.5)
        rss_before, fds_before = _rss_bytes(pid), _fds(pid)
        await group.start()
        await asyncio.sleep(args.idle)
        rss_after, fds_after = _rss_bytes(pid), _fds(pid)
        held = (await group.stop(0, time.time())).open_at_stop
        await warm.stop(0, time.time())
    finally:
        await group.kill()
        await warm.kill()
    if group.errors:
        print(f"  ({side}: {group.failed:,} connections failed, first: {group.errors[0]})")
    growth = rss_after - rss_before
    return {
        "opened": float(group.opened),
        "failed": float(group.failed),
        "held": float(held),
        "server_fds": float(fds_after - fds_before),
        "rss_mib": growth / 2**20,
        "kib_each": growth / 1024 / group.opened if group.opened else float("nan"),
    }


# -- reading the servers -----------------------------------------------------------------------


def _cpu_seconds(pids: list[int]) -> float:
    return sum(Server("", pid).cpu_seconds() for pid in pids)


def _rss_bytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) * 1024
    return float("nan")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _ratios(figures: dict[str, float], key: str, measures: tuple[str, ...]) -> dict[str, float]:
    """Each other side's figure over the peer's, for each of ``measures``."""
    ratios = {}
    for side in SIDES:
        if side == PEER:
            continue
        for measure in measures:
            ours, peer = figures[f"{side}.{key}_{measure}"], figures[f"{PEER}.{key}_{measure}"]
            ratios[f"{side}/{PEER}.{key}_{measure}"] = ours / peer if peer else float("nan")
    return ratios


def _table(figures: dict[str, float], key: str, rows: list[tuple[str, str, str]]) -> None:
    """One column per side, then its ratio over the peer."""
    others = [s for s in SIDES if s != PEER]
    print(
        f"{'':<24}" + "".join(f"{s:>14}" for s in SIDES) + "".join(f"{'ratio':>8}" for _ in others)
    )
    for label, measure, shape in rows:
        values = [figures.get(f"{side}.{key}_{measure}", float("nan")) for side in SIDES]
        cells = "".join(f"{_cell(shape, v):>14}" for v in values)
        peer = figures.get(f"{PEER}.{key}_{measure}", float("nan"))
        ratios = "".join(
            f"{_cell('{:.2f}x', v / peer if peer else math.nan):>8}" for v in values[1:]
        )
        print(f"{label:<24}{cells}{ratios}")


def _cell(shape: str, value: float) -> str:
    return shape.format(value) if math.isfinite(value) else "-"


#: Run in this order; each returns ``{"figures": {...}, "ratios": {...}}``.
SECTIONS: list[Callable[[Bench], Awaitable[SectionResult]]] = [
    fanout,
    fanout_unbatched,
    connections,
]


# -- running -----------------------------------------------------------------------------------


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--rate", type=float, default=1000.0, help="publications/s (1000)")
    add("--seconds", type=float, default=5.0, help="publishing time per run (5)")
    add("--subscribers", type=int, default=1000, help="fanout: subscribers (1000)")
    add("--batch-ms", type=float, default=100.0, help="fanout: batching where a side has it")
    add("--unbatched-subscribers", type=int, default=100, help="fanout_unbatched (100)")
    add("--drain", type=float, default=15.0, help="wait after the last publication (15 s)")
    add("--load-processes", type=int, default=2, help="load-generator processes (2)")
    add("--connections", type=int, default=10_000, help="connections section (10000)")
    add("--idle", type=float, default=3.0, help="connections held idle for (3 s)")
    add("--quick", action="store_true", help="few subscribers, short runs: a smoke test")
    add("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.seconds, args.subscribers = 100.0, 1.0, 50
        args.unbatched_subscribers, args.drain, args.load_processes = 20, 5.0, 1
        args.connections, args.idle = 200, 1.0
    return args


async def run(args: argparse.Namespace, redis_url: str, workdir: Path) -> Results:
    """Run every section against the Redis at ``redis_url``; print; write the results file."""
    args.nofile = raise_open_files_limit()
    results = Results(Path(__file__).stem, quick=args.quick, targets=dict(TARGETS))
    # Other work on the machine moves every figure: the load it started under is kept.
    results.figures["loadavg_1min_at_start"] = os.getloadavg()[0]
    results.figures["rate_per_s"] = args.rate
    print(
        f"sides: {', '.join(SIDES)}; {args.rate:g} publications/s for {args.seconds:g} s; "
        f"{args.load_processes} load process(es); open-files limit {args.nofile:,}; "
        f"load average {results.figures['loadavg_1min_at_start']:.2f}",
        flush=True,
    )
    bench = Bench(args, redis_url, workdir)
    for section in SECTIONS:
        measured = await section(bench)
        results.figures.update(measured["figures"])
        results.ratios.update(measured["ratios"])
    record(results, directory=args.results_dir)
    return results


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    with tempfile.TemporaryDirectory(prefix="tenfold-bench-realtime-") as workdir:
        server = RedisServer.launch(Path(workdir))
        try:
            asyncio.run(run(args, server.url, Path(workdir)))
        finally:
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
