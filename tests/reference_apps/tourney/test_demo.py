"""The demo seeds a full tournament once, and its simulator plays matches to the end."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from apps.tourney.demo import DEMO_GAMES, DEMO_TEAMS, Simulator, seed
from apps.tourney.main import make_app
from apps.tourney.schema import matches
from apps.tourney.service import Tourney
from tenfold.auth import Users
from tenfold.db import Database


@dataclass
class Demo:
    tourney: Tourney
    users: Users
    db: Database

    async def simulator(self, seed: int) -> Simulator:
        """A simulator that has seeded the demo; its loop is stopped: the test takes the
        steps."""
        simulator = Simulator(self.tourney, self.users, self.db, live=2, rng=random.Random(seed))
        await simulator.begin()
        await simulator.stop()
        return simulator


@pytest.fixture
async def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Demo]:
    """Tourney, embedded, on an empty database of the test's own."""
    monkeypatch.setenv("TENFOLD_DB__URL", f"sqlite+aiosqlite:///{tmp_path}/demo.db")
    monkeypatch.setenv("TENFOLD_AUTH__PASSWORD_TIME_COST", "1")
    monkeypatch.setenv("TENFOLD_AUTH__PASSWORD_MEMORY_COST", "8")
    monkeypatch.setenv("TENFOLD_AUTH__PASSWORD_PARALLELISM", "1")
    app = make_app()
    async with app.router.lifespan_context(app):
        platform = app.state.tenfold
        yield Demo(platform.get(Tourney), platform.get(Users), platform.get(Database))


async def test_seed_then_play(demo: Demo) -> None:
    tourney, users, db = demo.tourney, demo.users, demo.db
    simulator = await demo.simulator(3)
    assert await seed(tourney, users, db) is None  # seeded once
    board = await tourney.load_leaderboard(1)
    assert board is not None
    assert len(board["rows"]) == len(DEMO_TEAMS)
    for _ in range(120):
        await simulator.step()
    board = await tourney.load_leaderboard(1)
    assert board["completed"] >= 1
    assert sum(row["points"] for row in board["rows"]) > 0
    assert await users.authenticate("red", "beer-olympics") is not None
    async with db.session(readonly=True) as session:
        scheduled = (
            await session.execute(sa.select(sa.func.count()).select_from(matches))
        ).scalar()
    # A round robin of the teams for each game: 4 x 28 = 112 matches.
    assert scheduled == len(DEMO_GAMES) * len(DEMO_TEAMS) * (len(DEMO_TEAMS) - 1) // 2


async def test_the_simulator_plays_the_demo_tournament_only(demo: Demo) -> None:
    """Another tournament's live match is left to its players: after many steps it is
    still at the version its start gave it."""
    tourney, users = demo.tourney, demo.users
    simulator = await demo.simulator(5)
    host = (await users.by_username("host")).principal()
    other = (await tourney.create_tournament("Elsewhere", host))["id"]
    home = (await tourney.add_team(other, "Home", host))["id"]
    away = (await tourney.add_team(other, "Away", host))["id"]
    game = (await tourney.add_game(other, "Darts", host))["id"]
    fixture = await tourney.schedule(other, game, home, away, 0.0, host)
    started = await tourney.start(fixture["id"], host)
    for _ in range(60):
        await simulator.step()
    assert await tourney.current(fixture["id"]) == started
    board = await tourney.load_leaderboard(1)
    assert sum(row["played"] for row in board["rows"]) > 0  # the demo did play
