"""The ``jobs`` extension: a Celery app from ``TENFOLD_JOBS__*`` and the tasks it runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tenfold._extension import Build, Extension
from tenfold.db import Database
from tenfold.jobs._celery import broker_of, celery_app
from tenfold.jobs._dead import DeadLetterGauge
from tenfold.jobs._jobs import Jobs
from tenfold.jobs._publish import RedisPublisher
from tenfold.jobs._sampler import (
    LEASE_NAME,
    AmqpDepths,
    DepthCounter,
    JobsSampler,
    QueueDepth,
    RedisDepths,
)
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
        broker, url = broker_of(settings, build.settings.redis)
        app = celery_app(build.settings.app.name, settings, build.settings.redis)
        jobs = Jobs(settings, app, broker=broker, db=build.find(Database))
        for declared in flatten(self.declared):
            jobs.register(declared)
        jobs.schedule = schedule_of(self.declared, settings.schedule, jobs.tasks)
        jobs.sampler = _sampler(build, jobs, url)
        if broker == "redis":
            jobs.fast = _publisher(build, jobs, url)
        if broker == "memory":
            # The memory broker's messages live in this process: started once the whole
            # platform has (the app's own components start after the extensions'), so a
            # task may use any of them. Jobs.stop stops them, before the database and cache.
            if settings.embedded_worker and jobs.tasks:
                from tenfold.jobs._embedded import EmbeddedWorker

                jobs.embedded = EmbeddedWorker(jobs)
            build.on_started(jobs.start_in_process)
        build.provide(jobs, name="jobs")
        build.component(jobs)
        if jobs.broker != "memory":
            # Non-critical: requests still answer, and tasks enqueued in a transaction wait
            # in the outbox until the broker is back.
            build.check("jobs_broker", jobs.broker_check, critical=False)
        if jobs.db is not None:
            # Non-critical: a dead-lettered task needs a human, not a restart.
            build.check("jobs_dead_letters", jobs.dead_letter_check, critical=False)

    def commands(self) -> Sequence[click.Command]:
        from tenfold.jobs._beat import beat
        from tenfold.jobs._cli import worker
        from tenfold.jobs._dlq_cli import jobs_group

        return [worker, beat, jobs_group]


def _sampler(build: Build, jobs: Jobs, url: str) -> JobsSampler | None:
    """The queue-depth sampler, registered as a collector (None when metrics are off)."""
    metrics = build.metrics
    if metrics is None:
        return None
    hub = build.redis
    lease = None
    if hub is not None:
        from tenfold.redis import LeaderLease

        # One election per application: apps sharing a Redis each sample their own queues.
        lease = LeaderLease(hub, f"{LEASE_NAME}:{build.settings.app.name}")
    sampler = JobsSampler(interval=jobs.settings.metrics_interval, lease=lease)
    counter = _depth_counter(build, jobs, url)
    if counter is not None:
        sampler.samplers.append(QueueDepth(jobs.queues, counter, metrics.namespace))
    if jobs.db is not None:
        sampler.samplers.append(DeadLetterGauge(jobs.dead_letters, metrics.namespace))
    build.collector(sampler)
    return sampler


def _broker_client(build: Build, url: str, max_connections: int) -> tuple[Any, bool]:
    """(async client of the broker's Redis, whether the caller owns it): the hub's client
    when the hub is that Redis, else one of its own (TENFOLD_JOBS__BROKER_URL)."""
    hub, redis = build.redis, build.settings.redis
    same = redis.url is not None and redis.url.get_secret_value() == url
    if hub is not None and not hub.cluster and same:
        return hub.client, False
    from tenfold.redis import standalone_client

    client = standalone_client(
        url, socket_timeout=5.0, connect_timeout=5.0, max_connections=max_connections
    )
    return client, True


def _publisher(build: Build, jobs: Jobs, url: str) -> RedisPublisher:
    """Sends from the event loop, with the broker's Redis client."""
    client, owns = _broker_client(build, url, max_connections=64)
    return RedisPublisher(jobs.app, client, owns_client=owns)


def _depth_counter(build: Build, jobs: Jobs, url: str) -> DepthCounter | None:
    if jobs.broker == "rabbitmq":
        return AmqpDepths(jobs.app)
    if jobs.broker != "redis":
        return None  # the memory broker's messages live in one process: nothing to sample
    client, owns = _broker_client(build, url, max_connections=2)
    return RedisDepths(client, owns_client=owns)
