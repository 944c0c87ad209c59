"""Enqueueing: what is refused before anything reaches the broker, and task declarations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tenfold import (
    Backoff,
    ConfigurationError,
    DependencyUnavailable,
    Platform,
    RedisSettings,
    Settings,
)
from tenfold.jobs import Jobs, JobsExtension, Tasks, task
from tenfold.testing import RedisServer, allocate_port, release_port
from tests.jobs.conftest import waiting

group = Tasks()


@group.task(queue=f"late-{uuid.uuid4().hex[:8]}")
def remind(who: str) -> str:
    return f"remind {who}"


def _platform(redis_server: RedisServer, tmp_path: Path, clock: float | None = None) -> Platform:
    settings = Settings.load(
        db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"},
        redis=RedisSettings(url=redis_server.url),
    )
    platform = Platform.build(
        settings, extensions=[JobsExtension(tasks=[group])], configure_logs=False
    )
    if clock is not None:
        platform.get(Jobs).clock = lambda: clock
    return platform


async def test_a_countdown_beyond_the_maximum_is_refused(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A countdown or eta past TENFOLD_JOBS__MAX_COUNTDOWN is refused and nothing is sent."""
    now = 1_800_000_000.0
    queue = remind.options.queue
    async with _platform(redis_server, tmp_path, clock=now) as platform:
        limit = platform.jobs.settings.max_countdown
        with pytest.raises(ConfigurationError) as raised:
            await remind.enqueue("ada", countdown=limit + 1)
        assert raised.value.setting == "TENFOLD_JOBS__MAX_COUNTDOWN"
        late = datetime.fromtimestamp(now, UTC) + timedelta(seconds=limit + 1)
        with pytest.raises(ConfigurationError):
            await remind.enqueue("ada", eta=late)
        assert waiting(redis_server, queue) == []
        await remind.enqueue("ada", countdown=limit)
        assert len(waiting(redis_server, queue)) == 1


def test_a_declared_task_runs_in_place_when_called() -> None:
    """Calling a declaration runs the function; it is named after its module and function."""
    assert remind("bob") == "remind bob"
    assert remind.name == f"{__name__}.remind"


async def test_a_task_of_no_platform_cannot_be_enqueued() -> None:
    """Enqueueing a task no JobsExtension registered says how to register it."""

    @task
    def orphan() -> None: ...

    with pytest.raises(ConfigurationError, match="JobsExtension"):
        await orphan.enqueue()


def test_a_backoff_longer_than_the_maximum_countdown_fails_the_build(
    redis_server: RedisServer,
) -> None:
    """A retry wait that could exceed TENFOLD_JOBS__MAX_COUNTDOWN is refused when built."""
    slow = task(name="slow", backoff=Backoff(base=1, max=10_000))(lambda: None)
    settings = Settings.load(redis=RedisSettings(url=redis_server.url))
    with pytest.raises(ConfigurationError) as raised:
        Platform.build(settings, extensions=[JobsExtension(tasks=[slow])], configure_logs=False)
    assert raised.value.setting == "TENFOLD_JOBS__MAX_COUNTDOWN"


def _broker_only(tmp_path: Path) -> Platform:
    settings = Settings.load(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"})
    return Platform.build(settings, extensions=[JobsExtension(tasks=[group])], configure_logs=False)


async def test_a_broker_of_its_own_gets_a_client_of_its_own(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TENFOLD_JOBS__BROKER_URL without TENFOLD_REDIS__URL: enqueue pushes through a client
    the jobs extension opens (and closes at stop)."""
    monkeypatch.setenv("TENFOLD_JOBS__BROKER_URL", redis_server.url)
    queue = remind.options.queue
    assert queue is not None
    before = len(waiting(redis_server, queue))
    async with _broker_only(tmp_path) as platform:
        assert platform.redis is None
        await remind.enqueue("ada")
    assert len(waiting(redis_server, queue)) == before + 1


async def test_an_unreachable_broker_is_dependency_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No driver error reaches the caller: a closed loopback port is DependencyUnavailable."""
    port = allocate_port()
    try:
        monkeypatch.setenv("TENFOLD_JOBS__BROKER_URL", f"redis://127.0.0.1:{port}/0")
        async with _broker_only(tmp_path) as platform:
            with pytest.raises(DependencyUnavailable) as caught:
                await remind.enqueue("ada")
            assert platform.get(Jobs).broker == "redis"
    finally:
        release_port(port)
    assert caught.value.dependency == "broker"
