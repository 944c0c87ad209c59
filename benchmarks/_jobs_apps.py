"""The two sides of bench_jobs: a tenfold app and a plain Celery app, one trivial task each.

Both tasks do the same work through the same function, ``record``: one
INCR of a counter in the broker's Redis (so the benchmark can see that every
task ran), plus, in the latency phase, the milliseconds from enqueue to start.

The plain Celery app gets exactly tenfold's settings (acks_late, reject on
worker lost, prefetch 1, time limits, memory cap, JSON, no results, remote
control and events off), so the ratio is tenfold's own cost per task, not a
difference of configuration. Workers load them from the command line:

    tenfold --app benchmarks._jobs_apps:make_app worker -Q bench_jobs -c 2
    celery -A benchmarks._jobs_apps:plain worker -Q bench_jobs -c 2 ...
"""

from __future__ import annotations

import os
import time
from typing import Any

import sqlalchemy as sa
from celery import Celery

from tenfold import create_app
from tenfold.jobs import JobsExtension, Tasks, task_session

__all__ = [
    "COUNTER",
    "EFFECTS_DDL",
    "LATENCIES",
    "QUEUE",
    "make_app",
    "plain_celery",
    "record",
    "tasks",
]

QUEUE = "bench_jobs"
COUNTER = "bench_jobs:done"
LATENCIES = "bench_jobs:start_ms"
#: The Redis both workers' tasks write to (the broker's), set in their environment.
URL_ENV = "BENCH_JOBS_REDIS_URL"
#: The PostgreSQL database the effect tasks insert into (asyncpg DSN), for the plain side.
PG_ENV = "BENCH_JOBS_PG_DSN"
#: One row per effect task run; ``side`` tells the two sides' rows apart.
EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_effects (id bigserial PRIMARY KEY, side text, n int)"
)

_client: Any = None


def record(sent_at: float | None) -> None:
    """Count one run; with ``sent_at`` (epoch seconds) also push the wait until it started."""
    started = time.time()
    global _client
    if _client is None:  # one connection per pool process, made in the process
        import redis

        _client = redis.Redis.from_url(os.environ[URL_ENV])
    if sent_at is None:
        _client.incr(COUNTER)
        return
    pipe = _client.pipeline(transaction=False)
    pipe.incr(COUNTER)
    pipe.rpush(LATENCIES, (started - sent_at) * 1000)
    pipe.execute()


tasks = Tasks(queue=QUEUE)


@tasks.task(name="bench.tenfold_noop")
def tenfold_noop(sent_at: float | None = None) -> None:
    """The tenfold side's trivial task."""
    record(sent_at)


@tasks.task(name="bench.tenfold_effect", exactly_once=True)
async def tenfold_effect(n: int) -> None:
    """One row inserted in the task's transaction, which also records its key."""
    await task_session().execute(
        sa.text("INSERT INTO bench_effects (side, n) VALUES ('tenfold', :n)"), {"n": n}
    )
    record(None)


def make_app() -> Any:
    """The tenfold app ``tenfold worker`` loads."""
    return create_app(extensions=[JobsExtension(tasks=[tasks])])


def plain_celery(url: str) -> Celery:
    """A plain Celery app on ``url`` with tenfold's settings and one task, ``bench.plain_noop``."""
    app = Celery("bench-plain", broker=url, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_memory_per_child=512000,
        task_soft_time_limit=300,
        task_time_limit=360,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"visibility_timeout": 3600},
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="bench.plain_noop", shared=False)
    def plain_noop(sent_at: float | None = None) -> None:
        record(sent_at)

    @app.task(name="bench.plain_effect", shared=False)
    def plain_effect(n: int) -> None:
        """The same row, inserted the way a Celery app on asyncpg would: one loop and one
        connection per pool process, no key, no protection against a redelivery."""
        loop, conn = _plain_connection()
        loop.run_until_complete(
            conn.execute("INSERT INTO bench_effects (side, n) VALUES ('plain', $1)", n)
        )
        record(None)

    return app


_plain: tuple[Any, Any] | None = None


def _plain_connection() -> tuple[Any, Any]:
    global _plain
    if _plain is None:  # made in the pool process, after the fork
        import asyncio

        import asyncpg

        loop = asyncio.new_event_loop()
        _plain = loop, loop.run_until_complete(asyncpg.connect(os.environ[PG_ENV]))
    return _plain


#: What ``celery -A benchmarks._jobs_apps:plain worker`` runs (the URL from the environment).
plain = plain_celery(os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"))
