"""``Jobs``: a platform's Celery app, its registered tasks, and enqueueing without blocking."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery import Task as CeleryTask

from tenfold._errors import ConfigurationError, DependencyUnavailable
from tenfold.jobs._celery import DEFAULT_PRIORITY, broker_priority
from tenfold.jobs._context import CONTEXT_HEADER, context_headers
from tenfold.jobs._dead import DeadLetter, DeadLetters
from tenfold.jobs._metrics import WorkerStats
from tenfold.jobs._outbox import Outbox, OutboxRelay
from tenfold.jobs._publish import RedisPublisher
from tenfold.jobs._runtime import WorkerRuntime
from tenfold.jobs._sampler import JobsSampler
from tenfold.jobs._schedule import Periodic
from tenfold.jobs._settings import JobsSettings
from tenfold.jobs._task import Task

if TYPE_CHECKING:
    from tenfold._platform import Platform
    from tenfold.db import Database, TenfoldSession
    from tenfold.jobs._embedded import EmbeddedWorker

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
        db: Database | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.app = app
        #: "redis", "rabbitmq" or "memory".
        self.broker = broker
        self.clock = clock
        #: The database of the dead-letter queue, exactly-once keys and the outbox.
        self.db = db
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: The periodic entries ``tenfold beat`` sends (set by the extension).
        self.schedule: list[Periodic] = []
        #: Set by ``tenfold worker`` or the embedded worker: where ``async def`` tasks run.
        self.runtime = WorkerRuntime(None)
        #: Set in a command on the memory broker: messages go to the outbox, for the app.
        self.deferred = False
        #: Sends from the event loop on a Redis broker (set by the extension), else None.
        self.fast: RedisPublisher | None = None
        #: Messages enqueued inside a transaction (``enqueue(..., session=...)``).
        self.outbox = Outbox(self.send, clock=clock)
        #: Sends outbox rows left behind; started with the platform unless the worker's.
        self.relay: OutboxRelay | None = None
        if db is not None and settings.outbox_relay:
            self.relay = OutboxRelay(
                db,
                self.send,
                interval=settings.outbox_interval,
                grace=settings.outbox_grace,
                clock=clock,
                key_retention=settings.key_retention,
            )
        #: Queue depths (and other deployment-wide gauges), sampled by one process; None
        #: when metrics are off (set by the extension).
        self.sampler: JobsSampler | None = None
        #: The task figures a worker's main process records (``tenfold worker --metrics-port``).
        self.worker_stats = WorkerStats()
        #: The in-process worker of the memory broker, or None (set by the extension).
        self.embedded: EmbeddedWorker | None = None

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
        session: TenfoldSession | None = None,
    ) -> str:
        """Send ``declared`` with these arguments (and message ``headers``); the message id.

        Nothing blocks the event loop: on Redis the message is pushed from the loop,
        on other brokers kombu publishes in a thread. The current context (request
        id, principal, ...) travels in the message and is restored around the task
        in the worker.

        With ``session``, the message is written to the outbox in that session's
        transaction and sent only once it commits (see ``tenfold.jobs._outbox``).
        """
        registered = self.app.tasks.get(declared.name)
        if registered is None or self.tasks.get(declared.name) is not declared:
            raise ConfigurationError(
                f"task {declared.name!r} is not registered on this platform: pass it to "
                "JobsExtension(tasks=[...])"
            )
        delay = self._checked_delay(countdown, eta)
        message = self._message(
            declared,
            args,
            kwargs,
            queue=queue or declared.options.queue,
            priority=priority,
            headers=headers or context_headers(),
        )
        # A command on the memory broker sends nothing itself: through the outbox, to the
        # app's worker.
        deferred = session is None and self.deferred and self.db is not None
        if session is None and not deferred:
            message["countdown"] = delay
            (message_id,) = await self.send([(None, declared.name, message)])
            return message_id
        message_id = str(uuid.uuid4())
        # The outbox row may be sent long after: the delay becomes a due time.
        message["eta"] = self.clock() + delay if delay is not None else None
        if session is not None:
            await self.outbox.add(session, message_id, declared.name, message)
        else:
            assert self.db is not None
            async with self.db.session() as own:
                await self.outbox.add(own, message_id, declared.name, message, send=False)
        return message_id

    @staticmethod
    def _message(
        declared: Task[Any, Any],
        args: Sequence[Any],
        kwargs: dict[str, Any] | None,
        *,
        queue: str | None,
        priority: int | None,
        headers: dict[str, Any],
    ) -> dict[str, Any]:
        """What ``send`` and an outbox row carry (tenfold's priority scale, not the broker's)."""
        return {
            "args": list(args),
            "kwargs": dict(kwargs or {}),
            "queue": queue,
            "priority": priority if priority is not None else declared.options.priority,
            "headers": headers,
        }

    async def send(self, items: Sequence[tuple[str | None, str, dict[str, Any]]]) -> list[str]:
        """Send (message id or None, task name, message) items; their message ids.

        On a Redis broker the messages go out from the event loop, several in one
        pipeline (``RedisPublisher``); otherwise through Celery in a thread. A
        broker that cannot be reached is ``DependencyUnavailable``.
        """
        if self.fast is None:
            return await asyncio.to_thread(self._publish_all, items)
        ids: list[str] = []
        pushes: list[tuple[str, str]] = []
        for message_id, name, message in items:
            ids.append(message_id or str(uuid.uuid4()))
            pushes.append(
                self.fast.envelope(
                    ids[-1],
                    name,
                    message.get("args", ()),
                    dict(message.get("kwargs", {})),
                    queue=message.get("queue") or self.settings.default_queue,
                    priority=self._broker_priority(message.get("priority")),
                    countdown=self._countdown_of(message),
                    headers=message.get("headers") or {},
                )
            )
        await self.fast.push(pushes)
        return ids

    def _publish_all(self, items: Sequence[tuple[str | None, str, dict[str, Any]]]) -> list[str]:
        from amqp.exceptions import PreconditionFailed
        from kombu.exceptions import OperationalError

        try:
            return [self.publish(message_id, name, message) for message_id, name, message in items]
        except PreconditionFailed as exc:
            raise ConfigurationError(
                "RabbitMQ refused to declare a queue with the arguments tenfold declares "
                "(x-max-priority): the queue exists with other arguments; see docs/jobs.md, "
                '"On RabbitMQ: x-max-priority"'
            ) from exc
        except OperationalError as exc:
            raise DependencyUnavailable(
                f"the jobs broker is unreachable ({type(exc).__name__})", dependency="broker"
            ) from exc

    def _countdown_of(self, message: dict[str, Any]) -> float | None:
        if message.get("eta") is not None:
            return max(0.0, message["eta"] - self.clock())
        return message.get("countdown")

    def _broker_priority(self, priority: int | None) -> int:
        """tenfold's priority (0-9, 9 most urgent; None: the default) in the broker's scale.

        Always set: a retry re-sends the message's priority as it is.
        """
        return broker_priority(self.broker, DEFAULT_PRIORITY if priority is None else priority)

    def publish(self, message_id: str | None, name: str, message: dict[str, Any]) -> str:
        """Send one message (blocking: call it from a thread); its id.

        ``message`` is what ``enqueue`` prepared: args, kwargs, queue, priority,
        headers, and a ``countdown`` or an absolute ``eta`` (seconds since the epoch).
        """
        options: dict[str, Any] = {"headers": message.get("headers") or {}}
        if message_id is not None:
            options["task_id"] = message_id
        if message.get("queue") is not None:
            options["queue"] = message["queue"]
        countdown = self._countdown_of(message)
        if countdown:
            options["countdown"] = countdown
        options["priority"] = self._broker_priority(message.get("priority"))
        result = self.app.tasks[name].apply_async(
            tuple(message.get("args", ())), dict(message.get("kwargs", {})), **options
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

    @property
    def dead_letters(self) -> DeadLetters:
        """The dead-letter queue (``tenfold_job_dead_letters`` on the main database)."""
        if self.db is None:
            raise ConfigurationError("the jobs extension has no database for its tables")
        return DeadLetters(self.db)

    async def retry_dead(self, letter: DeadLetter) -> str:
        """Send a dead-lettered task again, as a new message at attempt 1, in the context it
        failed in; the new message id.

        One transaction deletes the row and writes the message to the outbox, so
        the task is neither lost nor retried twice. The commit sends it; on the
        memory broker (whose messages live in one process) it is left to the
        relay of the app's own processes instead, so that a retry from
        ``tenfold jobs dlq retry`` runs in the app, not in the command.

        ``ConfigurationError`` when its task is no longer registered, ``ValueError`` when its
        arguments were cut when stored, ``LookupError`` when the row is gone (retried or
        purged meanwhile).
        """
        declared = self.tasks.get(letter.task)
        if declared is None:
            raise ConfigurationError(f"dead letter {letter.id}: no task {letter.task!r} here")
        args, kwargs = letter.arguments()
        message = self._message(
            declared,
            args,
            kwargs,
            queue=letter.queue,
            priority=None,
            headers={CONTEXT_HEADER: dict(letter.context)} if letter.context else {},
        )
        message["eta"] = None
        message_id = str(uuid.uuid4())
        async with self.dead_letters.db.session() as session:
            if not await self.dead_letters.delete(letter.id, session=session):
                raise LookupError(f"dead letter {letter.id} is gone (retried or purged)")
            await self.outbox.add(
                session, message_id, declared.name, message, send=not self.deferred
            )
        return message_id

    async def broker_check(self) -> dict[str, Any]:
        """The readiness check: the broker accepts a connection (kombu's, in a thread)."""
        await asyncio.to_thread(self._connect_broker)
        return {"broker": self.broker}

    def _connect_broker(self) -> None:
        from kombu.exceptions import OperationalError

        with self.app.connection_for_write() as conn:
            try:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            except OperationalError as exc:
                raise DependencyUnavailable(
                    f"the jobs broker is unreachable ({type(exc).__name__})", dependency="broker"
                ) from exc

    async def dead_letter_check(self) -> dict[str, Any]:
        """The readiness check: how many tasks are dead-lettered (degraded when any)."""
        count = await self.dead_letters.count()
        return {"status": "degraded" if count else "ok", "dead_letters": count}

    def queues(self) -> set[str]:
        """Every queue tasks go to (each task's, each periodic entry's, the default queue)
        and those of TENFOLD_JOBS__METRICS_QUEUES."""
        found = {self.settings.default_queue, *self.settings.metrics_queues}
        found.update(t.options.queue for t in self.tasks.values() if t.options.queue)
        found.update(entry.queue for entry in self.schedule if entry.queue)
        return found

    def celery_task(self, name: str) -> CeleryTask:
        """The Celery task registered under ``name``."""
        return self.app.tasks[name]

    async def start(self) -> None:
        if self.db is not None and self.db.is_sqlite:
            # The embedded profile has no migrations step: make the tables here.
            from tenfold.jobs._tables import create_tables

            await create_tables(self.db)
        if self.relay is not None and self.broker != "memory":
            self.relay.start()
        # On the memory broker, the relay and the embedded worker start once the whole
        # platform has (start_in_process, an on_started hook).
        if self.broker == "memory" and self.tasks and self.embedded is None:
            logger.warning(
                "jobs use the in-process memory broker and TENFOLD_JOBS__EMBEDDED_WORKER is "
                "off: nothing runs them; set TENFOLD_REDIS__URL or TENFOLD_JOBS__BROKER"
            )
        if self.sampler is not None:
            await self.sampler.start()

    async def start_in_process(self, platform: Platform) -> None:
        """Memory broker, once the platform started: the embedded worker and the relay,
        unless this is a short-lived command.

        A command's messages would die with it: there, ``enqueue`` writes them to the
        outbox instead, for the app's relay to send to the app's worker.
        """
        if platform.command:
            self.deferred = True
            return
        if self.embedded is not None:
            await self.embedded.start(platform)
        if self.relay is not None:
            self.relay.start()

    async def stop(self) -> None:
        if self.embedded is not None:
            await self.embedded.stop()
        if self.relay is not None:
            await self.relay.stop()
        await self.outbox.flush()
        if self.sampler is not None:
            await self.sampler.stop()
        if self.fast is not None:
            await self.fast.aclose()
        # Closing the producer pool's sockets blocks; it is a thread's job too.
        await asyncio.to_thread(self.app.close)
