"""A small app with background tasks, for `tenfold worker` and the embedded worker in the
jobs tests.

Each task inserts a row into ``marks`` through the worker's platform; the
tests count rows to see which tasks ran, and how many times. ``POST
/enqueue/{task}`` enqueues one from a request.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from contextlib import closing
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI

from tenfold import (
    Backoff,
    create_app,
    current_causation_id,
    current_request_id,
    current_user_id,
)
from tenfold.db import DbSession
from tenfold.jobs import JobsExtension, Tasks, current_platform, task_session
from tenfold.observability import get_logger

metadata = sa.MetaData()
marks = sa.Table(
    "marks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("marker", sa.String(100), nullable=False),
    sa.Column("sent_to", sa.String(100), nullable=False),
)

tasks = Tasks()


@tasks.task
async def mark(marker: str, sent_to: str = "") -> None:
    """Insert one row through the worker's platform (its database session)."""
    async with current_platform().db.session() as session:
        await session.execute(sa.insert(marks).values(marker=marker, sent_to=sent_to))


router = APIRouter()


@router.post("/enqueue/{name}", status_code=202)
async def enqueue(name: str, body: dict[str, Any]) -> dict[str, str]:
    """Enqueue the task of this module named ``name`` with ``body["args"]`` (and a
    ``countdown`` or ``queue``); the message id."""
    declared = {t.fn.__name__: t for t in tasks}[name]
    job = await declared.enqueue(
        *body.get("args", []), countdown=body.get("countdown"), queue=body.get("queue")
    )
    return {"job": job}


@router.post("/commit/{name}", status_code=202)
async def enqueue_in_transaction(
    name: str, body: dict[str, Any], session: DbSession
) -> dict[str, str]:
    """Insert a ``request`` row and enqueue the task in the same transaction; with
    ``body["fail"]`` the handler then raises, so both roll back."""
    declared = {t.fn.__name__: t for t in tasks}[name]
    await session.execute(sa.insert(marks).values(marker="request", sent_to=name))
    job = await declared.enqueue(*body.get("args", []), session=session)
    if body.get("fail"):
        raise RuntimeError("the request failed after enqueueing")
    return {"job": job}


def make_app() -> FastAPI:
    """The app as `tenfold --app tests.jobs.worker_app:make_app` loads it."""
    return create_app(routers=[router], extensions=[JobsExtension(tasks=[tasks])])


@tasks.task(backoff=Backoff(base=0.05, max=0.05), max_retries=3)
async def flaky(marker: str, failures: int) -> None:
    """Insert a row (and log) per attempt; the first ``failures`` attempts lose their
    connection."""
    get_logger("tests.jobs").info("flaky ran", marker=marker)
    await mark(marker)
    async with current_platform().db.session(readonly=True) as session:
        attempts = await session.scalar(
            sa.select(sa.func.count()).select_from(marks).where(marks.c.marker == marker)
        )
    if attempts <= failures:
        raise ConnectionError(f"attempt {attempts} of {marker} failed")


@tasks.task(backoff=Backoff(base=0.05, max=0.05), max_retries=3)
async def broken(marker: str) -> None:
    """Insert a row, then fail with a bug (not a transient error)."""
    await mark(marker)
    raise ValueError(f"{marker} is broken")


@tasks.task(exactly_once=True)
async def mark_once(marker: str, hold: float = 0.0) -> None:
    """Insert a row in the task's own transaction; ``hold`` seconds before it commits."""
    await task_session().execute(sa.insert(marks).values(marker=marker, sent_to="once"))
    if hold:
        await asyncio.sleep(hold)


@tasks.task(exactly_once=True, key=lambda order: f"order-{order}")
async def charge(order: int) -> None:
    """Insert one row per order: the key is the order, whatever the message."""
    await task_session().execute(sa.insert(marks).values(marker=f"charge-{order}", sent_to=""))


@tasks.task(backoff=Backoff(base=0.2, max=0.2), max_retries=2, retry_on=(LookupError,))
async def poison(marker: str) -> None:
    """Insert a row per attempt and fail, until a row ``fixed-<marker>`` exists."""
    await mark(marker)
    async with current_platform().db.session(readonly=True) as session:
        fixed = await session.scalar(
            sa.select(sa.func.count()).select_from(marks).where(marks.c.marker == f"fixed-{marker}")
        )
    if not fixed:
        raise LookupError(f"{marker} is poison")


@tasks.task(
    backoff=Backoff(base=0.3, multiplier=2.0, max=5.0, jitter="none"),
    max_retries=3,
    retry_on=(LookupError,),
)
async def slow_retry(marker: str) -> None:
    """Insert a row stamped with the worker's clock, and fail; four attempts in all."""
    await mark(marker, sent_to=repr(time.time()))
    raise LookupError(f"{marker} failed")


@tasks.task
async def whoami(marker: str) -> None:
    """Log, and insert a row whose ``sent_to`` is the request id and principal it runs as."""
    get_logger("tests.jobs").info("whoami ran", marker=marker)
    acting = f"{current_request_id()}/{current_user_id()}/{current_causation_id()}"
    await mark(marker, sent_to=acting)


@tasks.task
def whoami_sync(marker: str) -> None:
    """Log from a sync task (no loop, no platform)."""
    get_logger("tests.jobs").info("whoami_sync ran", marker=marker)


@tasks.task
def note(db_file: str, marker: str) -> None:
    """A sync task: insert a row with plain sqlite3 whose ``sent_to`` is the thread it ran in
    and the time it ran (``name@epoch seconds``)."""
    ran = f"{threading.current_thread().name}@{time.time()}"
    with closing(sqlite3.connect(db_file)) as conn, conn:
        conn.execute("INSERT INTO marks (marker, sent_to) VALUES (?, ?)", (marker, ran))


@tasks.task(max_retries=0)
async def hang(marker: str) -> None:
    """Insert a row, then wait for an hour (until cancelled)."""
    await mark(marker)
    await asyncio.sleep(3600)


# crash tests

#: The tasks of ``make_crash_app``, for the kill -9 tests (tests/jobs/test_crash.py). Their
#: backoff stays below the small TENFOLD_JOBS__MAX_COUNTDOWN those tests set, which the
#: tasks above (default backoff, up to 600 s) would fail at build.
crash_tasks = Tasks()


@crash_tasks.task(
    exactly_once=True,
    backoff=Backoff(base=0.05, max=0.05),
    # Above the tests' small visibility timeout on purpose: a held delivery may outlive it,
    # so that Redis delivers the message a second time while the first still runs.
    soft_time_limit=60,
    time_limit=90,
)
async def crash_mark(marker: str, hold: float = 0.0) -> None:
    """Record this attempt and the pid running it (committed at once), then insert the
    effect row in the task's transaction and keep it open ``hold`` seconds before it
    commits."""
    import os  # here, not at the top: this section is appended to by several hands

    async with current_platform().db.session() as session:
        await session.execute(
            sa.insert(marks).values(marker=marker, sent_to=f"attempt:{os.getpid()}")
        )
    await task_session().execute(sa.insert(marks).values(marker=marker, sent_to="effect"))
    if hold:
        await asyncio.sleep(hold)


def make_crash_app() -> FastAPI:
    """The app of the crash tests: `tenfold --app tests.jobs.worker_app:make_crash_app`."""
    return create_app(extensions=[JobsExtension(tasks=[crash_tasks])])
