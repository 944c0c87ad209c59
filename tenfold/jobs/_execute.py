"""How a declared task runs inside a Celery worker: sync or async, and when it tries again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import Task as CeleryTask

from tenfold._context import restore
from tenfold._errors import ConfigurationError
from tenfold.jobs._celery import broker_priority
from tenfold.jobs._context import in_context, task_context
from tenfold.jobs._fence import admitted

if TYPE_CHECKING:
    from tenfold.jobs._jobs import Jobs
    from tenfold.jobs._task import Task

__all__ = ["celery_task"]


def celery_task(jobs: Jobs, declared: Task[Any, Any]) -> CeleryTask:
    """Register ``declared`` on ``jobs.app``; the Celery task that runs it."""
    opts = declared.options
    if opts.backoff.max > jobs.settings.max_countdown:
        raise ConfigurationError(
            f"task {opts.name!r}: its backoff waits up to {opts.backoff.max} s, longer than "
            f"TENFOLD_JOBS__MAX_COUNTDOWN ({jobs.settings.max_countdown} s)",
            setting="TENFOLD_JOBS__MAX_COUNTDOWN",
        )

    def run(self: CeleryTask, *args: Any, **kwargs: Any) -> Any:
        if not admitted(jobs, self.request):
            return None  # a deposed beat's duplicate: acknowledged without running
        snap = task_context(self.request)
        try:
            if declared.is_async:
                return jobs.runtime.run(in_context(snap, declared.fn(*args, **kwargs)))
            with restore(snap):
                return declared.fn(*args, **kwargs)
        except Exception as exc:
            attempt = self.request.retries + 1
            if attempt > opts.max_retries or not opts.retries(exc):
                raise
            # Celery's retry re-sends the message with the attempt count, to the same queue,
            # and raises Retry so this delivery is acknowledged.
            raise self.retry(
                exc=exc, countdown=opts.backoff.delay(attempt), max_retries=opts.max_retries
            ) from exc

    run.__name__ = declared.fn.__name__
    run.__doc__ = declared.fn.__doc__
    options: dict[str, Any] = {
        "name": opts.name,
        "bind": True,
        "max_retries": opts.max_retries,
        # Not shared: Celery would otherwise add the task to every app made later in the
        # process (a process-wide registry), and two platforms would share tasks.
        "shared": False,
    }
    if opts.queue is not None:
        # Routed by the app's task_routes (Celery 6 drops the task's own queue attribute).
        jobs.app.conf.task_routes[opts.name] = {"queue": opts.queue}
    if opts.priority is not None:
        # In the broker's scale, for whatever sends it without tenfold's enqueue.
        options["priority"] = broker_priority(jobs.broker, opts.priority)
    for key in ("soft_time_limit", "time_limit", "rate_limit"):
        value = getattr(opts, key)
        if value is not None:
            options[key] = value
    return jobs.app.task(**options)(run)  # type: ignore[no-any-return]
