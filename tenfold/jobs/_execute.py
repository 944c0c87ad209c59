"""How a declared task runs inside a Celery worker: sync or async, and when it tries again."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from celery import Task as CeleryTask
from celery.exceptions import Ignore, Reject, Retry

from tenfold._context import ContextSnapshot, restore
from tenfold._errors import ConfigurationError
from tenfold.jobs._celery import broker_priority
from tenfold.jobs._context import in_context, task_context
from tenfold.jobs._dead import DeadLetters
from tenfold.jobs._fence import admitted
from tenfold.jobs._once import run_once
from tenfold.jobs._runtime import current_platform
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold.jobs._jobs import Jobs
    from tenfold.jobs._task import Task

__all__ = ["celery_task", "stored_key"]

_log = get_logger("tenfold.jobs")
#: Raised by Celery itself to steer a delivery: never a task failure.
_STEERING = (Retry, Ignore, Reject)


def stored_key(task: str, key: str) -> str:
    """The row key of one run of ``task``: ``task:key``, hashed when too long for the column."""
    full = f"{task}:{key}"
    if len(full) <= 255:
        return full
    return f"{task[:160]}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def celery_task(jobs: Jobs, declared: Task[Any, Any]) -> CeleryTask:
    """Register ``declared`` on ``jobs.app``; the Celery task that runs it."""
    opts = declared.options
    if opts.backoff.max > jobs.settings.max_countdown:
        raise ConfigurationError(
            f"task {opts.name!r}: its backoff waits up to {opts.backoff.max} s, longer than "
            f"TENFOLD_JOBS__MAX_COUNTDOWN ({jobs.settings.max_countdown} s)",
            setting="TENFOLD_JOBS__MAX_COUNTDOWN",
        )

    async def call(message_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not opts.exactly_once:
            return await declared.fn(*args, **kwargs)  # type: ignore[misc]
        key = opts.key(*args, **kwargs) if opts.key is not None else message_id
        return await run_once(
            current_platform().db,
            stored_key(opts.name, key),
            opts.name,
            lambda: declared.fn(*args, **kwargs),  # type: ignore[arg-type, return-value]
            now=jobs.clock(),
        )

    def run(self: CeleryTask, *args: Any, **kwargs: Any) -> Any:
        if not admitted(jobs, self.request):
            return None  # a deposed beat's duplicate: acknowledged without running
        snap = task_context(self.request)
        try:
            if declared.is_async:
                return jobs.runtime.run(in_context(snap, call(self.request.id, args, kwargs)))
            with restore(snap):
                return declared.fn(*args, **kwargs)
        except _STEERING:
            raise
        except Exception as exc:
            attempt = self.request.retries + 1
            if attempt <= opts.max_retries and opts.retries(exc):
                # Celery's retry re-sends the message with the attempt count, to the same
                # queue, and raises Retry so this delivery is acknowledged.
                raise self.retry(
                    exc=exc, countdown=opts.backoff.delay(attempt), max_retries=opts.max_retries
                ) from exc
            bury(self, snap, args, kwargs, exc, attempt)
            raise

    def bury(
        self: CeleryTask,
        snap: ContextSnapshot,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: Exception,
        attempt: int,
    ) -> None:
        """Record the failed task in the dead-letter queue, or have it retried when that fails."""
        delivery = self.request.delivery_info or {}
        record = DeadLetters(jobs.runtime.database()).record(
            message_id=str(self.request.id),
            task=opts.name,
            queue=delivery.get("routing_key") or opts.queue or jobs.settings.default_queue,
            args=args,
            kwargs=kwargs,
            exc=exc,
            attempts=attempt,
            context=snap.to_dict(),
            failed_at=jobs.clock(),
            max_args=jobs.settings.dlq_max_args,
        )
        try:
            letter = jobs.runtime.run(record)
        except Exception as store_exc:
            # Losing the failure would lose the task: try it again later instead.
            _log.error(
                "dead_letter_failed", task=opts.name, message_id=self.request.id, exc_info=store_exc
            )
            raise self.retry(
                exc=exc, countdown=opts.backoff.delay(attempt), max_retries=None
            ) from store_exc
        with restore(snap):
            _log.error(
                "task_dead_lettered",
                task=opts.name,
                message_id=self.request.id,
                attempts=attempt,
                dead_letter=letter,
                error=type(exc).__qualname__,
            )

    run.__name__ = declared.fn.__name__
    run.__doc__ = declared.fn.__doc__
    options: dict[str, Any] = {
        "name": opts.name,
        "bind": True,
        "max_retries": opts.max_retries,
        # Not shared: Celery would otherwise add the task to every app made later in the
        # process (a process-wide registry), and two platforms would share tasks.
        "shared": False,
        "Request": jobs.worker_stats.request_class,  # records outcomes (tenfold.jobs._metrics)
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
