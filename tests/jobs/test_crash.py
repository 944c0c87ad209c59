"""kill -9 mid-task: the message is delivered again and its effect happens exactly once.

Each test enqueues ``crash_mark`` tasks (tests/jobs/worker_app.py) to a worker
on PostgreSQL. A task first commits an ``attempt:<pid>`` row on its own, then
inserts its ``effect`` row in its exactly-once transaction and holds that
open for a moment. Every few tasks two hold longer: the test waits for their
attempt rows and kills the processes running them, so it is certain that a
delivery died with its effect uncommitted. The checks are counts: one
effect per marker, and a second attempt for each marker whose delivery was
killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tenfold.jobs._celery import redis_lists
from tenfold.testing import RabbitMQServer
from tests.jobs import worker_app
from tests.jobs.conftest import JobsWorld, redis_client

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

COUNT = 200
#: Seconds each task keeps its transaction open before it commits.
HOLD = 0.02
#: Two tasks in every SLOW_EVERY hold SLOW_HOLD seconds: the ones a test kills mid-task.
#: In pairs, so that both pool processes of a worker can be caught holding one.
SLOW_EVERY = 25
SLOW_HOLD = 1.0
#: Workers the whole-worker test kills, each while it holds one slow pair.
KILLED_WORKERS = 3
#: Redis delivers an unacknowledged message again after this many seconds. Small, so that a
#: whole-worker crash is recovered within the test; the limits it bounds are set below it.
VISIBILITY_TIMEOUT = 3
SMALL_REDIS_LIMITS = {
    "TENFOLD_JOBS__VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    "TENFOLD_JOBS__MAX_COUNTDOWN": "1",
    "TENFOLD_JOBS__SOFT_TIME_LIMIT": "1",
    "TENFOLD_JOBS__TIME_LIMIT": "2",
    "TENFOLD_JOBS__KEY_RETENTION": "60",
}
#: Hang guard of each wait below; no assertion depends on how long anything took.
GUARD = 60.0
POLL = 0.05


def _marker(i: int) -> str:
    return f"m-{i:03d}"


def _slow_pairs() -> list[tuple[str, str]]:
    first = [i for i in range(COUNT) if i % SLOW_EVERY == SLOW_EVERY // 2]
    return [(_marker(i), _marker(i + 1)) for i in first]


@pytest.fixture
def crash_world(pg_jobs_world: JobsWorld) -> JobsWorld:
    pg_jobs_world.app = "tests.jobs.worker_app:make_crash_app"
    pg_jobs_world.tasks = worker_app.crash_tasks
    pg_jobs_world.env.update(SMALL_REDIS_LIMITS)
    return pg_jobs_world


async def _enqueue_all(
    world: JobsWorld, queue: str, *, slow_pairs: int | None = None
) -> dict[str, str]:
    """Send the COUNT tasks, the first ``slow_pairs`` slow pairs (default: all) holding
    SLOW_HOLD; marker -> message id."""
    slow = {marker for pair in _slow_pairs()[:slow_pairs] for marker in pair}
    sent = {}
    async with world.platform():
        for i in range(COUNT):
            hold = SLOW_HOLD if _marker(i) in slow else HOLD
            sent[_marker(i)] = await worker_app.crash_mark.enqueue(_marker(i), hold, queue=queue)
    return sent


class Marks:
    """What the ``marks`` table says: the effect rows, and who attempted which marker."""

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        self.effects = [marker for marker, kind in rows if kind == "effect"]
        #: (marker, pid) per attempt, oldest first.
        self.attempts = [
            (marker, int(kind.partition(":")[2])) for marker, kind in rows if kind != "effect"
        ]

    def running(self, marker: str) -> int | None:
        """The pid of the latest attempt of ``marker`` while its effect is not committed."""
        if marker in self.effects:
            return None
        pids = [pid for m, pid in self.attempts if m == marker]
        return pids[-1] if pids else None

    def attempts_of(self, marker: str) -> int:
        return sum(1 for m, _ in self.attempts if m == marker)


async def _marks(world: JobsWorld) -> Marks:
    rows = await world.fetch("SELECT marker, sent_to FROM marks ORDER BY id")
    return Marks([(str(m), str(k)) for m, k in rows])


async def _until(
    world: JobsWorld, done: Callable[[Marks], bool], what: str, *, guard: float = GUARD
) -> Marks:
    """Poll ``marks`` until ``done`` holds; fail after ``guard`` seconds (a hang guard)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + guard
    while loop.time() < deadline:
        marks = await _marks(world)
        if done(marks):
            return marks
        await asyncio.sleep(POLL)
    marks = await _marks(world)
    raise AssertionError(f"{what}: not after {guard} s ({len(marks.effects)} effects)")


def _pool_children(pid: int) -> set[int]:
    """The child processes of ``pid`` (the prefork pool of a worker), read from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:  # the thread ended while we listed them
            continue
    return found


def _check_exactly_once(marks: Marks, killed: list[str]) -> None:
    """One effect per marker, and the killed deliveries were really run again."""
    assert len(marks.effects) == COUNT
    assert sorted(marks.effects) == [_marker(i) for i in range(COUNT)]
    assert not [m for m, n in Counter(marks.effects).items() if n > 1]
    # Not vacuous: each delivery the test killed had started (its attempt row committed)
    # and a later delivery of the same message ran the task again.
    assert killed
    assert [marks.attempts_of(m) >= 2 for m in killed] == [True] * len(killed)


async def _check_bookkeeping(world: JobsWorld) -> None:
    keys = await world.fetch("SELECT count(*) FROM tenfold_job_keys")
    assert keys == [(COUNT,)]
    assert await world.fetch("SELECT count(*) FROM tenfold_job_dead_letters") == [(0,)]


def _queue(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def test_killed_pool_children_lose_no_task_and_repeat_no_effect(
    crash_world: JobsWorld,
) -> None:
    """kill -9 of pool processes mid-task, again and again: 200 tasks, 200 effects."""
    queue = _queue("child")
    await _enqueue_all(crash_world, queue)
    slow = [first for first, _ in _slow_pairs()]
    killed: list[str] = []
    async with crash_world.command(
        "worker", "--queues", queue, "--concurrency", "2", log="worker"
    ) as proc:
        for marker in slow:
            # Order across two pool processes is loose: kill each slow task when (if) it is
            # seen running; one that finished unseen is simply not killed.
            marks = await _until(
                crash_world,
                lambda m, marker=marker: m.running(marker) is not None or marker in m.effects,
                f"{marker} started",
            )
            pid = marks.running(marker)
            if pid is not None and pid in _pool_children(proc.pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(marker)
        marks = await _until(crash_world, lambda m: len(m.effects) >= COUNT, "all effects")
        assert proc.returncode is None  # the worker itself lived on
    _check_exactly_once(marks, killed)
    await _check_bookkeeping(crash_world)
    assert "WorkerLostError" in crash_world.log("worker")


@pytest.fixture(params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker(request: pytest.FixtureRequest, crash_world: JobsWorld) -> str:
    """The broker of the test; on RabbitMQ the Redis limits are set but unused."""
    if request.param == "rabbitmq":
        server: RabbitMQServer = request.getfixturevalue("rabbitmq_server")
        crash_world.use_rabbitmq(server)
    return str(request.param)


async def test_a_killed_worker_loses_no_task_and_repeats_no_effect(
    crash_world: JobsWorld, broker: str
) -> None:
    """kill -9 of the whole worker, three times, each time replaced by a new worker: once
    after its tasks committed their effects but before their messages were acknowledged
    (those deliveries are skipped), and twice mid-task (those run again).

    RabbitMQ requeues the unacknowledged messages when the connection drops;
    Redis delivers them again once they are ``VISIBILITY_TIMEOUT`` old, when a
    later worker sweeps the unacknowledged set. The worker is killed while both
    pool processes hold a task: it has all the messages it may take, so it is
    not fetching one. (On Redis a message being fetched at the moment of the
    kill is lost: docs/jobs.md, "When a worker dies".)
    """
    queue = _queue(f"whole-{broker}")
    # Only the pairs it catches are slow: the others would only keep the last worker busy.
    sent = await _enqueue_all(crash_world, queue, slow_pairs=KILLED_WORKERS)
    killed: list[str] = []
    unacknowledged: list[str] = []
    for n, pair in enumerate(_slow_pairs()[:KILLED_WORKERS]):
        async with crash_world.command(
            "worker", "--queues", queue, "--concurrency", "2", log=f"worker-{n}", new_session=True
        ) as proc:
            marks = await _until(
                crash_world,
                lambda m, pair=pair: all(m.running(x) is not None or x in m.effects for x in pair),
                f"{pair} started",
            )
            if any(marks.running(x) is None for x in pair):
                continue  # one finished unseen: this worker stops and the next one starts
            if n == 1:
                # The main process acknowledges; stopped, it cannot. The pool processes
                # finish their tasks and commit the effects, then the whole worker dies.
                os.kill(proc.pid, signal.SIGSTOP)
                await _until(
                    crash_world, lambda m, pair=pair: set(pair) <= set(m.effects), str(pair)
                )
                unacknowledged.extend(pair)
            else:
                killed.extend(pair)
            os.killpg(proc.pid, signal.SIGKILL)  # the main process and its pool
            await proc.wait()
    assert unacknowledged, "a task of the after-commit round finished before it was seen"
    async with crash_world.command(
        "worker", "--queues", queue, "--concurrency", "2", log="worker-last"
    ):
        try:
            marks = await _until(crash_world, lambda m: len(m.effects) >= COUNT, "all effects")
        except AssertionError as exc:
            missing = {m: sent[m] for m in sent if m not in (await _marks(crash_world)).effects}
            state = _broker_state(crash_world, queue)
            raise AssertionError(f"{exc}; missing {missing}; the broker holds {state}") from None
        await _until(
            crash_world,
            lambda _: all(_skipped(crash_world, sent[m]) for m in unacknowledged),
            f"the redeliveries of {unacknowledged} skipped",
        )
    _check_exactly_once(marks, killed)
    # The deliveries whose effects had committed came back and were skipped, not run again.
    assert [marks.attempts_of(m) for m in unacknowledged] == [1, 1]
    await _check_bookkeeping(crash_world)


def _broker_state(world: JobsWorld, queue: str) -> dict[str, object]:
    """What a Redis broker holds of ``queue``: waiting and unacknowledged messages, and the
    lock of the sweep that restores them (for a failure's message)."""
    if world.env.get("TENFOLD_JOBS__BROKER") == "rabbitmq":
        return {}
    client = redis_client(world.redis)
    unacked = [json.loads(raw)[0]["headers"]["id"] for raw in client.hvals("unacked")]
    return {
        "waiting": sum(client.llen(name) for name in redis_lists(queue)),
        "unacked": unacked,
        "unacked_index": client.zrange("unacked_index", 0, -1, withscores=True),
        "sweep_lock_ttl": client.ttl("unacked_mutex"),
    }


def _skipped(world: JobsWorld, message_id: str) -> bool:
    """Whether a worker log says it skipped a delivery of ``message_id``."""
    key = f"{worker_app.crash_mark.name}:{message_id}"
    for log in world.tmp_path.glob("worker-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "task_duplicate_skipped" in line and json.loads(line).get("key") == key:
                return True
    return False


def _task_events(log: str, message_id: str) -> list[str]:
    """Celery's lines about message ``message_id`` in a worker log, in order: "received",
    "succeeded", ..."""
    events = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        event = str(json.loads(line).get("event", ""))
        if f"[{message_id}]" in event:
            events.append(event.partition("] ")[2].split(" ")[0])
    return events


async def test_a_redelivery_while_the_first_delivery_runs_waits_and_runs_no_effect(
    crash_world: JobsWorld,
) -> None:
    """A task held past Redis's visibility timeout is delivered again while it runs; the
    second delivery waits on the first's uncommitted key, then skips: one effect."""
    queue = _queue("overlap")
    async with crash_world.platform():
        # Delivered again at VISIBILITY_TIMEOUT + at most one sweep interval (1 s), while it
        # still holds; the second delivery is acknowledged before it is as old as the
        # timeout itself, so there is no third.
        message_id = await worker_app.crash_mark.enqueue(
            "held", 1.75 * VISIBILITY_TIMEOUT, queue=queue
        )

    def finished(events: list[str]) -> bool:
        return events.count("succeeded") >= 2 and events.count("succeeded") == len(events) / 2

    async with crash_world.command("worker", "--queues", queue, "--concurrency", "2", log="worker"):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GUARD
        while loop.time() < deadline:  # a hang guard; the events are checked below
            if finished(_task_events(crash_world.log("worker"), message_id)):
                break
            await asyncio.sleep(POLL)
    log = crash_world.log("worker")
    events = _task_events(log, message_id)
    # Delivered again before the first delivery finished: two ran at the same time.
    assert events.index("succeeded") >= 2, events
    assert events.count("succeeded") == events.count("received"), events
    marks = await _marks(crash_world)
    assert marks.effects == ["held"]
    assert marks.attempts_of("held") == 1  # no later delivery ran the task
    assert log.count("task_duplicate_skipped") == events.count("received") - 1
