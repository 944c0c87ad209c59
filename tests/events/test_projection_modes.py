"""Where projections run: the app, a worker, a command; and `tenfold projections ...`."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tenfold import Platform
from tenfold.cli import cli
from tenfold.events import EventsExtension, EventStore, NewEvent, Projections
from tenfold.testing import RedisServer
from tests.events.leaderboard import Leaderboard, board, expected, match

APP = "tests.events.projections_app:make_app"
REPO = Path(__file__).resolve().parents[2]
TENFOLD = Path(sys.executable).parent / "tenfold"


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The embedded profile: an SQLite file and nothing else configured."""
    for name in [k for k in os.environ if k.startswith("TENFOLD_")]:
        monkeypatch.delenv(name)
    url = f"sqlite+aiosqlite:///{tmp_path}/app.db"
    monkeypatch.setenv("TENFOLD_DB__URL", url)
    return {**os.environ, "TENFOLD_DB__URL": url}


async def _append(platform: Platform, count: int, seed: int) -> tuple[list[NewEvent], object]:
    rng = random.Random(seed)
    matches = [match(rng, n) for n in range(count)]
    appended = await platform.get(EventStore).append(f"s{seed}", matches, 0)
    return matches, appended.position


async def _wait_applied(platform: Platform, position: object, within: float = 10) -> None:
    projections = platform.get(Projections)
    async with asyncio.timeout(within):
        # The runner's commits signal nothing: polling its checkpoint is the observation.
        while (await projections.status("leaderboard")).checkpoint < position:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_the_app_runs_projections_by_default(sqlite_env: dict[str, str]) -> None:
    """With SQLite and no configuration, a started platform keeps its projections caught up."""
    async with Platform.open(extensions=[EventsExtension(projections=[Leaderboard()])]) as p:
        assert p.settings.section("events").projections_in == "app"
        matches, position = await _append(p, 20, seed=1)
        await _wait_applied(p, position)
        async with p.db.session(readonly=True) as session:
            assert await board(session) == expected(matches)


@pytest.mark.parametrize("command", [False, True])
async def test_command_mode_and_commands_do_not_run_projections(
    sqlite_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, command: bool
) -> None:
    """PROJECTIONS_IN=command keeps the app's runner off, and so does a short-lived command."""
    if not command:
        monkeypatch.setenv("TENFOLD_EVENTS__PROJECTIONS_IN", "command")
    platform = Platform.build(extensions=[EventsExtension(projections=[Leaderboard()])])
    platform.command = command
    async with platform:
        _, position = await _append(platform, 5, seed=2)
        await platform.get(EventStore).wait_for_appends(0.05)
        status = await platform.get(Projections).status("leaderboard")
        assert status.behind == 5
        assert status.checkpoint < position


def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--app", APP, "--app-dir", str(REPO), *args], env=env)
    return result.exit_code, result.stdout


async def _seed_app(count: int, seed: int) -> list[NewEvent]:
    platform = Platform.build(extensions=[EventsExtension(projections=[Leaderboard()])])
    platform.command = True
    async with platform:
        matches, _ = await _append(platform, count, seed)
    return matches


async def _board() -> dict[str, tuple[int, int]]:
    platform = Platform.build(extensions=[EventsExtension(projections=[Leaderboard()])])
    platform.command = True
    async with platform, platform.db.session(readonly=True) as session:
        return await board(session)


def test_status_and_rebuild_commands(sqlite_env: dict[str, str]) -> None:
    """`projections status --json` shows how far behind the projection is; `rebuild` builds
    it from the log; an unknown name exits 2."""
    matches = asyncio.run(_seed_app(15, seed=3))
    code, out = _cli(sqlite_env, "projections", "status", "--json")
    assert code == 0, out
    (status,) = json.loads(out)
    assert (status["name"], status["behind"], status["checkpoint"]) == ("leaderboard", 15, "0.0")
    code, out = _cli(sqlite_env, "projections", "rebuild", "leaderboard")
    assert code == 0, out
    assert "rebuilt leaderboard at 0.15" in out
    assert asyncio.run(_board()) == expected(matches)
    code, out = _cli(sqlite_env, "projections", "status")
    assert "behind=0" in out
    code, out = _cli(sqlite_env, "projections", "rebuild", "nope")
    assert code == 2


async def test_run_command_follows_until_sigterm(sqlite_env: dict[str, str]) -> None:
    """`tenfold projections run leaderboard` catches up, follows new events, and exits 0 on
    SIGTERM."""
    matches = await _seed_app(10, seed=4)
    proc = await asyncio.create_subprocess_exec(
        str(TENFOLD),
        "--app",
        APP,
        "--app-dir",
        str(REPO),
        "projections",
        "run",
        "leaderboard",
        env=sqlite_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        more = await _seed_app(5, seed=5)
        platform = Platform.build(extensions=[EventsExtension(projections=[Leaderboard()])])
        platform.command = True
        async with platform:
            log = await platform.get(EventStore).read_all(limit=100)
            await _wait_applied(platform, log[-1].position)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert await _board() == expected(matches + more)


async def test_worker_mode_runs_projections_in_tenfold_worker(
    sqlite_env: dict[str, str], redis_server: RedisServer
) -> None:
    """PROJECTIONS_IN=worker: `tenfold worker` follows the log (the app does not), and stops
    with the worker."""
    env = {**sqlite_env, "TENFOLD_REDIS__URL": redis_server.url}
    env["TENFOLD_EVENTS__PROJECTIONS_IN"] = "worker"
    matches = await _seed_app(10, seed=6)
    proc = await asyncio.create_subprocess_exec(
        str(TENFOLD),
        "--app",
        APP,
        "--app-dir",
        str(REPO),
        "worker",
        "--pool",
        "solo",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        more = await _seed_app(5, seed=7)
        platform = Platform.build(extensions=[EventsExtension(projections=[Leaderboard()])])
        platform.command = True
        async with platform:
            log = await platform.get(EventStore).read_all(limit=100)
            await _wait_applied(platform, log[-1].position, within=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"projections_following" in err
    assert await _board() == expected(matches + more)


def test_a_worker_process_does_not_run_the_app_loop(sqlite_env: dict[str, str]) -> None:
    """In app mode, a serving platform runs the loop; a `tenfold worker` process's platform
    (its pool processes' loops only turn while a task runs) and a command's do not."""
    from tenfold.events._follow import runs_here

    platform = Platform.build(extensions=[EventsExtension(projections=[Leaderboard()])])
    assert runs_here(platform)
    platform.worker = True  # what run_worker sets
    assert not runs_here(platform)
    platform.worker, platform.command = False, True
    assert not runs_here(platform)
