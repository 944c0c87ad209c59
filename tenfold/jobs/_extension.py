"""The ``jobs`` extension: a Celery app from ``TENFOLD_JOBS__*`` and the tasks it runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tenfold._extension import Build, Extension
from tenfold.db import Database
from tenfold.jobs._celery import broker_of, celery_app
from tenfold.jobs._jobs import Jobs
from tenfold.jobs._schedule import schedule_of
from tenfold.jobs._settings import JobsSettings
from tenfold.jobs._task import Task, Tasks, flatten

if TYPE_CHECKING:
    import click

__all__ = ["JobsExtension"]


class JobsExtension(Extension):
    """``platform.get(Jobs)`` (also ``platform.jobs``): a Celery app with ``tasks`` registered.

    Opt-in: ``create_app(extensions=[JobsExtension(tasks=[...])])``. The same
    extension in the web app and in ``tenfold worker`` registers the same tasks.
    """

    name = "jobs"
    settings_model = JobsSettings
    after = ("db", "cache")

    def __init__(self, tasks: Iterable[Task[Any, Any] | Tasks] = ()) -> None:
        self.declared = list(tasks)

    def build(self, build: Build) -> None:
        settings: JobsSettings = build.section
        broker, _ = broker_of(settings, build.settings.redis)
        app = celery_app(build.settings.app.name, settings, build.settings.redis)
        jobs = Jobs(settings, app, broker=broker, db=build.find(Database))
        for declared in flatten(self.declared):
            jobs.register(declared)
        jobs.schedule = schedule_of(self.declared, settings.schedule, jobs.tasks)
        build.provide(jobs, name="jobs")
        build.component(jobs)
        if jobs.db is not None:
            # Non-critical: a dead-lettered task needs a human, not a restart.
            build.check("jobs_dead_letters", jobs.dead_letter_check, critical=False)

    def commands(self) -> Sequence[click.Command]:
        from tenfold.jobs._beat import beat
        from tenfold.jobs._cli import worker
        from tenfold.jobs._dlq_cli import jobs_group

        return [worker, beat, jobs_group]
