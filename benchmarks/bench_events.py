"""Event store: tenfold's EventStore against pyeventsourcing's PostgreSQL recorder, same run.

- ``tenfold``: ``await store.append(stream, [NewEvent(...)], expected_version)``
  with no session: one statement in its own transaction on the primary's raw
  asyncpg connection. Its pool: 16 connections.
- ``eventsourcing`` (pyeventsourcing 9.5): ``PostgresApplicationRecorder``
  ``.insert_events([StoredEvent(...)])``, its recorder for stored events with a
  global order (a table lock per insert keeps ids in commit order). It is
  synchronous (psycopg 3), so its 16 writers are 16 threads, on its own pool of
  16 connections (see ``benchmarks/_events_sides.py``).

Both sides use one PostgreSQL server launched for the run, each its own
database, with the durable default: ``fsync = on``, ``synchronous_commit = on``
(every append waits for its WAL flush; the settings are printed and written to
the JSON). This machine's disk flushes in about 0.1 ms, so the figures stay
meaningful with it on.

Sections (``SECTIONS``: each an async function of the ``Bench`` returning the
figures and ratios it measured, so another can be added beside them):

1. **appends**: events per second with 1 writer and with 16, each writer
   appending one event per append (one transaction each) to its own stream;
   ``--appends`` events per measurement, the sides alternating (which goes
   first swaps every round), medians over ``--rounds``. Targets (reported,
   never enforced): tenfold >= 5,000/s with 1 writer, >= 10,000/s with 16, and
   >= 2x pyeventsourcing with 16.
2. **lag**: 8 writers (tasks; threads for the peer) append, between them, at
   a steady ``--rate`` per second for ``--lag-seconds``, each append due at its
   own time, so one slow append does not delay the next. The lag of an event
   is the time from its append having returned (committed) to a subscriber
   having it, p50 and p99 over every round; the rate the writers reached is
   reported beside it. tenfold's stores are those of started platforms, as an
   app has them, with Redis (launched for the run): ``store.subscribe()`` in
   another process (woken by the append hint over Redis pub/sub), again in
   another process without Redis (woken only by polling, every
   ``--poll-interval`` s, the store's default; tenfold only), and in the
   writers' process (woken at once by the append); pyeventsourcing's
   ``recorder.subscribe()`` (LISTEN/NOTIFY) in another process and in the
   writers' (a thread).
   Beside them, the ceiling: a plain autocommit ``INSERT`` of the same JSON
   on a raw asyncpg pool of 16 (no version check, no order, one index).
   **appends_async_commit** repeats it with ``synchronous_commit = off`` on
   the server (both sides): the cost of an append without the wait for the
   disk. The targets are judged on the durable figures.
3. **aggregate_load**: an ``Account`` aggregate over a ``--aggregate-events``
   stream (10,000), loaded from the log alone (every event read and applied)
   and from a snapshot taken at its last event (``Aggregates``); medians of
   repeated loads. tenfold only: pyeventsourcing snapshots through its
   ``Application`` and domain-model classes, which this benchmark does not
   build, so there is no like-for-like peer figure.

    python -m benchmarks bench_events [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

if not __package__:  # run as a file, not with -m: put the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _events_sides as sides
from benchmarks._events_sides import PEER
from benchmarks._postgres import own_postgres, server_settings
from benchmarks._results import Results, Target, record
from tenfold.events import Aggregate, Aggregates, EventStore, NewEvent, on
from tenfold.testing import PgServer, RedisServer

REPO = Path(__file__).resolve().parents[1]
WRITERS = (1, 16)
POOL_SIZE = 16
#: Where each side's lag subscriber runs (tenfold's other process with hints, then without).
WHERES = {
    "tenfold": ("other_process", "other_process_polling", "same_process"),
    PEER: ("other_process", "same_process"),
}
#: Writers sharing the lag section's steady schedule (one append at a time each).
PACED_WRITERS = 8
#: The durable default; bench_jobs' harness server turns fsync off.
PG_SETTINGS = {"fsync": "on", "synchronous_commit": "on"}
#: Reported after each run, never enforced.
TARGETS = {
    "tenfold.appends_per_s.w1": Target.at_least(5000),
    "tenfold.appends_per_s.w16": Target.at_least(10000),
    f"tenfold/{PEER}.appends_per_s.w16": Target.at_least(2.0),
}
SectionResult = dict[str, dict[str, float]]


@dataclass(slots=True)
class Bench:
    """What every section works with: the options, the server, and both sides opened on it."""

    args: argparse.Namespace
    pg: PgServer
    store: EventStore
    recorder: Any  # eventsourcing.postgres.PostgresApplicationRecorder
    workdir: Path
    #: The Redis tenfold's append hints travel over.
    redis_url: str


# -- 1. appends --------------------------------------------------------------------------------


async def appends(bench: Bench) -> SectionResult:
    """Appends per second, 1 and 16 writers, both sides; medians over the rounds."""
    return await _appends(bench, "", "one event per append")


async def appends_async_commit(bench: Bench) -> SectionResult:
    """The same with ``synchronous_commit = off`` on the server, for both sides: what the
    appends cost without waiting for the disk (the targets are judged on the durable run)."""
    bench.pg.psql("ALTER SYSTEM SET synchronous_commit = off")
    bench.pg.psql("SELECT pg_reload_conf()")
    try:
        return await _appends(bench, ".async_commit", "synchronous_commit=off")
    finally:
        bench.pg.psql("ALTER SYSTEM RESET synchronous_commit")
        bench.pg.psql("SELECT pg_reload_conf()")


async def _appends(bench: Bench, suffix: str, title: str) -> SectionResult:
    args, rounds = bench.args, {}
    # Untimed: every pool connection opened and every statement prepared first.
    await sides.tenfold_appends(bench.store, POOL_SIZE, POOL_SIZE * 20, f"warm{suffix}")
    await asyncio.to_thread(sides.peer_appends, bench.recorder, POOL_SIZE, POOL_SIZE * 20)
    for r in range(args.rounds):
        order = ("tenfold", PEER) if r % 2 == 0 else (PEER, "tenfold")
        for writers in WRITERS:
            for side in order:
                count = args.appends * (2 if writers > 1 else 1)
                if side == "tenfold":
                    rate = await sides.tenfold_appends(
                        bench.store, writers, count, f"r{r}w{writers}{suffix}"
                    )
                else:
                    rate = await asyncio.to_thread(
                        sides.peer_appends, bench.recorder, writers, count
                    )
                rounds.setdefault(f"{side}.appends_per_s.w{writers}{suffix}", []).append(rate)
            count = args.appends * (2 if writers > 1 else 1)
            rate = await sides.asyncpg_inserts(
                bench.pg.dsn(args.tenfold_db), writers, count, POOL_SIZE
            )
            rounds.setdefault(f"asyncpg.inserts_per_s.w{writers}{suffix}", []).append(rate)
    figures = {name: statistics.median(values) for name, values in rounds.items()}
    ratios = {}
    print(f"\n{'appends/s':<14}{'tenfold':>10}{PEER:>15}{'ratio':>8}{'ceiling':>10}   ({title})")
    for writers in WRITERS:
        key = f"appends_per_s.w{writers}{suffix}"
        ours, peer = (figures[f"{s}.{key}"] for s in ("tenfold", PEER))
        ceiling = figures[f"asyncpg.inserts_per_s.w{writers}{suffix}"]
        ratios[f"tenfold/{PEER}.{key}"] = ours / peer
        ratios[f"tenfold/asyncpg.{key}"] = ours / ceiling
        label = f"{writers} writer{'s' if writers > 1 else ''}"
        print(f"{label:<14}{ours:>10,.0f}{peer:>15,.0f}{ours / peer:>7.2f}x{ceiling:>10,.0f}")
    print(
        f"  ({PEER}: its writers are threads, its pool {POOL_SIZE} connections; ours: tasks; "
        "ceiling: a plain autocommit INSERT on a raw asyncpg pool, no checks)"
    )
    return {"figures": figures, "ratios": ratios}


# -- 2. subscriber lag -------------------------------------------------------------------------


async def lag(bench: Bench) -> SectionResult:
    """Append committed -> subscriber handled, p50/p99, at a steady rate; both sides and places."""
    args = bench.args
    count = int(args.rate * args.lag_seconds)
    samples: dict[str, list[float]] = {}
    achieved: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for side in ("tenfold", PEER) if r % 2 == 0 else (PEER, "tenfold"):
            for where in WHERES[side]:
                committed, handled = await _lag_run(bench, side, where, count, f"lag-r{r}")
                missing = set(committed) - set(handled)
                if missing:
                    raise RuntimeError(f"{side} {where}: {len(missing)} events never handled")
                key = f"{side}.lag_{where}"
                samples.setdefault(key, []).extend(
                    (handled[i] - committed[i]) * 1000 for i in committed if i in handled
                )
                # Below --rate when the writer's appends cannot keep up with it.
                span = max(committed.values()) - min(committed.values())
                achieved.setdefault(key, []).append((len(committed) - 1) / span)
    figures: dict[str, float] = {"lag_rate_per_s": args.rate, "poll_interval_s": args.poll_interval}
    for key, rates in achieved.items():
        figures[f"{key}_achieved_per_s"] = statistics.median(rates)
    for key, values in samples.items():
        figures[f"{key}_p50_ms"] = _percentile(values, 50)
        figures[f"{key}_p99_ms"] = _percentile(values, 99)
        figures[f"{key}_events"] = float(len(values))
    ratios = {}
    print(f"\nlag at {args.rate:g} appends/s (ms){'tenfold':>12}{PEER:>15}{'ratio':>8}")
    for where in ("other_process", "same_process"):
        for q in ("p50", "p99"):
            ours, peer = (figures[f"{s}.lag_{where}_{q}_ms"] for s in ("tenfold", PEER))
            ratios[f"tenfold/{PEER}.lag_{where}_{q}_ms"] = ours / peer
            label = f"{where.replace('_', ' ')} {q}"
            print(f"{label:<29}{ours:>12.2f}{peer:>15.2f}{ours / peer:>7.2f}x")
        ours, peer = (figures[f"{s}.lag_{where}_achieved_per_s"] for s in ("tenfold", PEER))
        print(f"{where.replace('_', ' ') + ' appends/s':<29}{ours:>12.0f}{peer:>15.0f}")
    for q in ("p50", "p99"):
        polled = figures[f"tenfold.lag_other_process_polling_{q}_ms"]
        print(f"{'other process, no Redis ' + q:<29}{polled:>12.2f}")
    print(
        f"  (tenfold in another process: woken by a hint over Redis pub/sub, and without Redis "
        f"by polling every {args.poll_interval:g} s; in the same process the append wakes it; "
        f"{PEER} is woken by LISTEN/NOTIFY)"
    )
    return {"figures": figures, "ratios": ratios}


async def _lag_run(
    bench: Bench, side: str, where: str, count: int, tag: str
) -> tuple[dict[int, float], dict[int, float]]:
    """(committed, handled) times of each event of one paced run."""
    args, stream = bench.args, f"{tag}-{side}-{where}"
    if side == "tenfold":
        head = await bench.store.append(f"{stream}-mark", [NewEvent("Mark", {"i": -1})], 0)
        after: Any = head.position
    else:
        after = await asyncio.to_thread(bench.recorder.max_notification_id) or 0
    if where == "same_process":
        return await _lag_here(bench, side, after, count, stream)
    out = bench.workdir / f"{stream}.json"
    url = bench.pg.url(args.tenfold_db) if side == "tenfold" else bench.pg.dsn(args.peer_db)
    hints = bench.redis_url if where == "other_process" else "-"
    argv = [side, url, str(after), str(count), str(args.poll_interval), str(out), hints]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks._events_sides",
        *argv,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    if not await asyncio.wait_for(_ready(proc.stdout), 60):
        raise RuntimeError(f"the {side} subscriber process did not start")
    await asyncio.sleep(0.3)  # the peer's LISTEN runs in a thread started with the subscription
    committed = await _paced(bench, side, stream, count)
    if await asyncio.wait_for(proc.wait(), 60) != 0:
        raise RuntimeError(f"the {side} subscriber process failed")
    handled = {int(k): v for k, v in orjson.loads(out.read_bytes()).items()}
    return committed, handled


async def _ready(stdout: asyncio.StreamReader) -> bool:
    """Whether the subscriber said ``ready`` (lines before it are its platform's logs)."""
    while line := await stdout.readline():
        if line.strip() == b"ready":
            return True
    return False


async def _lag_here(
    bench: Bench, side: str, after: Any, count: int, stream: str
) -> tuple[dict[int, float], dict[int, float]]:
    ready = asyncio.Event()
    loop = asyncio.get_running_loop()
    if side == "tenfold":
        subscriber = asyncio.create_task(
            sides.tenfold_subscribe(bench.store, after, count, ready.set)
        )
    else:
        subscriber = asyncio.ensure_future(
            asyncio.to_thread(
                sides.peer_subscribe,
                bench.recorder,
                after,
                count,
                lambda: loop.call_soon_threadsafe(ready.set),
            )
        )
    await asyncio.wait_for(ready.wait(), 60)
    await asyncio.sleep(0.3)
    committed = await _paced(bench, side, stream, count)
    return committed, await asyncio.wait_for(subscriber, 60)


def _paced(bench: Bench, side: str, stream: str, count: int) -> Awaitable[dict[int, float]]:
    rate, writers = bench.args.rate, PACED_WRITERS
    if side == "tenfold":
        return sides.tenfold_paced(bench.store, stream, rate, count, writers)
    return asyncio.to_thread(sides.peer_paced, bench.recorder, rate, count, writers)


# -- 3. aggregate loading ----------------------------------------------------------------------


class Account(Aggregate):
    """The benchmark's aggregate: a balance folded from ``Deposited`` events."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.balance = 0
        self.deposits = 0

    def deposit(self, amount: int) -> None:
        self.record(sides.TYPE, {**sides.payload(self.deposits), "amount": amount})

    @on(sides.TYPE)
    def _deposited(self, data: dict[str, Any]) -> None:
        self.balance += data["amount"]
        self.deposits += 1


async def aggregate_load(bench: Bench) -> SectionResult:
    """Loading a ``--aggregate-events`` stream's aggregate from the log alone, and from a
    snapshot taken at its last event; tenfold only (see the module docstring)."""
    store, n = bench.store, bench.args.aggregate_events
    stream = f"account-{os.getpid()}"
    batch = 500
    for version in range(0, n - 1, batch):
        size = min(batch, n - 1 - version)
        events = [NewEvent(sides.TYPE, sides.payload(version + k)) for k in range(size)]
        await store.append(stream, events, version)
    # The n-th event, saved through a repository that snapshots every n: a snapshot at n.
    snapshots = Aggregates(store, snapshot_every=n)
    account = await snapshots.load(Account, stream)
    account.deposit(1250)
    await snapshots.save(account)
    plain = Aggregates(store, snapshot_every=0)
    times: dict[str, list[float]] = {"from_log": [], "from_snapshot": []}
    for _ in range(bench.args.rounds):
        for key, repo, loads in (("from_log", plain, 3), ("from_snapshot", snapshots, 30)):
            for _ in range(loads):
                start = time.perf_counter()
                loaded = await repo.load(Account, stream)
                times[key].append((time.perf_counter() - start) * 1000)
                if loaded.version != n or loaded.deposits != n:
                    raise RuntimeError(f"{key}: loaded {loaded.deposits} of {n} events")
    figures = {f"tenfold.aggregate_load_{k}_ms": statistics.median(v) for k, v in times.items()}
    figures["aggregate_events"] = float(n)
    log, snap = (
        figures["tenfold.aggregate_load_from_log_ms"],
        figures["tenfold.aggregate_load_from_snapshot_ms"],
    )
    print(f"\naggregate load, {n:,}-event stream (ms){'tenfold':>10}")
    print(f"{'from the log alone':<36}{log:>10.2f}")
    print(f"{'from a snapshot (and no tail)':<36}{snap:>10.2f}")
    print(f"  (the snapshot saves {log / snap:.0f}x; {PEER} has no comparable figure here)")
    return {"figures": figures, "ratios": {"tenfold.aggregate_load_log/snapshot": log / snap}}


#: Run in this order; each returns ``{"figures": {...}, "ratios": {...}}``.
SECTIONS: list[Callable[[Bench], Awaitable[SectionResult]]] = [
    appends,
    appends_async_commit,
    lag,
    aggregate_load,
]


# -- running -----------------------------------------------------------------------------------


def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--appends",
        type=int,
        default=4000,
        help="events per 1-writer run (4000; 16 writers: twice)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, sides alternating (3)")
    parser.add_argument("--rate", type=float, default=1000.0, help="lag: appends/s (1000)")
    parser.add_argument("--lag-seconds", type=float, default=5.0, help="lag: each run's length (5)")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="tenfold's poll (0.1 s)")
    parser.add_argument(
        "--aggregate-events", type=int, default=10_000, help="aggregate load: stream length"
    )
    parser.add_argument("--quick", action="store_true", help="1 round, short runs: a smoke test")
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tenfold-db", default="bench_tenfold", help=argparse.SUPPRESS)
    parser.add_argument("--peer-db", default="bench_eventsourcing", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.appends, args.rounds, args.lag_seconds = 200, 1, 0.5
        args.aggregate_events = 2000
    return args


async def run(args: argparse.Namespace, pg: PgServer, workdir: Path, redis_url: str) -> Results:
    """Run every section against ``pg``; print; write the results file."""
    results = Results(Path(__file__).stem, quick=args.quick, targets=dict(TARGETS))
    results.settings = server_settings(pg)
    # Other work on the machine moves every figure: the load it started under is kept.
    results.figures["loadavg_1min_at_start"] = os.getloadavg()[0]
    print(
        f"PostgreSQL {', '.join(f'{k}={v}' for k, v in results.settings.items())}; "
        f"{args.rounds} round(s); pools of {POOL_SIZE}; "
        f"load average {results.figures['loadavg_1min_at_start']:.2f}",
        flush=True,
    )
    recorder = await asyncio.to_thread(
        sides.peer_recorder, pg.dsn(args.peer_db), pool_size=POOL_SIZE
    )
    try:
        async with sides.tenfold_store(
            pg.url(args.tenfold_db),
            pool_size=POOL_SIZE,
            poll_interval=args.poll_interval,
            redis_url=redis_url,
        ) as store:
            bench = Bench(args, pg, store, recorder, workdir, redis_url)
            for section in SECTIONS:
                measured = await section(bench)
                results.figures.update(measured["figures"])
                results.ratios.update(measured["ratios"])
    finally:
        recorder.datastore.close()
    record(results, directory=args.results_dir)
    return results


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    databases = [args.tenfold_db, args.peer_db]
    with tempfile.TemporaryDirectory(prefix="tenfold-bench-events-") as workdir:
        server = RedisServer.from_env()
        fresh = server is None
        if server is None:
            server = RedisServer.launch(Path(workdir))
        try:
            with own_postgres(
                "tenfold-bench-events-pg-", databases=databases, settings=PG_SETTINGS
            ) as pg:
                asyncio.run(run(args, pg, Path(workdir), server.url))
        finally:
            if fresh:
                server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
