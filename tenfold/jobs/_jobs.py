"""``Jobs``: a platform's Celery app, its registered tasks, and enqueueing without blocking."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from celery import Celery
from celery import Task as CeleryTask

from tenfold._errors import ConfigurationError
from tenfold.jobs._celery import DEFAULT_PRIORITY, broker_priority
from tenfold.jobs._context import context_headers
from tenfold.jobs._runtime import WorkerRuntime
from tenfold.jobs._schedule import Periodic
from tenfold.jobs._settings import JobsSettings
from tenfold.jobs._task import Task

__all__ = ["Jobs"]

logger = logging.getLogger("tenfold.jobs")


class Jobs:
    """The platform's background jobs (``platform.jobs``): the Celery app and its tasks.

    ``clock`` (seconds since the epoch) is what an ``eta`` is measured against.
    """

    name = "jobs"

    def __init__(
        self,
        settings: JobsSettings,
        app: Celery,
        *,
        broker: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.app = app
        #: "redis", "rabbitmq" or "memory".
        self.broker = broker
        self.clock = clock
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: The periodic entries ``tenfold beat`` sends (set by the extension).
        self.schedule: list[Periodic] = []
        #: Set by ``tenfold worker``: the loop and platform ``async def`` tasks run on.
        self.runtime = WorkerRuntime(None)

    def __repr__(self) -> str:
        return f"<Jobs broker={self.broker} tasks={sorted(self.tasks)}>"

    def register(self, declared: Task[Any, Any]) -> None:
        """Register a declared task on the Celery app; ``declared.enqueue`` then sends here."""
        from tenfold.jobs._execute import celery_task

        celery_task(self, declared)
        self.tasks[declared.name] = declared
        declared.bind(self)

    async def enqueue(
        self,
        declared: Task[Any, Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """Send ``declared`` with these arguments (and message ``headers``); the message id.

        kombu publishes with blocking sockets, so the publish runs in a thread
        (``asyncio.to_thread``) and the event loop keeps serving meanwhile. The
        current context (request id, principal, ...) travels in the message and
        is restored around the task in the worker.
        """
        registered = self.app.tasks.get(declared.name)
        if registered is None or self.tasks.get(declared.name) is not declared:
            raise ConfigurationError(
                f"task {declared.name!r} is not registered on this platform: pass it to "
                "JobsExtension(tasks=[...])"
            )
        delay = self._checked_delay(countdown, eta)
        options: dict[str, Any] = {"headers": context_headers()}
        if (queue or declared.options.queue) is not None:
            options["queue"] = queue or declared.options.queue
        if delay is not None:
            options["countdown"] = delay
        if priority is None:
            priority = declared.options.priority
        # Always set, in the broker's own scale: a retry re-sends the message's priority.
        options["priority"] = broker_priority(
            self.broker, DEFAULT_PRIORITY if priority is None else priority
        )
        if headers:
            options["headers"] = headers
        result = await asyncio.to_thread(
            registered.apply_async, tuple(args), dict(kwargs or {}), **options
        )
        return str(result.id)

    def _checked_delay(self, countdown: float | None, eta: datetime | None) -> float | None:
        if countdown is not None and eta is not None:
            raise ValueError("give a countdown or an eta, not both")
        delay = countdown if eta is None else eta.timestamp() - self.clock()
        if delay is not None and delay > self.settings.max_countdown:
            raise ConfigurationError(
                f"a countdown of {delay:.0f} s is longer than TENFOLD_JOBS__MAX_COUNTDOWN "
                f"({self.settings.max_countdown} s): on Redis, a message waiting longer than "
                "TENFOLD_JOBS__VISIBILITY_TIMEOUT is delivered twice. Schedule it later "
                "instead, or raise both settings.",
                setting="TENFOLD_JOBS__MAX_COUNTDOWN",
            )
        return delay

    def celery_task(self, name: str) -> CeleryTask:
        """The Celery task registered under ``name``."""
        return self.app.tasks[name]

    async def start(self) -> None:
        if self.broker == "memory" and self.tasks:
            logger.warning(
                "jobs use the in-process memory broker: no worker process can consume them; "
                "set TENFOLD_REDIS__URL or TENFOLD_JOBS__BROKER"
            )

    async def stop(self) -> None:
        # Closing the producer pool's sockets blocks; it is a thread's job too.
        await asyncio.to_thread(self.app.close)
