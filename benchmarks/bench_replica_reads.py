"""What the primary/replica router costs per read, measured against plain engines.

Point reads (``SELECT v FROM points WHERE id = :id``, indexed) from N
concurrent tasks, a fixed number in total, five ways in the same run:

- ``router``: ``Database.session(readonly=True)``, routed to the replica;
- ``router+token``: the router with a consistency token the replica has
  already replayed (the read-your-writes check on the cached LSN);
- ``replica-engine``: a plain ``AsyncSession`` on the router's own replica
  engine (same server, pool and driver settings: statement and command
  timeouts, the liveness check on checkout), so the difference is the
  router's own cost;
- ``direct-replica``: a plain ``AsyncSession`` on ``create_async_engine`` with
  SQLAlchemy's defaults, pointed at the replica: the difference is everything
  tenfold adds, engine settings included;
- ``direct-primary``: the same on the primary.

Every variant does the same transaction work per read: BEGIN (``BEGIN READ
ONLY`` for the router, the same round trip), the SELECT, ROLLBACK. Rounds are
interleaved and the median round is reported. The routing decision itself
(``Router.choose_replica``) is also timed alone. The figures and ratios go to
``benchmarks/results/bench_replica_reads.json``; docs/benchmarks.md sets no
target here.

It starts its own PostgreSQL primary and replica with ``tenfold.testing``
(or uses ``TENFOLD_TEST_PG_PRIMARY`` / ``TENFOLD_TEST_PG_REPLICA``).

    .venv/bin/python benchmarks/bench_replica_reads.py [--quick] [--uvloop]
    python -m benchmarks bench_replica_reads
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from tenfold import ContextSnapshot, DatabaseSettings, restore
from tenfold.db import Database
from tenfold.testing import PgCluster

if not __package__:  # run as a file, not with -m: put the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._results import Results, record

ROWS = 10_000
QUERY = sa.text("SELECT v FROM points WHERE id = :id")
SessionFactory = Callable[[], AbstractAsyncContextManager[AsyncSession]]


@dataclass(frozen=True)
class Round:
    name: str
    seconds: float
    cpu_seconds: float
    latencies: list[float]

    @property
    def cpu_us(self) -> float:
        """This process's CPU time per read: steadier than wall time on a shared machine."""
        return self.cpu_seconds / len(self.latencies) * 1e6

    @property
    def qps(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def mean_us(self) -> float:
        return statistics.fmean(self.latencies) * 1e6


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--tasks", type=int, default=16, help="concurrent reading tasks")
    parser.add_argument("--reads", type=int, default=8_000, help="reads per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop, as `tenfold run` serves"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.reads, args.rounds = 2_000, 1
    return args


async def _run_round(name: str, factory: SessionFactory, tasks: int, reads: int) -> Round:
    latencies: list[float] = []
    per_task = reads // tasks
    rng = random.Random(7)

    async def reader() -> None:
        for _ in range(per_task):
            key = rng.randint(1, ROWS)
            started = time.perf_counter()
            async with factory() as session:
                await session.scalar(QUERY, {"id": key})
            latencies.append(time.perf_counter() - started)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(reader() for _ in range(tasks)))
    return Round(name, time.perf_counter() - started, time.process_time() - cpu, latencies)


def _plain(engine: Any) -> SessionFactory:
    def factory() -> AbstractAsyncContextManager[AsyncSession]:
        return AsyncSession(engine, expire_on_commit=False)

    return factory


def _with_token(db: Database, lsn: int) -> SessionFactory:
    class _Scoped:
        async def __aenter__(self) -> AsyncSession:
            self.context = restore(ContextSnapshot(consistency_lsn=lsn))
            self.context.__enter__()
            self.cm = db.session(readonly=True)
            return await self.cm.__aenter__()

        async def __aexit__(self, *exc: Any) -> None:
            try:
                await self.cm.__aexit__(*exc)
            finally:
                self.context.__exit__(None, None, None)

    return _Scoped  # type: ignore[return-value]


def _decision_ns(db: Database, token: int | None, calls: int = 200_000) -> float:
    choose = db.router.choose_replica
    started = time.perf_counter()
    for _ in range(calls):
        choose(token)
    return (time.perf_counter() - started) / calls * 1e9


async def _bench(cluster: PgCluster, args: argparse.Namespace) -> None:
    name = cluster.create_database()
    cluster.primary.psql(
        "CREATE TABLE points (id int PRIMARY KEY, v int NOT NULL);"
        f"INSERT INTO points SELECT g, g * 2 FROM generate_series(1, {ROWS}) g; ANALYZE points;",
        db=name,
    )
    cluster.wait_caught_up()
    pool = {"pool_size": args.tasks, "max_overflow": 0}
    settings = DatabaseSettings(
        url=SecretStr(cluster.primary.url(name)),
        replicas=[SecretStr(cluster.replica.url(name))],
        cursor_secret=SecretStr("benchmark-cursor-secret"),
        **pool,
    )
    db = Database(settings)
    await db.start()
    primary = create_async_engine(cluster.primary.url(name), **pool)
    replica = create_async_engine(cluster.replica.url(name), **pool)
    replay = db.router.replicas[0].state.replay_lsn or 0
    variants: dict[str, SessionFactory] = {
        "router": lambda: db.session(readonly=True),
        "router+token": _with_token(db, replay),
        "replica-engine": _plain(db.router.replicas[0].engine),
        "direct-replica": _plain(replica),
        "direct-primary": _plain(primary),
    }
    try:
        for factory in variants.values():  # warm every pool and statement cache
            await _run_round("warm-up", factory, args.tasks, args.tasks * 20)
        rounds: dict[str, list[Round]] = {v: [] for v in variants}
        serial: dict[str, list[Round]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for variant, factory in variants.items():
                rounds[variant].append(await _run_round(variant, factory, args.tasks, args.reads))
                serial[variant].append(await _run_round(variant, factory, 1, args.reads // 8))
        results = Results(Path(__file__).stem, quick=args.quick)
        _report(rounds, serial, db, replay, args, results)
        record(results)
    finally:
        await db.stop()
        await primary.dispose()
        await replica.dispose()
        cluster.drop_database(name)


def _median(rounds: list[Round]) -> Round:
    return sorted(rounds, key=lambda r: r.qps)[len(rounds) // 2]


def _report(
    rounds: dict[str, list[Round]],
    serial: dict[str, list[Round]],
    db: Database,
    replay: int,
    args: Any,
    results: Results,
) -> None:
    best = {name: _median(rs) for name, rs in rounds.items()}
    one = {name: _median(rs) for name, rs in serial.items()}
    loop = "uvloop" if args.uvloop else "asyncio"
    print(
        f"{args.tasks} tasks, {args.reads} point reads per round, {args.rounds} round(s), "
        f"median, {loop} event loop"
    )
    header = ("reads/s", 9), ("mean µs", 9), ("p99 µs", 9), ("cpu µs/read", 13), ("1-task µs", 11)
    print(f"{'variant':<16}" + "".join(f"{title:>{width}}" for title, width in header))
    for name, r in best.items():
        p99 = statistics.quantiles(r.latencies, n=100)[98] * 1e6
        print(
            f"{name:<16}{r.qps:>9.0f}{r.mean_us:>9.0f}{p99:>9.0f}{r.cpu_us:>13.0f}"
            f"{one[name].mean_us:>11.0f}"
        )
        results.figures[f"{name}.reads_per_s"] = r.qps
        results.figures[f"{name}.mean_us"] = r.mean_us
        results.figures[f"{name}.p99_us"] = p99
        results.figures[f"{name}.cpu_us_per_read"] = r.cpu_us
        results.figures[f"{name}.one_task_mean_us"] = one[name].mean_us
    _compare(best, one, results)
    without, with_token = _decision_ns(db, None), _decision_ns(db, replay)
    print(
        f"routing decision alone: {without:.0f} ns without a token, "
        f"{with_token:.0f} ns with a replayed token"
    )
    results.figures["choose_replica.ns"] = without
    results.figures["choose_replica+token.ns"] = with_token


def _compare(best: dict[str, Round], one: dict[str, Round], results: Results) -> None:
    """Print the router against the plain engines; record ours/peer by reads/s and CPU."""
    for ours, peer, what in (
        ("router", "replica-engine", "the router's own cost: same engine, pool, driver settings"),
        ("router", "direct-replica", "all of it, tenfold's engine settings included"),
        ("replica-engine", "direct-replica", "the engine settings alone (timeouts, liveness)"),
    ):
        a, b = best[ours], best[peer]
        print(
            f"{ours} vs {peer} ({what}):\n"
            f"  cpu {a.cpu_us:.0f} vs {b.cpu_us:.0f} µs/read ({a.cpu_us / b.cpu_us:.2f}x, "
            f"{a.cpu_us - b.cpu_us:+.0f} µs), throughput {a.qps / b.qps:.2f}x, "
            f"1-task latency {one[ours].mean_us - one[peer].mean_us:+.0f} µs"
        )
        results.ratios[f"{ours}/{peer}"] = a.qps / b.qps
        results.ratios[f"{ours}/{peer}.cpu_us_per_read"] = a.cpu_us / b.cpu_us


def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="tenfold-bench-"))
    if os.geteuid() == 0:  # the servers run as the postgres user, never as root
        shutil.chown(path, "postgres", "postgres")
    return path


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    cluster = PgCluster.from_env()
    workdir = None
    if cluster is None:
        workdir = _workdir()
        cluster = PgCluster.launch(workdir)
    try:
        if args.uvloop:
            import uvloop

            uvloop.run(_bench(cluster, args))
        else:
            asyncio.run(_bench(cluster, args))
    finally:
        cluster.close()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
