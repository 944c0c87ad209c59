"""Priorities: 9 is the most urgent on Redis and on RabbitMQ, with one worker process."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest

from tenfold.jobs._celery import DEFAULT_PRIORITY, broker_priority, redis_lists
from tenfold.testing import RabbitMQServer
from tests.jobs import worker_app
from tests.jobs.conftest import JobsWorld, redis_client

BACKLOG = 500
#: A worker may have reserved a message or two when it takes its first one: the urgent task
#: runs among the first few, not after the backlog.
FIRST_FEW = 3


def _queue(label: str) -> str:
    # The harness's brokers are shared by the session: each test's queues are its own.
    return f"{label}-{uuid.uuid4().hex[:8]}"


def _position(world: JobsWorld, marker: str, *, nth: int = 1) -> int:
    """1-based place of the ``nth`` row with ``marker`` in the order the tasks ran."""
    markers = [m for m, _ in world.rows()]
    places = [i for i, m in enumerate(markers, start=1) if m == marker]
    assert len(places) >= nth, f"{marker!r} ran {len(places)} times"
    return places[nth - 1]


async def _run_until(world: JobsWorld, queue: str, marker: str, *, count: int = 1) -> None:
    """One worker, one prefork process, on ``queue`` until ``count`` rows ``marker`` exist."""
    async with world.worker("--queues", queue, "--concurrency", "1"):
        await world.wait_for_row(marker, count=count)


async def test_an_urgent_task_overtakes_a_backlog_of_low_priority_ones(
    broker_world: JobsWorld,
) -> None:
    """Priority 9 sent after 500 tasks of priority 0 runs among the first few of them."""
    queue = _queue("prio")
    async with broker_world.platform():
        for _ in range(BACKLOG):
            await worker_app.mark.enqueue("low", queue=queue, priority=0)
        await worker_app.mark.enqueue("urgent", queue=queue, priority=9)
    await _run_until(broker_world, queue, "urgent")
    assert _position(broker_world, "urgent") <= FIRST_FEW


async def test_a_task_given_no_priority_waits_behind_an_urgent_one(
    broker_world: JobsWorld,
) -> None:
    """Tasks sent with no priority get the neutral default, below an urgent task sent after."""
    queue = _queue("prio-default")
    async with broker_world.platform():
        for _ in range(BACKLOG):
            await worker_app.mark.enqueue("plain", queue=queue)
        await worker_app.mark.enqueue("urgent", queue=queue, priority=9)
    await _run_until(broker_world, queue, "urgent")
    assert _position(broker_world, "urgent") <= FIRST_FEW


async def test_a_retry_keeps_the_priority_of_its_message(broker_world: JobsWorld) -> None:
    """An urgent task that fails once is retried ahead of a backlog of default-priority ones."""
    queue = _queue("prio-retry")
    async with broker_world.platform():
        for _ in range(BACKLOG):
            await worker_app.mark.enqueue("plain", queue=queue)
        await worker_app.flaky.enqueue("urgent", 1, queue=queue, priority=9)
    await _run_until(broker_world, queue, "urgent", count=2)
    assert _position(broker_world, "urgent") <= FIRST_FEW
    # The retry is taken ahead of the backlog, then waits out its backoff (0.05 s) in the
    # worker while the process runs what is next: a dozen or so, not the backlog.
    assert _position(broker_world, "urgent", nth=2) < BACKLOG // 2


async def test_redis_files_each_priority_in_its_bucket(jobs_world: JobsWorld) -> None:
    """On Redis, 7-9 go to the queue's first list, 4-6 (and no priority) to the second, 1-3 to
    the third and 0 to the last, the order the worker pops them in."""
    queue = _queue("prio-lists")
    redis = redis_client(jobs_world.redis)
    async with jobs_world.platform():
        for priority in range(10):
            await worker_app.mark.enqueue(str(priority), queue=queue, priority=priority)
        await worker_app.mark.enqueue("none", queue=queue)
    lists = redis_lists(queue)
    buckets = [sorted(_marker(raw) for raw in redis.lrange(name, 0, -1)) for name in lists]
    assert buckets == [["7", "8", "9"], ["4", "5", "6", "none"], ["1", "2", "3"], ["0"]]


def _marker(raw: bytes) -> str:
    """The first argument of a kombu message as Redis holds it (a base64 JSON body)."""
    body = json.loads(base64.b64decode(json.loads(raw)["body"]))
    return str(body[0][0])


def test_the_scale_is_turned_round_on_redis_only() -> None:
    """tenfold's 9 is kombu's 0 on Redis and stays 9 on RabbitMQ; the default is 5."""
    assert [broker_priority("redis", p) for p in (0, 5, 9)] == [9, 4, 0]
    assert [broker_priority("rabbitmq", p) for p in (0, 5, 9)] == [0, 5, 9]
    assert DEFAULT_PRIORITY == 5
    with pytest.raises(ValueError, match=r"0\.\.9"):
        broker_priority("redis", 10)


async def test_rabbitmq_queues_are_declared_with_max_priority(
    rabbitmq_server: RabbitMQServer, jobs_world: JobsWorld
) -> None:
    """The queue a worker declares for --queues and the one enqueue declares both carry
    x-max-priority 9."""
    jobs_world.use_rabbitmq(rabbitmq_server)
    consumed, routed = _queue("prio-worker"), _queue("prio-routed")
    async with jobs_world.worker("--queues", consumed, "--concurrency", "1"):
        declared_by_worker = await _declared(rabbitmq_server, consumed)
        async with jobs_world.platform():
            await worker_app.mark.enqueue("declared", queue=consumed)
            await worker_app.mark.enqueue("routed", queue=routed)
        await jobs_world.wait_for_row("declared")
    declared_by_enqueue = _queue_arguments(rabbitmq_server)[routed]
    assert declared_by_worker == declared_by_enqueue == '[{"x-max-priority",9}]'


async def _declared(server: RabbitMQServer, queue: str) -> str:
    """The arguments of ``queue`` once it exists; fails after about a minute (a hang guard)."""
    for _ in range(60):
        found = await asyncio.to_thread(_queue_arguments, server)
        if queue in found:
            return found[queue]
        await asyncio.sleep(0.5)
    raise AssertionError(f"no queue {queue!r} was declared")


def _queue_arguments(server: RabbitMQServer) -> dict[str, str]:
    out = server.ctl("list_queues", "name", "arguments", "--no-table-headers", "--quiet")
    found = {}
    for line in out.splitlines():
        name, _, arguments = line.partition("\t")
        found[name.strip()] = arguments
    return found


async def test_a_rabbitmq_queue_without_max_priority_is_a_configuration_error(
    rabbitmq_server: RabbitMQServer, jobs_world: JobsWorld
) -> None:
    """A queue an older deployment declared without x-max-priority: enqueue raises tenfold's
    ConfigurationError (naming the docs section), not the driver's PreconditionFailed."""
    import kombu

    from tenfold import ConfigurationError

    jobs_world.use_rabbitmq(rabbitmq_server)
    old = _queue("prio-old")
    with kombu.Connection(rabbitmq_server.url) as conn:
        kombu.Queue(old, kombu.Exchange(old, "direct"), old, durable=True)(conn.channel()).declare()
    async with jobs_world.platform():
        with pytest.raises(ConfigurationError, match="x-max-priority") as caught:
            await worker_app.mark.enqueue("refused", queue=old)
    assert "PRECONDITION" not in str(caught.value)
