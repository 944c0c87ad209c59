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


def test_an_unknown_log_level_is_refused_with_a_clear_error() -> None:
    """`tenfold worker --loglevel foo` names the choices, status 2, no traceback."""
    from click.testing import CliRunner

    from tenfold.jobs._cli import worker

    result = CliRunner().invoke(worker, ["--loglevel", "foo"])
    assert result.exit_code == 2
    assert "'foo' is not one of" in result.output
    assert "Traceback" not in result.output
