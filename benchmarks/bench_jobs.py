"""Background jobs: tenfold tasks against plain Celery tasks, same Redis broker, same run.

- ``tenfold``: a sync task declared with ``tenfold.jobs``, sent with
  ``await task.enqueue(...)`` (which publishes in a thread), run by
  ``tenfold worker``.
- ``plain-celery``: the same function as an ``@app.task``, sent with
  ``.delay(...)`` called directly, run by ``celery worker``.

Both workers: 2 prefork processes, acks_late, reject on worker lost,
prefetch 1, the same time limits, memory cap and JSON serializer, remote
control, events, mingle and gossip off, log level WARNING (see
``benchmarks/_jobs_apps.py``). Both tasks do one INCR in Redis, so every run
is counted. Each round, for each side:

1. **enqueue**: ``--tasks`` messages sent one after another with no worker
   running (messages per second);
2. **drain**: a worker is started and runs that backlog (tasks per second from
   the first counted run to the last);
3. **end to end**: ``--tasks`` more sent while the warm worker runs, timed from
   the first send until the last task has run;
4. **latency**: tasks sent at a steady ``--rate`` per second for
   ``--latency-seconds``; each records the time from just before its send to
   its start (p50 and p99 over every round);
5. **effect**: ``--tasks`` tasks that each insert one row into PostgreSQL,
   sent to the warm worker, timed from the first send until the last ran. The
   tenfold task is ``exactly_once``: the row and its key in one transaction
   (the dead-letter queue and context propagation are always on). The plain
   task inserts the same row the way a Celery app on asyncpg would (a loop and
   a connection per pool process), with no protection against redelivery.
   Both sides' rows are counted afterwards: each must be exactly ``--tasks``;
6. **enqueue in a thread** (plain side only, worker stopped): ``--tasks`` sent
   with ``await asyncio.to_thread(task.delay, ...)``, as an ``async def``
   caller must to keep its loop free; measured, then deleted, never run;
7. **enqueue after commit** (tenfold side only, worker stopped): ``--tasks``
   sent through the outbox, one transaction each (``async with
   db.session() as s: await task.enqueue(..., session=s)``: the outbox row,
   the commit, the send, the row's deletion), and again ten per transaction;
   compared with plain ``.delay`` outside any transaction; measured, then
   deleted, never run.

Medians over ``--rounds`` rounds; the sides alternate within a round. Ratios
are tenfold over plain Celery from this run; the target (reported, never
enforced) is >= 0.9 for end-to-end throughput and for the enqueue rate. The
figures go to ``benchmarks/results/bench_jobs.json``.

    python -m benchmarks bench_jobs [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from tenfold import Platform, RedisSettings, Settings
from tenfold.jobs import JobsExtension, create_tables
from tenfold.jobs._celery import redis_lists
from tenfold.testing import RedisServer

if not __package__:  # run as a file, not with -m: put the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _jobs_apps as apps
from benchmarks._postgres import own_postgres
from benchmarks._results import Results, Target, record

REPO = Path(__file__).resolve().parents[1]
SIDES = ("tenfold", "plain-celery")
PEER = "plain-celery"
#: ``.delay`` in ``asyncio.to_thread``: how an async caller sends without blocking its loop.
THREAD_PEER = "plain-celery-in-thread"
#: tenfold over plain Celery; reported after each run, never enforced.
TARGETS = {
    f"tenfold/{PEER}": Target.at_least(0.9),
    f"tenfold/{PEER}.enqueue_per_s": Target.at_least(0.9),
    f"tenfold/{PEER}.effect_tasks_per_s": Target.at_least(0.9),
}
#: (tasks per transaction, figure) of the enqueue-after-commit phase.
OUTBOX_PHASES = ((1, "outbox_enqueue_per_s"), (10, "outbox10_enqueue_per_s"))
#: Signs cursors: tenfold refuses PostgreSQL without one.
CURSOR_SECRET = "bench-jobs-cursor-secret"
Send = Callable[[float | None], Awaitable[None]]


@dataclass(slots=True)
class Side:
    """One side's sender, worker command, and what its rounds measured."""

    name: str
    send: Send
    argv: list[str]
    rounds: dict[str, list[float]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0
    ran: int = 0
    #: Rows the effect phase's tasks inserted, over all rounds (each task: exactly one).
    effects: int = 0
    #: The plain side's ``.delay`` run in a thread, as an async caller must (enqueue only).
    send_in_thread: Send | None = None
    #: Sends one task of the effect phase (argument: its number).
    send_effect: Callable[[int], Awaitable[None]] | None = None
    #: tenfold only: enqueue through the outbox, ``n`` tasks per transaction.
    send_outbox: Callable[[int], Awaitable[None]] | None = None

    def add(self, figure: str, value: float) -> None:
        self.rounds.setdefault(figure, []).append(value)


def _worker_argv(name: str) -> list[str]:
    common = ["--concurrency", "2", "--pool", "prefork", "--loglevel", "WARNING"]
    if name == "tenfold":
        tenfold = Path(sys.executable).with_name("tenfold")
        app = ["--app", "benchmarks._jobs_apps:make_app", "--app-dir", str(REPO)]
        return [str(tenfold), *app, "worker", "--queues", apps.QUEUE, *common]
    celery = Path(sys.executable).with_name("celery")
    # tenfold worker turns these off itself (remote control is off, so they talk to nobody).
    extra = ["--without-mingle", "--without-gossip", "-O", "fair"]
    plain = [str(celery), "-A", "benchmarks._jobs_apps:plain", "worker", "-Q", apps.QUEUE]
    return [*plain, *common, *extra]


@contextmanager
def _worker(side: Side, url: str, pg: Any, database: str, workdir: Path) -> Any:
    """The side's worker as a subprocess, warm-shut-down (SIGTERM) on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENFOLD_")}
    env.update(
        {
            apps.URL_ENV: url,
            apps.PG_ENV: pg.dsn(database),
            "TENFOLD_REDIS__URL": url,
            "TENFOLD_DB__URL": pg.url(database),
            "TENFOLD_DB__CURSOR_SECRET": CURSOR_SECRET,
            "PYTHONPATH": str(REPO),
        }
    )
    log = (workdir / f"worker-{side.name}.log").open("ab")
    proc = subprocess.Popen(side.argv, cwd=workdir, env=env, stdout=log, stderr=log)
    log.close()
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _progress(client: Any, proc: subprocess.Popen[bytes], at_least: int) -> tuple[int, float]:
    """(count, when) at the first poll that sees ``at_least`` runs counted; a hang guard."""
    deadline = time.perf_counter() + 120
    while True:
        count = int(client.get(apps.COUNTER) or 0)
        now = time.perf_counter()
        if count >= at_least:
            return count, now
        if proc.poll() is not None or now > deadline:
            raise RuntimeError(f"worker stalled at {count} of {at_least} runs (see its log)")
        await asyncio.sleep(0.005)


async def _send_all(side: Side, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await side.send(None)
    side.sent += n
    return start


async def _paced(side: Side, rate: float, count: int) -> None:
    start = time.perf_counter()
    for i in range(count):
        wait = start + i / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        await side.send(time.time())
    side.sent += count


async def _round(
    side: Side, args: argparse.Namespace, client: Any, url: str, pg: Any, workdir: Path
) -> None:
    """The phases for one side; the counter proves each phase's tasks all ran."""
    n = args.tasks
    client.delete(apps.COUNTER, apps.LATENCIES)
    start = await _send_all(side, n)
    side.add("enqueue_per_s", n / (time.perf_counter() - start))
    with _worker(side, url, pg, args.pg_db, workdir) as proc:
        first, first_at = await _progress(client, proc, 1)
        _, done_at = await _progress(client, proc, n)
        side.add("drain_tasks_per_s", (n - first) / (done_at - first_at))
        start = await _send_all(side, n)
        _, done_at = await _progress(client, proc, 2 * n)
        side.add("tasks_per_s", n / (done_at - start))
        paced = int(args.rate * args.latency_seconds)
        await _paced(side, args.rate, paced)
        await _progress(client, proc, 2 * n + paced)
        if side.send_effect is not None:
            start = time.perf_counter()
            for i in range(n):
                await side.send_effect(i)
            side.sent += n
            _, done_at = await _progress(client, proc, 3 * n + paced)
            side.add("effect_tasks_per_s", n / (done_at - start))
    # Counted after the worker stopped: a task run twice would show here.
    side.ran += int(client.get(apps.COUNTER) or 0)
    side.latencies_ms.extend(float(v) for v in client.lrange(apps.LATENCIES, 0, -1))
    if side.send_in_thread is not None:
        start = time.perf_counter()
        for _ in range(n):
            await side.send_in_thread(None)
        side.add("enqueue_in_thread_per_s", n / (time.perf_counter() - start))
        _drop_queue(client)  # measured only: never run, not counted as sent
    if side.send_outbox is not None:
        for per_transaction, figure in (
            (1, "outbox_enqueue_per_s"),
            (10, "outbox10_enqueue_per_s"),
        ):
            start = time.perf_counter()
            for _ in range(n // per_transaction):
                await side.send_outbox(per_transaction)
            side.add(figure, n / (time.perf_counter() - start))
            _drop_queue(client)


def _drop_queue(client: Any) -> None:
    client.delete(*redis_lists(apps.QUEUE))


async def _bench(args: argparse.Namespace, url: str, pg: Any, workdir: Path) -> list[Side]:
    settings = Settings.load(
        db={"url": pg.url(args.pg_db), "cursor_secret": CURSOR_SECRET},
        redis=RedisSettings(url=url),
        # The bench sends everything itself; nothing is left for a relay to send.
        jobs={"outbox_relay": False},
    )
    platform = Platform.build(
        settings, extensions=[JobsExtension(tasks=[apps.tasks])], configure_logs=False
    )
    plain_app = apps.plain_celery(url)
    plain_task = plain_app.tasks["bench.plain_noop"]
    plain_effect = plain_app.tasks["bench.plain_effect"]

    async def tenfold_send(sent_at: float | None) -> None:
        await apps.tenfold_noop.enqueue(sent_at)

    async def tenfold_effect(n: int) -> None:
        await apps.tenfold_effect.enqueue(n)

    async def plain_send_effect(n: int) -> None:
        plain_effect.delay(n)

    async def tenfold_outbox(per_transaction: int) -> None:
        async with platform.db.session() as session:
            for _ in range(per_transaction):
                await apps.tenfold_noop.enqueue(None, session=session)

    async def plain_send(sent_at: float | None) -> None:
        plain_task.delay(sent_at)  # as a plain Celery caller does: blocking, in place

    async def plain_send_in_thread(sent_at: float | None) -> None:
        await asyncio.to_thread(plain_task.delay, sent_at)

    sides = [
        Side(
            "tenfold",
            tenfold_send,
            _worker_argv("tenfold"),
            send_effect=tenfold_effect,
            send_outbox=tenfold_outbox,
        ),
        Side(
            PEER,
            plain_send,
            _worker_argv(PEER),
            send_in_thread=plain_send_in_thread,
            send_effect=plain_send_effect,
        ),
    ]
    client = redis.Redis.from_url(url)
    try:
        async with platform:
            await create_tables(platform.db)
            async with platform.db.session() as session:
                await session.execute(sa.text(apps.EFFECTS_DDL))
            for _ in range(args.rounds):
                for side in sides:
                    await _round(side, args, client, url, pg, workdir)
            async with platform.db.session(readonly=True) as session:
                counts = {
                    side: n for side, n in (await session.execute(sa.text(_EFFECT_COUNTS))).all()
                }
            for side in sides:
                side.effects = int(counts.get("tenfold" if side.name == "tenfold" else "plain", 0))
    finally:
        plain_app.close()
        client.close()
    return sides


_EFFECT_COUNTS = "SELECT side, count(*) FROM bench_effects GROUP BY side"


def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _report(sides: list[Side], results: Results) -> None:
    measures = ("enqueue_per_s", "drain_tasks_per_s", "tasks_per_s", "effect_tasks_per_s")
    print(
        f"{'side':<14}{'enqueue/s':>11}{'drain/s':>10}{'e2e/s':>9}{'effect/s':>10}"
        f"{'p50 ms':>9}{'p99 ms':>9}"
    )
    for side in sides:
        figures = {m: statistics.median(side.rounds[m]) for m in measures}
        figures["effect_rows"] = float(side.effects)
        for extra in ("outbox_enqueue_per_s", "outbox10_enqueue_per_s"):
            if extra in side.rounds:
                figures[extra] = statistics.median(side.rounds[extra])
        figures["latency_p50_ms"] = _percentile(side.latencies_ms, 50)
        figures["latency_p99_ms"] = _percentile(side.latencies_ms, 99)
        figures["tasks_sent"], figures["tasks_ran"] = float(side.sent), float(side.ran)
        for name, value in figures.items():
            results.figures[f"{side.name}.{name}"] = value
        print(
            f"{side.name:<14}{figures['enqueue_per_s']:>11.0f}{figures['drain_tasks_per_s']:>10.0f}"
            f"{figures['tasks_per_s']:>9.0f}{figures['effect_tasks_per_s']:>10.0f}"
            f"{figures['latency_p50_ms']:>9.2f}{figures['latency_p99_ms']:>9.2f}"
            f"   ran {side.ran} of {side.sent}, effect rows {side.effects}"
        )
    outbox = results.figures.get("tenfold.outbox_enqueue_per_s")
    if outbox:
        plain = results.figures[f"{PEER}.enqueue_per_s"]
        for figure in ("outbox_enqueue_per_s", "outbox10_enqueue_per_s"):
            ours = results.figures[f"tenfold.{figure}"]
            results.ratios[f"tenfold/{PEER}.{figure}"] = ours / plain
            print(
                f"{figure}: {ours:.0f}/s ({1e6 / ours:.0f} µs a task) against plain .delay "
                f"{plain:.0f}/s ({1e6 / plain:.0f} µs): {ours / plain:.2f}x"
            )
    in_thread = sides[-1].rounds.get("enqueue_in_thread_per_s")
    if in_thread:
        results.figures[f"{THREAD_PEER}.enqueue_per_s"] = statistics.median(in_thread)
        ratio = results.figures["tenfold.enqueue_per_s"] / statistics.median(in_thread)
        results.ratios[f"tenfold/{THREAD_PEER}.enqueue_per_s"] = ratio
        print(f"{THREAD_PEER}: enqueue/s {statistics.median(in_thread):.0f}")
        print(f"ratio tenfold/{THREAD_PEER}.enqueue_per_s: {ratio:.2f}x")
    for measure in measures:
        ours = results.figures[f"tenfold.{measure}"]
        name = f"tenfold/{PEER}" + ("" if measure == "tasks_per_s" else f".{measure}")
        results.ratios[name] = ours / results.figures[f"{PEER}.{measure}"]
        print(f"ratio {name}: {results.ratios[name]:.2f}x")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000, help="tasks per phase (5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, sides alternating (3)")
    parser.add_argument("--rate", type=float, default=200.0, help="latency phase: tasks/s (200)")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="its length (10)")
    parser.add_argument("--quick", action="store_true", help="200 tasks, 1 round: a smoke test")
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--pg-db", default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.rounds, args.latency_seconds = 200, 1, 1.0
    return args


async def run(args: argparse.Namespace, url: str, pg: Any, workdir: Path) -> Results:
    """Measure both sides on the Redis at ``url`` and PostgreSQL ``pg``; print; write results."""
    print(
        f"{args.tasks} tasks per phase, {args.rounds} round(s), latency at {args.rate:g}/s "
        f"for {args.latency_seconds:g} s, 2 prefork processes per worker",
        flush=True,
    )
    sides = await _bench(args, url, pg, workdir)
    results = Results(Path(__file__).stem, quick=args.quick, targets=dict(TARGETS))
    _report(sides, results)
    record(results, directory=args.results_dir)
    return results


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tenfold-bench-jobs-"))
    server = RedisServer.from_env()
    fresh = server is None
    if server is None:
        server = RedisServer.launch(workdir)
    print(f"redis {server.url} ({'fresh' if fresh else 'TENFOLD_TEST_REDIS_URL'})", flush=True)
    try:
        with own_postgres("tenfold-bench-jobs-pg-", databases=[args.pg_db]) as pg:
            asyncio.run(run(args, server.url, pg, workdir))
    finally:
        if fresh:
            server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
