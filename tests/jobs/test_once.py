"""Exactly-once effect: a redelivered message whose key committed does not run again."""

from __future__ import annotations

import uuid

import pytest

from tenfold import ConfigurationError
from tenfold.jobs import task, task_session
from tests.jobs import worker_app
from tests.jobs.conftest import JobsWorld


def _queue(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def _send(
    platform: object, name: str, args: tuple[object, ...], *, queue: str, task_id: str
) -> None:
    # The same message twice, as a redelivery (or the outbox relay) would send it.
    platform.jobs.celery_task(name).apply_async(args, queue=queue, task_id=task_id)  # type: ignore[attr-defined]


async def test_a_message_delivered_twice_has_its_effect_once(jobs_world: JobsWorld) -> None:
    """Two deliveries of one message id: one row; a new message id runs again."""
    queue = _queue("once")
    async with jobs_world.platform() as platform:
        for _ in range(2):
            _send(platform, worker_app.mark_once.name, ("twice",), queue=queue, task_id="m-1")
        _send(platform, worker_app.mark_once.name, ("twice",), queue=queue, task_id="m-2")
        await worker_app.mark.enqueue("last", queue=queue)
    async with jobs_world.worker("--queues", queue, "--concurrency", "1"):
        await jobs_world.wait_for_row("last")
    markers = [m for m, _ in jobs_world.rows()]
    assert markers.count("twice") == 2  # m-1 once, m-2 once
    keys = [k for (k,) in jobs_world.query("SELECT key FROM tenfold_job_keys ORDER BY key")]
    assert keys == [f"{worker_app.mark_once.name}:m-1", f"{worker_app.mark_once.name}:m-2"]
    assert "task_duplicate_skipped" in jobs_world.log_of("--queues", queue, "--concurrency", "1")


async def test_a_business_key_runs_one_effect_per_key(jobs_world: JobsWorld) -> None:
    """``key=`` dedupes different messages of one order."""
    queue = _queue("key")
    async with jobs_world.platform():
        for order in (1, 2, 1, 1, 2):
            await worker_app.charge.enqueue(order, queue=queue)
        await worker_app.mark.enqueue("last", queue=queue)
    async with jobs_world.worker("--queues", queue, "--concurrency", "1"):
        await jobs_world.wait_for_row("last")
    markers = sorted(m for m, _ in jobs_world.rows() if m.startswith("charge"))
    assert markers == ["charge-1", "charge-2"]


def test_an_exactly_once_task_must_be_async() -> None:
    with pytest.raises(ConfigurationError, match="async def"):

        @task(exactly_once=True)
        def sync_effect() -> None: ...


def test_task_session_outside_an_exactly_once_task_says_so() -> None:
    with pytest.raises(ConfigurationError, match="exactly_once"):
        task_session()


def test_a_key_implies_exactly_once() -> None:
    @task(key=lambda n: str(n))
    async def keyed(n: int) -> None: ...

    assert keyed.options.exactly_once


async def test_a_failed_run_leaves_no_key_and_its_writes_roll_back(jobs_world: JobsWorld) -> None:
    """The key commits with the effect or not at all: a failing attempt records neither."""
    queue = _queue("rollback")
    async with jobs_world.platform() as platform:
        _send(platform, worker_app.mark_once.name, ("rb", "x"), queue=queue, task_id="rb-1")
        await worker_app.mark.enqueue("last", queue=queue)
    async with jobs_world.worker("--queues", queue, "--concurrency", "1"):
        await jobs_world.wait_for_row("last")
    # hold="x" makes asyncio.sleep raise TypeError after the insert: nothing committed.
    assert [m for m, _ in jobs_world.rows()] == ["last"]
    assert jobs_world.query("SELECT count(*) FROM tenfold_job_keys") == [(0,)]
    assert jobs_world.query("SELECT attempts FROM tenfold_job_dead_letters") == [(1,)]


def test_exactly_once_tasks_retry_a_lost_database_and_plain_tasks_do_not() -> None:
    from tenfold._errors import DatabaseUnavailable

    lost = DatabaseUnavailable("connection lost during commit")
    assert worker_app.mark_once.options.retries(lost)
    assert not worker_app.mark.options.retries(lost)
    assert worker_app.mark.options.retries(ConnectionError("refused"))
