"""Gauges of the whole deployment (queue depths), sampled by one process, not by every scrape.

A queue's depth is the same whichever process reads it, so one process reads
it: every process that serves the jobs extension's metrics campaigns for the
``LeaderLease`` named ``jobs-metrics:<app name>`` (with a Redis hub), and only
the holder samples, every ``TENFOLD_JOBS__METRICS_INTERVAL`` seconds. The
others export no series for these gauges, so the deployment has one series
per queue, not one per process. Without Redis there is no lease and each
process samples.

A process joins the election when it is first scraped, not when it starts:
``tenfold beat`` and CLI commands start the platform too, and a leader nobody
scrapes would hide the gauges from everyone.

``JobsSampler.samplers`` is a list of ``async`` callables, each returning
metric families; the queue depths are one of them, and another gauge read the
same way (say, a count of rows) is one more entry, appended when the platform
is built: ``jobs.sampler.samplers.append(count_rows)`` (``jobs.sampler`` is
None when metrics are off). A sampler that raises a ``TenfoldError`` (an
outage) exports nothing until it succeeds again; the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from kombu.exceptions import KombuError
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tenfold._errors import DependencyUnavailable, TenfoldError
from tenfold.jobs._celery import PRIORITY_STEPS, redis_lists
from tenfold.observability import get_logger
from tenfold.redis import REDIS_ERRORS
from tenfold.redis._clients import unavailable

if TYPE_CHECKING:
    from celery import Celery

    from tenfold.redis import LeaderLease

__all__ = ["LEASE_NAME", "AmqpDepths", "JobsSampler", "QueueDepth", "RedisDepths", "Sample"]

_log = get_logger("tenfold.jobs")

LEASE_NAME = "jobs-metrics"

#: One sampler: the metric families it read now. ``TenfoldError`` (an outage) drops its
#: series until it succeeds again.
Sample = Callable[[], Awaitable[Sequence[Metric]]]
#: Messages waiting per queue, for the queues given.
DepthCounter = Callable[[list[str]], Awaitable[dict[str, int]]]


class JobsSampler(Collector):
    """Runs ``samplers`` every ``interval`` seconds while this process leads; exports the results.

    ``lease`` None: no election, this process always samples. ``sleep`` is
    injectable for tests.
    """

    def __init__(
        self,
        *,
        interval: float,
        lease: LeaderLease | None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = interval
        self.lease = lease
        #: Called in order on each sample; append to add a gauge sampled the same way.
        self.samplers: list[Sample] = []
        self._sleep = sleep
        self._latest: dict[int, list[Metric]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._elected = asyncio.Event()

    def __repr__(self) -> str:
        state = "idle" if self._task is None else "campaigning"
        return f"<JobsSampler {len(self.samplers)} samplers every {self.interval} s, {state}>"

    @property
    def leading(self) -> bool:
        """Whether this process samples now (it holds the lease, or there is none)."""
        return self.lease is None or self.lease.is_leader

    # -- lifetime -------------------------------------------------------------

    async def start(self) -> None:
        """Be ready to campaign (on the first scrape) on the running loop."""
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        """Stop sampling and release the lease."""
        self._loop = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._latest.clear()
        for sampler in self.samplers:
            close = getattr(sampler, "aclose", None)
            if close is not None:
                await close()

    # -- the scrape -----------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """The last samples if this process leads; nothing otherwise."""
        self._campaign()
        if not self.leading:
            return
        for families in list(self._latest.values()):
            yield from families

    def _campaign(self) -> None:
        loop = self._loop
        if self._task is not None or loop is None or not self.samplers:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._begin()
            return
        # Scrapes are rendered on a thread: the campaign belongs on the platform's loop.
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._begin)

    def _begin(self) -> None:
        if self._task is None and self._loop is not None:
            self._task = asyncio.create_task(self.run(), name="jobs-sampler")

    # -- the loop -------------------------------------------------------------

    async def run(self) -> None:
        """Campaign (if there is a lease) and sample every ``interval`` seconds while leading."""
        if self.lease is None:
            await self._sample_forever()
            return
        async with self.lease.leading(on_elected=self._on_elected, on_lost=self._latest.clear):
            await self._sample_forever()

    def _on_elected(self, _token: int) -> None:
        self._elected.set()

    async def _sample_forever(self) -> None:
        while True:
            self._elected.clear()
            if self.leading:
                await self.sample()
            else:
                self._latest.clear()
            # A new leader samples at once instead of one interval after its election.
            waits = [asyncio.ensure_future(self._sleep(self.interval))]
            waits.append(asyncio.ensure_future(self._elected.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()

    async def sample(self) -> None:
        """Run every sampler once and keep what each returned; a failed one exports nothing."""
        for index, sampler in enumerate(list(self.samplers)):
            name = getattr(sampler, "name", None) or getattr(sampler, "__qualname__", "sampler")
            try:
                self._latest[index] = list(await sampler())
            except TenfoldError as exc:
                self._latest.pop(index, None)
                _log.warning("jobs_sample_failed", sampler=name, error=str(exc))
            except Exception:
                # A bug in one sampler must not stop the others or the campaign (this loop is
                # the only one sampling for the deployment): it is logged with its traceback
                # and its series are dropped, so the gap is visible.
                self._latest.pop(index, None)
                _log.exception("jobs_sampler_broken", sampler=name)


class QueueDepth:
    """``<ns>_jobs_queue_depth{queue}``: messages waiting in each of ``queues()``."""

    name = "queue_depth"

    def __init__(
        self, queues: Callable[[], Iterable[str]], count: DepthCounter, namespace: str = "tenfold"
    ) -> None:
        self.queues = queues
        self.count = count
        self._name = f"{namespace}_jobs_queue_depth" if namespace else "jobs_queue_depth"

    async def __call__(self) -> list[Metric]:
        names = sorted(set(self.queues()))
        depths = await self.count(names)
        family = GaugeMetricFamily(
            self._name, "Messages waiting in the queue (sampled by one process).", labels=["queue"]
        )
        for queue in names:
            family.add_metric([queue], depths.get(queue, 0))
        return [family]

    async def aclose(self) -> None:
        close = getattr(self.count, "aclose", None)
        if close is not None:
            await close()


class RedisDepths:
    """A Redis broker's depths: LLEN of each queue's priority lists, all in one round trip."""

    def __init__(self, client: aioredis.Redis, *, owns_client: bool) -> None:
        self.client = client
        self.owns_client = owns_client

    async def __call__(self, queues: list[str]) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            for name in redis_lists(queue):
                pipe.llen(name)
        try:
            replies = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise unavailable("LLEN", exc) from exc
        steps = len(PRIORITY_STEPS)
        return {q: sum(replies[i * steps : (i + 1) * steps]) for i, q in enumerate(queues)}

    async def aclose(self) -> None:
        if self.owns_client:
            with contextlib.suppress(*REDIS_ERRORS):
                await self.client.aclose()


class AmqpDepths:
    """A RabbitMQ broker's depths: a passive ``queue.declare`` per queue (a missing one is 0).

    kombu's AMQP client blocks, so each sample runs in a thread on its own connection.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app

    async def __call__(self, queues: list[str]) -> dict[str, int]:
        return await asyncio.to_thread(self._count, queues)

    def _count(self, queues: list[str]) -> dict[str, int]:
        depths: dict[str, int] = {}
        connection = self.app.connection_for_read()
        errors = (KombuError, OSError, *connection.connection_errors, *connection.channel_errors)
        try:
            with connection:
                channel = connection.channel()
                for queue in queues:
                    try:
                        depths[queue] = int(channel.queue_declare(queue, passive=True)[1])
                    except connection.channel_errors as exc:
                        if getattr(exc, "reply_code", None) != 404:
                            raise
                        # The broker closed the channel on NOT_FOUND: a queue never declared.
                        depths[queue] = 0
                        channel = connection.channel()
        except errors as exc:
            raise DependencyUnavailable(
                f"broker queue.declare failed ({type(exc).__name__})", dependency="broker"
            ) from exc
        return depths

    async def aclose(self) -> None:
        """Nothing stays open between samples."""
