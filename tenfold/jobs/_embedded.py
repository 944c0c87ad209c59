"""The embedded worker: a Celery worker in a thread of the web process, for the memory broker.

With no broker server (the embedded profile) messages go to the app's
in-process memory broker (``_memory.py``), which only a worker in the same
process can consume. ``EmbeddedWorker`` runs Celery's own ``WorkController`` (solo pool,
so one task at a time) in one background thread. Celery's blocking loop for
transports without an event loop waits two seconds per poll and fires
delayed messages (countdown, eta, retries) from a second, timer thread; the
loop here is that loop with a short poll and Celery's timer fired in the same
thread, so every task runs in the worker thread and stopping is quick.

``async def`` tasks do not get a loop of their own: ``EmbeddedRuntime`` hands
the coroutine to the app's event loop (``run_coroutine_threadsafe``) and the
worker thread waits for it, so the task uses the app's started platform (its
database pool, cache, Redis) like a request does. The event loop never waits
for the worker thread: enqueue publishes from a thread (``asyncio.to_thread``),
and stopping joins the worker thread from one too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from celery import bootsteps
from celery.exceptions import WorkerShutdown
from celery.worker import WorkController
from celery.worker.consumer import Consumer

from tenfold._errors import TenfoldError
from tenfold.jobs._memory import memory_queues
from tenfold.jobs._runtime import WorkerRuntime, _platform

if TYPE_CHECKING:
    from tenfold._platform import Platform
    from tenfold.jobs._jobs import Jobs

__all__ = ["EmbeddedRuntime", "EmbeddedWorker"]

T = TypeVar("T")
logger = logging.getLogger("tenfold.jobs")

#: Longest wait for the broker in one turn of the loop: how late a new message or a
#: stop request is seen when the worker is idle (the memory transport is polled).
POLL_INTERVAL = 0.1
#: How long ``stop`` lets a running task finish before it cancels an ``async def`` one.
STOP_GRACE = 10.0


class EmbeddedRuntime(WorkerRuntime):
    """Runs ``async def`` tasks on the app's own event loop, with its started platform."""

    def __init__(self, platform: Platform, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(platform)
        self.loop = loop
        self._running: concurrent.futures.Future[Any] | None = None

    def __repr__(self) -> str:
        return f"<EmbeddedRuntime running={self._running is not None}>"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the app's loop and wait for it here, in the worker thread."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            # Waiting here would block the very loop the task needs: a deadlock.
            raise TenfoldError("an embedded task cannot be run on the app's event loop")
        future = asyncio.run_coroutine_threadsafe(self._on_platform(coro), self.loop)
        self._running = future
        try:
            return future.result()
        finally:
            self._running = None

    def cancel(self) -> bool:
        """Cancel the ``async def`` task running now, if any; whether there was one."""
        running = self._running
        return running is not None and running.cancel()

    def close(self, **_: Any) -> None:
        """Nothing to close: the loop and the platform belong to the app."""

    async def _on_platform(self, coro: Coroutine[Any, Any, T]) -> T:
        token = _platform.set(self.platform)
        try:
            return await coro
        finally:
            _platform.reset(token)


class _Controller(WorkController):  # type: ignore[misc]
    """Celery's worker, with a flag its loop checks between messages, and a ready event."""

    def __init__(self, **options: Any) -> None:
        self.stopping = threading.Event()
        self.ready = threading.Event()
        super().__init__(**options)

    def start(self) -> None:
        # The solo pool traces each task through Celery's current app, which is per
        # thread: this thread's is the platform's app, and no other thread's changes.
        self.app.set_current()
        super().start()

    def on_consumer_ready(self, consumer: Any) -> None:
        self.ready.set()


def _fire_due(timer: Any, schedule: Any) -> float:
    """Run the timer's due entries (delayed tasks, rate limits); seconds until the next."""
    if not timer._queue:
        return POLL_INTERVAL
    while True:
        wait, entry = next(schedule)
        if entry is None:
            return min(wait or POLL_INTERVAL, POLL_INTERVAL)
        try:
            entry()
        except Exception:
            logger.exception("embedded worker: a timer entry failed")


def _consume_every_queue(consumer: Any, task_consumer: Any, queues: dict[str, Any]) -> int:
    """Consume each queue of the app's memory broker (also one an ``enqueue(queue=...)``
    made); how many there are."""
    names = list(queues)
    for name in names:
        if not task_consumer.consuming_from(name):
            consumer.add_task_queue(name)
    return len(names)


def _loop(
    consumer: Any,
    connection: Any,
    task_consumer: Any,
    blueprint: Any,
    hub: Any,
    qos: Any,
    *_: Any,
) -> None:
    """Celery's ``synloop``, polling briefly, firing the timer in this thread, and
    consuming every queue of the app's broker."""
    stopping: threading.Event = consumer.controller.stopping
    task_consumer.on_message = consumer.create_task_handler()
    task_consumer.consume()
    consumer.on_ready()
    timer = consumer.timer
    schedule = iter(timer)
    queues, known = memory_queues(connection.transport_options), 0
    while blueprint.state == bootsteps.RUN and consumer.connection:
        if stopping.is_set():
            # The worker's start() takes SystemExit as a warm shutdown, in this thread.
            raise WorkerShutdown(0)
        if len(queues) != known:
            known = _consume_every_queue(consumer, task_consumer, queues)
        if qos.prev != qos.value:
            qos.update()
        consumer.perform_pending_operations()
        wait = _fire_due(timer, schedule)
        try:
            connection.drain_events(timeout=wait)
        except TimeoutError:  # socket.timeout: nothing came within ``wait``
            pass


class _Consumer(Consumer):  # type: ignore[misc]
    loop = staticmethod(_loop)


class EmbeddedWorker:
    """A Celery worker consuming the memory broker in a thread of this process."""

    name = "jobs-embedded-worker"

    def __init__(self, jobs: Jobs, *, stop_grace: float = STOP_GRACE) -> None:
        self.jobs = jobs
        self.stop_grace = stop_grace
        self.runtime: EmbeddedRuntime | None = None
        self._controller: _Controller | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        alive = self._thread is not None and self._thread.is_alive()
        return f"<EmbeddedWorker queues={self.queues()} running={alive}>"

    def queues(self) -> list[str]:
        """The queues consumed: the default one and every registered task's."""
        named = {t.options.queue for t in self.jobs.tasks.values() if t.options.queue is not None}
        default = self.jobs.settings.default_queue
        return [default, *sorted(named - {default})]

    @property
    def thread(self) -> threading.Thread | None:
        """The worker thread while it runs."""
        return self._thread

    async def start(self, platform: Platform) -> None:
        """Start consuming in a thread; ``async def`` tasks run on this loop with ``platform``."""
        if self._thread is not None:
            return
        self.runtime = EmbeddedRuntime(platform, asyncio.get_running_loop())
        self.jobs.runtime = self.runtime
        controller = _Controller(
            app=self.jobs.app,
            hostname=f"{platform.settings.app.name}-embedded@{socket.gethostname()}",
            queues=self.queues(),
            pool_cls="solo",
            concurrency=1,
            consumer_cls=_Consumer,
            timer_cls="kombu.asynchronous.timer:Timer",
            without_mingle=True,
            without_gossip=True,
            without_heartbeat=True,
        )
        thread = threading.Thread(target=controller.start, name=self.name, daemon=True)
        self._controller, self._thread = controller, thread
        thread.start()
        # Consuming before start() returns: a message enqueued next is not raced.
        await asyncio.to_thread(_wait_ready, controller.ready, thread)

    async def stop(self) -> None:
        """Let the running task finish (cancelling an async one after ``stop_grace``), stop."""
        controller, thread = self._controller, self._thread
        if controller is None or thread is None:
            return
        controller.stopping.set()
        await asyncio.to_thread(thread.join, self.stop_grace)
        if thread.is_alive() and self.runtime is not None and self.runtime.cancel():
            logger.warning(
                "embedded worker: a task still ran after %s s; cancelled", self.stop_grace
            )
            await asyncio.to_thread(thread.join, self.stop_grace)
        if thread.is_alive():
            # A thread cannot be stopped from outside: a sync task ends when it ends.
            logger.warning("embedded worker: a task still runs; its thread is left behind")
        self._controller = self._thread = None


def _wait_ready(ready: threading.Event, thread: threading.Thread) -> None:
    while not ready.wait(POLL_INTERVAL):
        if not thread.is_alive():
            raise TenfoldError("the embedded worker stopped while starting; see its log")
