"""Jobs metrics: queue depth sampled by one leading process, task figures from the worker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tenfold import Platform, RedisSettings, Settings
from tenfold.jobs import Jobs, JobsExtension, Tasks
from tenfold.jobs._celery import redis_lists
from tenfold.jobs._sampler import AmqpDepths
from tenfold.testing import RabbitMQServer, RedisServer, allocate_port, release_port
from tests.jobs import worker_app
from tests.jobs.conftest import JobsWorld, redis_client

DEPTH = "tenfold_jobs_queue_depth"

group = Tasks()
WAITING = f"waiting-{uuid.uuid4().hex[:8]}"


@group.task(queue=WAITING)
def parked(n: int) -> None: ...


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            found[sample.name, labels] = sample.value
    return found


def _depths(platform: Platform) -> dict[str, float]:
    assert platform.metrics is not None
    body, _ = platform.metrics.render()
    samples = _samples(body.decode())
    return {dict(labels)["queue"]: v for (name, labels), v in samples.items() if name == DEPTH}


def _platform(redis_server: RedisServer, tmp_path: Path) -> Platform:
    settings = Settings.load(
        db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"},
        redis=RedisSettings(url=redis_server.url),
    )
    return Platform.build(settings, extensions=[JobsExtension(tasks=[group])], configure_logs=False)


async def _until(what: str, probe: object, expected: object) -> None:
    """Return once ``probe()`` equals ``expected``; fail after about 30 s (a hang guard)."""
    for _ in range(300):
        if probe() == expected:  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: {probe()!r} (expected {expected!r})")  # type: ignore[operator]


async def test_one_leader_exports_the_queue_depth_and_a_follower_exports_none(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N messages in a queue nobody consumes (over its priority lists) read as N from the
    leading platform; a second platform exports no depth series until the leader stops."""
    redis = redis_client(redis_server)
    extra = f"extra-{uuid.uuid4().hex[:8]}"
    redis.delete(*redis_lists(WAITING), *redis_lists(extra))
    monkeypatch.setenv("TENFOLD_JOBS__METRICS_INTERVAL", "0.1")
    monkeypatch.setenv("TENFOLD_JOBS__METRICS_QUEUES", extra)
    leader = _platform(redis_server, tmp_path)
    await leader.start()
    try:
        for n, priority in enumerate([None, None, 0, 5, 9]):
            await parked.enqueue(n, priority=priority)
        # Priorities spread the queue over several lists: the depth is their sum.
        assert sum(1 for name in redis_lists(WAITING) if redis.llen(name)) > 1
        expected = {WAITING: 5.0, extra: 0.0, "default": 0.0}
        await _until("leader's depths", lambda: _depths(leader), expected)
        follower = _platform(redis_server, tmp_path)
        async with follower:
            sampler = follower.get(Jobs).sampler
            assert sampler is not None
            assert _depths(follower) == {}  # the first scrape makes it campaign
            await _until("follower campaigning", lambda: sampler._task is not None, True)
            for _ in range(10):  # ten of its intervals, and still no series
                await asyncio.sleep(0.1)
                assert _depths(follower) == {}
            await leader.stop()
            await _until(
                "follower's depths once the leader left", lambda: _depths(follower), expected
            )
    finally:
        await leader.stop()


def _task_samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except httpx.TransportError:
        return {}
    return _samples(response.text)


async def test_the_worker_serves_task_counts_and_durations_from_its_main_process(
    jobs_world: JobsWorld,
) -> None:
    """Three successes, a task retried twice then done, and a failure read as such on the
    worker's metrics port, counted by the main process across two pool processes."""
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    async with jobs_world.platform():
        for n in range(3):
            await worker_app.mark.enqueue(f"ok-{n}", queue=queue)
        await worker_app.flaky.enqueue("flaky", 2, queue=queue)
        await worker_app.broken.enqueue("bug", queue=queue)
    mark, flaky, broken = (t.name for t in (worker_app.mark, worker_app.flaky, worker_app.broken))
    expected = {
        ("tenfold_jobs_tasks_total", (("outcome", "succeeded"), ("task", mark))): 3.0,
        ("tenfold_jobs_tasks_total", (("outcome", "retried"), ("task", flaky))): 2.0,
        ("tenfold_jobs_tasks_total", (("outcome", "succeeded"), ("task", flaky))): 1.0,
        ("tenfold_jobs_tasks_total", (("outcome", "failed"), ("task", broken))): 1.0,
        ("tenfold_jobs_task_retries_total", (("task", flaky),)): 2.0,
        ("tenfold_jobs_task_failures_total", (("task", broken),)): 1.0,
        ("tenfold_jobs_task_duration_seconds_count", (("task", mark),)): 3.0,
        ("tenfold_jobs_task_duration_seconds_count", (("task", flaky),)): 3.0,
        ("tenfold_jobs_task_duration_seconds_count", (("task", broken),)): 1.0,
        ("tenfold_jobs_worker_processes", ()): 2.0,
        ("tenfold_jobs_active_tasks", ()): 0.0,
    }
    port = allocate_port()
    try:
        args = ("--queues", queue, "--concurrency", "2", "--metrics-port", str(port))
        async with jobs_world.worker(*args):
            await jobs_world.wait_for_row("flaky", count=3)

            def seen() -> dict[object, float]:
                samples = _task_samples(port)
                return {key: samples.get(key) for key in expected}  # type: ignore[misc]

            await _until("the worker's task metrics", seen, expected)
            samples = _task_samples(port)
    finally:
        release_port(port)
    tasks_total = {k: v for k, v in samples.items() if k[0] == "tenfold_jobs_tasks_total"}
    assert sum(tasks_total.values()) == 7  # 3 + 3 + 1 attempts, nothing else
    inf = ("tenfold_jobs_task_duration_seconds_bucket", (("le", "+Inf"), ("task", mark)))
    assert samples[inf] == 3.0


async def test_without_a_redis_hub_the_one_process_samples_a_broker_of_its_own(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the broker at TENFOLD_JOBS__BROKER_URL and no TENFOLD_REDIS__URL there is no
    election: the process samples through a client of its own."""
    redis = redis_client(redis_server)
    redis.delete(*redis_lists(WAITING))
    monkeypatch.delenv("TENFOLD_REDIS__URL", raising=False)
    monkeypatch.setenv("TENFOLD_JOBS__BROKER_URL", redis_server.url)
    monkeypatch.setenv("TENFOLD_JOBS__METRICS_INTERVAL", "0.1")
    settings = Settings.load(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"})
    platform = Platform.build(
        settings, extensions=[JobsExtension(tasks=[group])], configure_logs=False
    )
    async with platform:
        sampler = platform.get(Jobs).sampler
        assert sampler is not None
        assert sampler.lease is None
        for n in range(4):
            await parked.enqueue(n)
        await _until("depths", lambda: _depths(platform), {WAITING: 4.0, "default": 0.0})


async def test_a_failing_sampler_drops_its_series_and_the_others_go_on(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An extra sampler appended to the hook list is exported beside the depths; while it
    raises an outage its series are absent and the queue depths are still sampled."""
    from prometheus_client.metrics_core import GaugeMetricFamily

    from tenfold import DependencyUnavailable

    monkeypatch.setenv("TENFOLD_JOBS__METRICS_INTERVAL", "0.1")
    redis_client(redis_server).delete(*redis_lists(WAITING))
    outage = [False]

    async def extra() -> list[GaugeMetricFamily]:
        if outage[0]:
            raise DependencyUnavailable(dependency="database")
        return [GaugeMetricFamily("tenfold_test_extra", "An extra gauge.", value=7)]

    async with _platform(redis_server, tmp_path) as platform:
        sampler = platform.get(Jobs).sampler
        assert sampler is not None
        sampler.samplers.append(extra)

        def seen() -> tuple[float | None, float | None]:
            assert platform.metrics is not None
            samples = _samples(platform.metrics.render()[0].decode())
            depth = samples.get((DEPTH, (("queue", WAITING),)))
            return depth, samples.get(("tenfold_test_extra", ()))

        await _until("both gauges", seen, (0.0, 7.0))
        outage[0] = True
        await parked.enqueue(1)
        await _until("depths without the failed gauge", seen, (1.0, None))


@pytest.mark.rabbitmq
async def test_rabbitmq_depths_come_from_a_passive_declare(
    rabbitmq_server: RabbitMQServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On RabbitMQ a queue's depth is its message count; a queue never declared reads 0."""
    monkeypatch.delenv("TENFOLD_REDIS__URL", raising=False)
    monkeypatch.setenv("TENFOLD_JOBS__BROKER", "rabbitmq")
    monkeypatch.setenv("TENFOLD_JOBS__BROKER_URL", rabbitmq_server.url)
    platform = Platform.build(
        Settings.load(), extensions=[JobsExtension(tasks=[group])], configure_logs=False
    )
    missing = f"never-{uuid.uuid4().hex[:8]}"
    async with platform:
        for n in range(3):
            await parked.enqueue(n)
        depths = AmqpDepths(platform.get(Jobs).app)
        assert await depths([WAITING, missing, WAITING]) == {WAITING: 3, missing: 0}


async def test_a_metrics_port_in_use_stops_the_worker_naming_the_setting(
    jobs_world: JobsWorld,
) -> None:
    """`tenfold worker --metrics-port` on a port already bound exits with status 2 and
    names TENFOLD_JOBS__WORKER_METRICS_PORT, before consuming anything."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        async with jobs_world.worker("--metrics-port", port) as proc:
            code = await asyncio.wait_for(proc.wait(), 60)  # a hang guard
    assert code == 2
    assert "TENFOLD_JOBS__WORKER_METRICS_PORT" in jobs_world.log_of("--metrics-port", port)


def _dead_letters(platform: Platform) -> float | None:
    assert platform.metrics is not None
    body, _ = platform.metrics.render()
    return _samples(body.decode()).get(("tenfold_jobs_dead_letters", ()))


async def test_the_leader_exports_the_dead_letter_count(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENFOLD_JOBS__METRICS_INTERVAL", "0.1")
    async with _platform(redis_server, tmp_path) as platform:
        _dead_letters(platform)  # the first scrape makes it campaign
        await _until("no dead letters", lambda: _dead_letters(platform), 0.0)
        await platform.get(Jobs).dead_letters.record(
            message_id="m",
            task=parked.name,
            queue=WAITING,
            args=(1,),
            kwargs={},
            exc=ValueError("boom"),
            attempts=1,
            context=None,
            failed_at=0.0,
            max_args=1000,
        )
        await _until("one dead letter", lambda: _dead_letters(platform), 1.0)
