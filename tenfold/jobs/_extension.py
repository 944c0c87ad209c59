"""The ``jobs`` extension: a Celery app from ``TENFOLD_JOBS__*`` and the tasks it runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tenfold._extension import Build, Extension
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
        jobs = Jobs(settings, app, broker=broker)
        for declared in flatten(self.declared):
            jobs.register(declared)
        jobs.schedule = schedule_of(self.declared, settings.schedule, jobs.tasks)
        if broker == "memory" and settings.embedded_worker and jobs.tasks:
            from tenfold.jobs._embedded import EmbeddedWorker

            jobs.embedded = EmbeddedWorker(jobs)
            # Started once the whole platform has (the app's own components start after
            # the extensions'): a task may use any of them. Jobs.stop stops it, before the
            # database and cache stop.
            build.on_started(jobs.embedded.start)
        build.provide(jobs, name="jobs")
        build.component(jobs)

    def commands(self) -> Sequence[click.Command]:
        from tenfold.jobs._beat import beat
        from tenfold.jobs._cli import worker

        return [worker, beat]
