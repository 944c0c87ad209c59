"""``tenfold beat``: sends the periodic tasks, from one process at a time.

Every beat process campaigns for the ``LeaderLease`` named ``jobs-beat:<app name>``;
only the holder sends, and it checks ``lease.token`` right before each send,
so a beat that lost its lease (or was paused past it) sends nothing more.
Each message carries the tenure's token, the entry and the due time in
headers (``_fence``): the worker runs each (entry, due time) once, and refuses
a deposed leader's late duplicate, whose token is smaller than its successor's.

This is a small loop of our own that uses Celery only to send, not a Celery
``Scheduler`` subclass: Celery beat's ``tick()`` runs on its own blocking
thread while the lease needs the platform's event loop, and its persistent
schedule file (when each entry last ran) is per process, meaningless when
another process may have sent the last run. Due times come from the clock
(see ``_schedule``), so the loop is a few lines and is tested by calling
``tick()`` with a manual clock.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import click
from kombu.exceptions import KombuError

from tenfold._platform import Platform
from tenfold.cli._target import with_platform
from tenfold.jobs._fence import TOKEN_HEADER, BeatRun
from tenfold.jobs._jobs import Jobs
from tenfold.jobs._schedule import Periodic
from tenfold.observability import get_logger
from tenfold.redis import LeaderLease

__all__ = ["TOKEN_HEADER", "Beat", "beat"]

_log = get_logger("tenfold.jobs")

LEASE_NAME = "jobs-beat"


class Beat:
    """Sends ``jobs.schedule``'s due entries while ``lease`` is held.

    ``clock`` is wall-clock seconds since the epoch (due times are multiples
    of ``every`` on it, or minutes a ``cron`` matches); the lease judges its
    own tenure on its monotonic clock.
    """

    def __init__(
        self,
        jobs: Jobs,
        lease: LeaderLease,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.lease = lease
        self.clock = clock
        self._due: dict[str, float] = {}
        self._elected = asyncio.Event()

    async def tick(self) -> float | None:
        """Send every entry due now if leading; seconds until the next is due (None: not leading).

        A tenure starts afresh: entries are due at their next due time after
        the tick that finds this process leading.
        """
        if self.lease.token is None:
            self._due.clear()
            return None
        now = self.clock()
        wait = float("inf")
        for entry in self.jobs.schedule:
            due = self._due.setdefault(entry.name, entry.next_due(now))
            if due <= now:
                await self._send(entry, due)
                # Missed due times (a slow send, a pause) are skipped, not sent in a burst.
                due = self._due[entry.name] = entry.next_due(now)
            wait = min(wait, due - now)
        return max(0.0, wait)

    async def _send(self, entry: Periodic, due: float) -> None:
        token = self.lease.token
        if token is None:
            return  # the tenure ended during an earlier send of this tick
        try:
            await self.jobs.enqueue(
                self.jobs.tasks[entry.task],
                entry.args,
                dict(entry.kwargs),
                queue=entry.queue,
                headers=BeatRun(entry.name, due, token).headers(),
            )
        except (KombuError, OSError) as exc:
            # The broker is down: this run is lost; the next due time is tried again.
            _log.warning("beat_send_failed", entry=entry.name, error=type(exc).__name__)
            return
        _log.info("beat_sent", entry=entry.name, task=entry.task, token=token)

    async def run(self, stop: asyncio.Event) -> None:
        """Campaign for the lease and send due entries until ``stop`` is set; then release."""
        async with self.lease.leading(on_elected=lambda _token: self._elected.set()):
            while not stop.is_set():
                self._elected.clear()
                wait = await self.tick()
                waiter = self._elected.wait() if wait is None else asyncio.sleep(wait)
                await _first_of(waiter, stop.wait())


async def _first_of(*waits: object) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


@click.command("beat")
@with_platform
async def beat(platform: Platform) -> None:
    """Send the app's periodic tasks; of several beat processes, one sends at a time."""
    from tenfold.cli import fail
    from tenfold.redis import RedisHub

    jobs = platform.get(Jobs)
    if platform.redis is None or jobs.broker == "memory":
        fail(
            "tenfold beat needs TENFOLD_REDIS__URL (for its leader lease) and a broker worker "
            "processes share (TENFOLD_JOBS__BROKER)",
            code=2,
        )
    ttl = jobs.settings.beat_lease_ttl
    # One election per application: apps sharing a Redis each run their own beat.
    name = f"{LEASE_NAME}:{platform.settings.app.name}"
    lease = LeaderLease(platform.get(RedisHub), name, ttl=ttl)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    _log.info("beat_started", entries=[e.name for e in jobs.schedule], lease_ttl=ttl)
    await Beat(jobs, lease).run(stop)
