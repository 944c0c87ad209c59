"""`tenfold beat`: periodic tasks sent on schedule by exactly one of several beat processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tenfold import ConfigurationError, Platform, RedisSettings, Settings
from tenfold.jobs import Jobs, JobsExtension, Tasks
from tenfold.jobs._beat import LEASE_NAME, TOKEN_HEADER, Beat
from tenfold.jobs._celery import redis_lists
from tenfold.jobs._fence import DUE_HEADER, ENTRY_HEADER
from tenfold.redis import LeaderLease, RedisHub
from tenfold.testing import RedisServer
from tests.jobs import worker_app
from tests.jobs.conftest import JobsWorld, redis_client, waiting

group = Tasks()
QUEUE = f"beat-{uuid.uuid4().hex[:8]}"


@group.task(queue=QUEUE)
def ping(label: str) -> None: ...


group.periodic(2, ping, ["every-2"])

cron_group = Tasks()
CRON_QUEUE = f"beat-cron-{uuid.uuid4().hex[:8]}"


@cron_group.task(queue=CRON_QUEUE)
def pong() -> None: ...


cron_group.periodic(cron="*/5 * * * *", task=pong)


def _platform(redis_server: RedisServer, tmp_path: Path, tasks: Tasks = group) -> Platform:
    settings = Settings.load(
        db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"},
        redis=RedisSettings(url=redis_server.url),
    )
    return Platform.build(settings, extensions=[JobsExtension(tasks=[tasks])], configure_logs=False)


def _sent(redis_server: RedisServer, queue: str = QUEUE) -> list[dict[str, object]]:
    return [json.loads(message)["headers"] for message in waiting(redis_server, queue)]


async def test_a_leading_beat_sends_due_entries_with_its_token(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The leader sends at each multiple of `every`, skips missed ones, tags the lease token,
    and sends nothing once it no longer leads."""
    redis_client(redis_server).delete(*redis_lists(QUEUE))
    now = [1_000_000_000.5]
    async with _platform(redis_server, tmp_path) as platform:
        lease = LeaderLease(platform.get(RedisHub), f"beat-{uuid.uuid4().hex[:8]}", ttl=30)
        beat = Beat(platform.get(Jobs), lease, clock=lambda: now[0])
        assert await beat.tick() is None  # not leading: nothing is due
        token = await lease.acquire()
        assert await beat.tick() == pytest.approx(1.5)
        assert _sent(redis_server) == []
        now[0] = 1_000_000_002.0
        assert await beat.tick() == pytest.approx(2.0)
        now[0] = 1_000_000_009.0  # 004, 006 and 008 were missed: one send, not three
        assert await beat.tick() == pytest.approx(1.0)
        headers = _sent(redis_server)
        assert [h["task"] for h in headers] == [ping.name, ping.name]
        assert {h[TOKEN_HEADER] for h in headers} == {token}
        # The due time each was sent for (004 was due when 009 found it), and the entry.
        assert [h[DUE_HEADER] for h in headers] == [1_000_000_002.0, 1_000_000_004.0]
        assert {h[ENTRY_HEADER] for h in headers} == {ping.name}
        await lease.release()
        now[0] = 1_000_000_010.0
        assert await beat.tick() is None
        assert len(_sent(redis_server)) == 2


async def test_a_leading_beat_sends_a_cron_entry_at_its_minutes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A `*/5 * * * *` entry is due at each fifth minute (UTC) by the injected clock; missed
    ones are skipped, and each message says the due time it was sent for."""
    start = 1_796_551_410.0  # 2026-12-06 10:03:30 UTC
    now = [start]
    async with _platform(redis_server, tmp_path, cron_group) as platform:
        lease = LeaderLease(platform.get(RedisHub), f"beat-{uuid.uuid4().hex[:8]}", ttl=30)
        beat = Beat(platform.get(Jobs), lease, clock=lambda: now[0])
        await lease.acquire()
        assert await beat.tick() == pytest.approx(90)  # until 10:05
        now[0] = start + 90
        assert await beat.tick() == pytest.approx(300)
        now[0] = start + 90 + 16 * 60  # 10:21: 10:10, 10:15 and 10:20 were missed
        assert await beat.tick() == pytest.approx(240)
        await lease.release()
    sent = _sent(redis_server, CRON_QUEUE)
    assert [h[DUE_HEADER] for h in sent] == [start + 90, start + 90 + 300]
    assert {h[ENTRY_HEADER] for h in sent} == {pong.name}


def test_a_periodic_entry_of_an_unknown_task_fails_the_build(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    """A TENFOLD_JOBS__SCHEDULE entry naming a task the app does not register names the variable."""
    monkeypatch.setenv("TENFOLD_JOBS__SCHEDULE", json.dumps({"x": {"task": "nope", "every": 1}}))
    settings = Settings.load(redis=RedisSettings(url=redis_server.url))
    with pytest.raises(ConfigurationError) as raised:
        Platform.build(settings, extensions=[JobsExtension(tasks=[group])], configure_logs=False)
    assert raised.value.setting == "TENFOLD_JOBS__SCHEDULE"


# -- two beat processes, one worker --------------------------------------------------

TTL = 2.0  # seconds; the lease renews every TTL / 3


def _beat(world: JobsWorld, label: str) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    return world.command("beat", log=f"beat-{label}", stop_within=30)


def _ticks(world: JobsWorld) -> int:
    return [marker for marker, _ in world.rows()].count("tick")


@pytest.fixture
def beat_world(jobs_world: JobsWorld) -> JobsWorld:
    queue = f"ticks-{uuid.uuid4().hex[:8]}"
    entry = {"task": worker_app.mark.name, "every": 1, "args": ["tick", queue], "queue": queue}
    jobs_world.env["TENFOLD_JOBS__SCHEDULE"] = json.dumps({"tick": entry})
    jobs_world.env["TENFOLD_JOBS__BEAT_LEASE_TTL"] = str(TTL)
    jobs_world.env["QUEUE"] = queue
    return jobs_world


async def test_two_beats_send_a_one_second_schedule_once_per_second(beat_world: JobsWorld) -> None:
    """With two beat processes, a 1-second entry runs about once per elapsed second, not twice."""
    queue = beat_world.env["QUEUE"]
    worker = beat_world.worker("--queues", queue, "--concurrency", "1", "--pool", "solo")
    async with worker, _beat(beat_world, "a"), _beat(beat_world, "b"):
        await beat_world.wait_for_row("tick")
        start, first = time.monotonic(), _ticks(beat_world)
        # Both beats sending would give about 10 runs in these 5 s, well beyond the 2 allowed.
        await asyncio.sleep(5)
        elapsed = int(time.monotonic() - start)
        runs = _ticks(beat_world) - first
    assert abs(runs - elapsed) <= 2, f"{runs} runs in {elapsed} s"


async def test_killing_the_leader_hands_the_schedule_to_the_other_beat(
    beat_world: JobsWorld,
) -> None:
    """After kill -9 of the leading beat, the other one takes the lease and the runs continue."""
    queue = beat_world.env["QUEUE"]
    redis = redis_client(beat_world.redis)
    worker = beat_world.worker("--queues", queue, "--concurrency", "1", "--pool", "solo")
    async with worker, _beat(beat_world, "a") as a, _beat(beat_world, "b") as b:
        await beat_world.wait_for_row("tick")
        holder = redis.get(f"{{tf:leader:{LEASE_NAME}:tenfold}}").decode()
        leader_pid = int(holder.split(":")[0])
        assert leader_pid in (a.pid, b.pid)
        os.kill(leader_pid, signal.SIGKILL)
        killed, before = time.monotonic(), _ticks(beat_world)
        await beat_world.wait_for_row("tick", count=before + 2)
        resumed = time.monotonic() - killed
        holder = redis.get(f"{{tf:leader:{LEASE_NAME}:tenfold}}").decode()
        assert int(holder.split(":")[0]) == ({a.pid, b.pid} - {leader_pid}).pop()
    # Failover is at most ttl + renew_every; one more second for the next due time, two for
    # the worker to run the task and for a loaded machine.
    assert resumed < TTL + TTL / 3 + 1 + 2, f"runs resumed {resumed:.1f} s after the kill"
