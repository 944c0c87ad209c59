"""Following the log: a long-running loop that keeps every projection caught up.

``ProjectionRunner`` catches each of its projections up, then waits for the
next append in this process (or ``poll_interval`` for other processes'),
and again. A projection whose handler fails is retried after a delay that
doubles up to ``max_retry_delay``; the others carry on.

Where it runs is ``TENFOLD_EVENTS__PROJECTIONS_IN``: ``app`` (every started
platform that serves: the web app, and the embedded profile's only process),
``worker`` (the main process of each ``tenfold worker``, on a thread of its
own), or ``command`` (only ``tenfold projections run``). Several runners of
one projection take turns on its checkpoint; each event is applied once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tenfold._tasks import cancel_and_wait
from tenfold.events._model import START
from tenfold.events._projection import _FIRST_RETRY, ProjectionError, Projections
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold._extension import Build
    from tenfold._platform import Platform
    from tenfold.db import Database
    from tenfold.events._projection import Projection
    from tenfold.events._settings import EventsSettings
    from tenfold.events._store import EventStore

__all__ = ["ProjectionRunner", "WorkerProjections", "install", "runs_here"]

_log = get_logger("tenfold.events")


class ProjectionRunner:
    """Keeps ``names`` (default: every registered projection) caught up until stopped."""

    name = "events_projections"

    def __init__(
        self,
        projections: Projections,
        names: Sequence[str] | None = None,
        *,
        max_retry_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.projections = projections
        self.names = list(names) if names is not None else None
        self.max_retry_delay = max_retry_delay
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._retry: dict[str, tuple[float, float]] = {}

    def __repr__(self) -> str:
        return f"<ProjectionRunner {self.names or 'all'} running={self._task is not None}>"

    async def start(self) -> None:
        """Nothing: ``begin`` starts the loop once the platform has (see ``runs_here``)."""

    def begin(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="tenfold-projections")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def run(self) -> None:
        """Catch up, wait for appends, forever."""
        store = self.projections.store
        names = self.names or self.projections.names
        self.projections.following(names, True)
        retry = 0.0
        try:
            while True:
                # Taken before the pass: an append during it wakes the wait at once.
                woken = store._appended
                await self.run_once()
                if self._behind(names):
                    # This process appended past what the pass could read: the event is
                    # held back by an older transaction still running. Look again soon.
                    retry = min(max(retry * 2, _FIRST_RETRY), store.poll_interval)
                    await store.wait_for_appends(retry, woken)
                else:
                    retry = 0.0
                    await store.wait_for_appends(store.poll_interval, woken)
        finally:
            self.projections.following(names, False)

    def _behind(self, names: Sequence[str]) -> bool:
        """Whether a projection that is not failing stands before this process's appends."""
        projections = self.projections
        target = projections.store.appended_up_to
        return any(
            projections._reached.get(name, START) < target
            for name in names
            if name not in self._retry
        )

    async def run_once(self) -> None:
        """One pass: catch every projection up, except those waiting out a failure."""
        for name in self.names or self.projections.names:
            retry_at, delay = self._retry.get(name, (0.0, 0.0))
            if self.clock() < retry_at:
                continue
            try:
                await self.projections.catch_up(name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A poison event or an outage: the batch rolled back, the next try reads it
                # again. The loop must outlive it, for the other projections; readers
                # waiting here catch up themselves meanwhile (and hear the error).
                self.projections.failing(name, True)
                delay = min(
                    max(delay * 2, self.projections.store.poll_interval), self.max_retry_delay
                )
                self._retry[name] = (self.clock() + delay, delay)
                if not isinstance(exc, ProjectionError):
                    _log.warning("projection_catch_up_failed", projection=name, error=repr(exc))
            else:
                self._retry.pop(name, None)
                self.projections.failing(name, False)


def install(build: Build, store: EventStore, declared: Sequence[Projection]) -> Projections:
    """Provide ``Projections`` on the platform and run its loop where the settings say."""
    settings: EventsSettings = build.section
    projections = build.provide(Projections(store, declared))
    if not declared:
        return projections
    if store.db.is_sqlite:
        # The embedded profile has no migrations step: the read models' tables are made here.
        async def create(platform: Platform) -> None:
            await create_tables(store.db, declared)

        build.on_started(create)
    mode = settings.projections_in
    if mode == "app":
        runner = ProjectionRunner(projections, max_retry_delay=settings.projections_max_retry_delay)
        build.component(runner)

        async def begin(platform: Platform) -> None:
            if runs_here(platform):
                _log.info("projections_following", projections=projections.names, where="app")
                runner.begin()

        build.on_started(begin)
    elif mode == "worker" and build.has("jobs"):
        from tenfold.jobs._jobs import Jobs

        WorkerProjections(build, settings).connect(build.get(Jobs).app)
    return projections


async def create_tables(db: Database, declared: Sequence[Projection]) -> None:
    """Create the tables of ``declared`` projections where they do not exist."""
    async with db.session() as session:
        for projection in declared:
            for table in projection.tables:
                await session.run_sync(lambda s, t=table: t.create(s.connection(), checkfirst=True))


def runs_here(platform: Platform) -> bool:
    """Whether the started ``platform`` serves (``app`` mode): not a short-lived command,
    nor a ``tenfold worker`` process (whose pool processes' loops only turn while a task
    runs)."""
    return not (platform.command or platform.worker)


class WorkerProjections:
    """In ``tenfold worker``'s main process: a thread with its own event loop, database
    pool and runner, from the worker's start to its shutdown (Celery's signals).

    The pool processes' platforms only run while a task runs, so the loop cannot live
    there; this thread never forks, and no pool process uses its connections.
    """

    def __init__(self, build: Build, settings: EventsSettings) -> None:
        self.db_settings = build.settings.db
        self.source = build.get(Projections)
        self.settings = settings
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._stopping = threading.Event()

    def connect(self, jobs_app: Any) -> None:
        from celery import signals

        def ready(sender: Any = None, **_: Any) -> None:
            if getattr(sender, "app", None) is jobs_app:
                self.start()

        def shutdown(sender: Any = None, **_: Any) -> None:
            self.stop()

        signals.worker_ready.connect(ready, weak=False)
        signals.worker_shutdown.connect(shutdown, weak=False)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=asyncio.run, args=(self._run(),), name="tenfold-projections", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        loop, main = self._loop, self._main
        if loop is not None and main is not None:
            loop.call_soon_threadsafe(main.cancel)
        thread.join(timeout=30)

    async def _run(self) -> None:
        from tenfold.db import Database
        from tenfold.events._store import EventStore

        self._loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        if self._stopping.is_set():  # stopped before this thread got going
            return
        source = self.source
        db = Database(self.db_settings)
        await db.start()
        try:
            store = EventStore(
                db,
                upcasters=source.store.upcasters,
                poll_interval=source.store.poll_interval,
                page_size=source.store.page_size,
            )
            projections = Projections(
                store, [source.get(n) for n in source.names], batch_size=source.batch_size
            )
            runner = ProjectionRunner(
                projections, max_retry_delay=self.settings.projections_max_retry_delay
            )
            _log.info("projections_following", projections=projections.names, where="worker")
            with contextlib.suppress(asyncio.CancelledError):
                await runner.run()
        finally:
            await db.stop()
