"""`tenfold worker --loglevel` sets the level of Celery's own log lines."""

from __future__ import annotations

import uuid

from tests.jobs import worker_app
from tests.jobs.conftest import JobsWorld


async def test_loglevel_warning_silences_the_per_task_lines(jobs_world: JobsWorld) -> None:
    """With --loglevel WARNING the worker runs the task without logging it received or
    succeeded (two lines per task at INFO)."""
    queue = f"quiet-{uuid.uuid4().hex[:8]}"
    async with jobs_world.platform():
        await worker_app.mark.enqueue("quiet", queue=queue)
    args = ("--queues", queue, "--concurrency", "1", "--loglevel", "WARNING")
    async with jobs_world.worker(*args):
        await jobs_world.wait_for_row("quiet")
    log = jobs_world.log_of(*args)
    assert "received" not in log
    assert "succeeded" not in log
