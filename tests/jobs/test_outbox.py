"""Enqueue after commit: a rolled-back transaction sends nothing, a committed one sends once,
and a process that dies between its commit and the send leaves the message to the relay."""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest

from tenfold import Platform
from tenfold.jobs._celery import redis_lists
from tests.jobs import worker_app
from tests.jobs.conftest import REPO, JobsWorld, redis_client


def _queue(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def _waiting(world: JobsWorld, queue: str) -> int:
    redis = redis_client(world.redis)
    return sum(redis.llen(name) for name in redis_lists(queue))


def _outbox(world: JobsWorld) -> list[tuple[str, str]]:
    return [(i, t) for i, t in world.query("SELECT id, task FROM tenfold_job_outbox")]


class Boom(Exception):
    pass


async def test_a_rolled_back_transaction_never_sends_its_tasks(jobs_world: JobsWorld) -> None:
    queue = _queue("rollback")
    waiting_inside: list[int] = []

    async def enqueue_then_fail(platform: Platform) -> None:
        async with platform.db.session() as session:
            await worker_app.mark_once.enqueue("never", queue=queue, session=session)
            waiting_inside.append(_waiting(jobs_world, queue))
            raise Boom

    async with jobs_world.platform() as platform:
        with pytest.raises(Boom):
            await enqueue_then_fail(platform)
        assert waiting_inside == [0]  # not sent before the commit either
        assert _outbox(jobs_world) == []
        assert _waiting(jobs_world, queue) == 0
        await worker_app.mark.enqueue("last", queue=queue)
    async with jobs_world.worker("--queues", queue, "--concurrency", "1"):
        await jobs_world.wait_for_row("last")
    assert [m for m, _ in jobs_world.rows()] == ["last"]


async def test_a_committed_transaction_sends_its_tasks_once(jobs_world: JobsWorld) -> None:
    queue = _queue("commit")
    async with jobs_world.platform() as platform:
        async with platform.db.session() as session:
            first = await worker_app.mark_once.enqueue("a", queue=queue, session=session)
            second = await worker_app.mark_once.enqueue("b", queue=queue, session=session)
            assert _waiting(jobs_world, queue) == 0
        # Sent right after the commit, without the relay; their rows go in the background.
        assert _waiting(jobs_world, queue) == 2
        await platform.jobs.outbox.flush()
        assert _outbox(jobs_world) == []
        await worker_app.mark.enqueue("last", queue=queue)
    assert first != second
    async with jobs_world.worker("--queues", queue, "--concurrency", "1"):
        await jobs_world.wait_for_row("last")
    assert sorted(m for m, _ in jobs_world.rows()) == ["a", "b", "last"]


async def test_a_crash_between_commit_and_send_is_sent_by_the_relay_once(
    jobs_world: JobsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committing process dies before sending; a relay sends the row; a second send of
    the same message (the relay's duplicate) is skipped by the task's key."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.jobs.outbox_crash", "crashed", cwd=REPO, env=jobs_world.env
    )
    assert await asyncio.wait_for(proc.wait(), 60) == 17
    ((message_id, task),) = _outbox(jobs_world)
    assert task == worker_app.mark_once.name
    queue = "default"  # mark_once has no queue of its own
    assert _waiting(jobs_world, queue) == 0

    monkeypatch.setenv("TENFOLD_JOBS__OUTBOX_GRACE", "0.01")
    async with jobs_world.platform() as platform:
        relay = platform.jobs.relay
        assert relay is not None
        assert await relay.drain() == 1
        assert _outbox(jobs_world) == []
        async with jobs_world.worker("--concurrency", "1"):
            await jobs_world.wait_for_row("crashed")
            # The relay sends the same row again (as after a crash between send and delete).
            jobs_world.execute(
                "INSERT INTO tenfold_job_outbox (id, task, message, created_at) "
                "VALUES (?, ?, ?, 0)",
                (message_id, task, '{"args": ["crashed"], "kwargs": {}, "headers": {}}'),
            )
            assert await relay.drain() == 1
            await worker_app.mark.enqueue("last")
            await jobs_world.wait_for_row("last")
    assert [m for m, _ in jobs_world.rows()] == ["crashed", "last"]
    log = jobs_world.log_of("--concurrency", "1")
    assert "task_duplicate_skipped" in log


async def test_the_relay_leaves_young_rows_to_their_process(jobs_world: JobsWorld) -> None:
    """Rows younger than OUTBOX_GRACE are the fast path's: the relay does not touch them."""
    async with jobs_world.platform() as platform:
        jobs_world.execute(
            "INSERT INTO tenfold_job_outbox (id, task, message, created_at) VALUES (?, ?, ?, ?)",
            ("young", worker_app.mark.name, '{"args": ["young"]}', platform.jobs.clock()),
        )
        relay = platform.jobs.relay
        assert relay is not None
        assert await relay.drain() == 0
    assert _outbox(jobs_world) == [("young", worker_app.mark.name)]
