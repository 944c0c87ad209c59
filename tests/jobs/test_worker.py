"""`tenfold worker` runs the app's tasks from a real Redis broker, in its own platform."""

from __future__ import annotations

import uuid

from tests.jobs import worker_app
from tests.jobs.conftest import JobsWorld, waiting


def _queue(label: str) -> str:
    # The harness's Redis is shared by the session: each test's queues are its own.
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def test_an_enqueued_async_task_runs_once_in_the_worker(jobs_world: JobsWorld) -> None:
    """An async task enqueued here inserts exactly one row through the worker's database."""
    queue = _queue("e2e")
    async with jobs_world.platform() as platform:
        assert platform.jobs.broker == "redis"
        await worker_app.mark.enqueue("e2e", sent_to=queue, queue=queue)
    async with jobs_world.worker("--queues", queue, "--concurrency", "1"):
        await jobs_world.wait_for_row("e2e")
    assert jobs_world.rows() == [("e2e", queue)]


async def test_a_worker_takes_only_its_own_queues(jobs_world: JobsWorld) -> None:
    """A task for queue A stays in A while a B-only worker runs, and an A worker then takes it."""
    queue_a, queue_b = _queue("a"), _queue("b")
    async with jobs_world.platform():
        await worker_app.mark.enqueue("for-a", sent_to=queue_a, queue=queue_a)
        await worker_app.mark.enqueue("for-b", sent_to=queue_b, queue=queue_b)
    async with jobs_world.worker("--queues", queue_b, "--concurrency", "1"):
        # B's own task proves the B worker was consuming while A's message waited.
        await jobs_world.wait_for_row("for-b")
    assert jobs_world.rows() == [("for-b", queue_b)]
    assert len(waiting(jobs_world.redis, queue_a)) == 1
    async with jobs_world.worker("--queues", queue_a, "--concurrency", "1"):
        await jobs_world.wait_for_row("for-a")
    assert jobs_world.rows() == [("for-b", queue_b), ("for-a", queue_a)]
    assert waiting(jobs_world.redis, queue_a) == []


async def test_a_transient_failure_is_retried_on_the_same_queue(jobs_world: JobsWorld) -> None:
    """A task failing with ConnectionError runs again from its queue until it succeeds; a task
    failing with a bug runs once."""
    queue = _queue("retry")
    async with jobs_world.platform():
        await worker_app.broken.enqueue("bug", queue=queue)
        await worker_app.flaky.enqueue("flaky", 2, queue=queue)
        async with jobs_world.worker("--queues", queue, "--concurrency", "1"):
            await jobs_world.wait_for_row("flaky", count=3)
            # Due after any retry of the broken task would be: once it ran, none is pending.
            await worker_app.mark.enqueue("done", queue=queue, countdown=0.2)
            await jobs_world.wait_for_row("done")
    markers = [m for m, _ in jobs_world.rows()]
    assert markers.count("flaky") == 3
    assert markers.count("bug") == 1
