"""The demo: a seeded tournament, and a simulator that plays its matches.

With ``TENFOLD_TOURNEY__DEMO=true`` (what ``make run`` sets) the app seeds, on
an empty database, a host and a player per team (password ``DEMO_PASSWORD``),
the "Beer Olympics" tournament with 8 teams and 4 games, and a round-robin
schedule of 112 matches; then the simulator keeps ``live`` matches going:
it starts scheduled ones, reports scores and completes them, so the
leaderboard moves on its own. It plays through the same service as the API.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

import sqlalchemy as sa

from apps.tourney.schema import match_state, matches, tournaments
from apps.tourney.service import Tourney
from tenfold import Conflict, Principal
from tenfold.auth import Users
from tenfold.db import Database
from tenfold.observability import get_logger

__all__ = ["DEMO_PASSWORD", "DEMO_TEAMS", "Simulator", "seed"]

_log = get_logger("tourney.demo")

DEMO_PASSWORD = "beer-olympics"
DEMO_TEAMS = ("Red", "Blue", "Green", "Gold", "Purple", "Orange", "Silver", "Black")
DEMO_GAMES = ("Beer pong", "Flip cup", "Cornhole", "Quarters")


async def seed(tourney: Tourney, users: Users, db: Database) -> int | None:
    """Seed the demo on an empty database; the tournament's id (None: already seeded)."""
    async with db.session() as session:
        if (await session.execute(sa.select(tournaments.c.id).limit(1))).first() is not None:
            return None
    host_user = await users.create("host", DEMO_PASSWORD, roles=["host"])
    host = host_user.principal()
    made = await tourney.create_tournament("Beer Olympics", host)
    tid = made["id"]
    team_ids = []
    for name in DEMO_TEAMS:
        team = await tourney.add_team(tid, name, host)
        team_ids.append(team["id"])
        player = await users.create(name.lower(), DEMO_PASSWORD, roles=["player"])
        await tourney.add_player(tid, team["id"], player.id, host)
    start = time.time()
    slot = itertools.count()
    for game_name in DEMO_GAMES:
        game = await tourney.add_game(tid, game_name, host)
        for home, away in itertools.combinations(team_ids, 2):
            await tourney.schedule(tid, game["id"], home, away, start + next(slot) * 60, host)
    _log.info("demo_seeded", tournament_id=tid, teams=len(team_ids))
    return tid


class Simulator:
    """Plays the demo tournament's matches (the first tournament, which ``seed`` made):
    ``live`` at a time, a step every ``interval`` seconds. Other tournaments are left to
    their players."""

    name = "tourney-demo"

    def __init__(
        self,
        tourney: Tourney,
        users: Users,
        db: Database,
        *,
        interval: float = 1.0,
        live: int = 3,
        rng: random.Random | None = None,
    ) -> None:
        self.tourney = tourney
        self.users = users
        self.db = db
        self.interval = interval
        self.live = live
        self.rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._host: Principal | None = None
        self.tournament_id: int | None = None

    async def start(self) -> None:
        """Nothing yet: the serving process calls ``begin`` once the platform has started
        (a worker or a command has the component too, and never plays)."""

    async def begin(self) -> None:
        """Seed the demo if the database is empty, and start playing."""
        await seed(self.tourney, self.users, self.db)
        async with self.db.session(readonly=True) as session:
            self.tournament_id = (
                await session.execute(sa.select(sa.func.min(tournaments.c.id)))
            ).scalar()
        user = await self.users.by_username("host")
        self._host = user.principal() if user is not None else None
        self._task = asyncio.create_task(self._run(), name="tourney-demo")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except Conflict:
                pass  # a person reported meanwhile: the next step decides afresh
            except Exception as exc:  # the demo must never take the app down
                _log.warning("demo_step_failed", error=repr(exc))
            await asyncio.sleep(self.interval)

    async def _board(self) -> tuple[list[Any], int | None]:
        """The live matches (id, version), and the next scheduled one to start."""
        async with self.db.session(readonly=True) as session:
            live = (
                await session.execute(
                    sa.select(match_state.c.match_id, match_state.c.version)
                    .where(
                        match_state.c.status == "live",
                        match_state.c.tournament_id == self.tournament_id,
                    )
                    .order_by(match_state.c.match_id)
                )
            ).all()
            waiting = (
                await session.execute(
                    sa.select(matches.c.id)
                    .outerjoin(match_state, match_state.c.match_id == matches.c.id)
                    .where(
                        match_state.c.match_id.is_(None),
                        matches.c.tournament_id == self.tournament_id,
                    )
                    .order_by(matches.c.scheduled_at, matches.c.id)
                    .limit(1)
                )
            ).scalar()
        return list(live), waiting

    async def step(self) -> None:
        """One move: start a match if fewer than ``live`` are live, else score or complete
        one of the live ones."""
        host = self._host
        if host is None:
            return
        live, waiting = await self._board()
        if len(live) < self.live and waiting is not None:
            await self.tourney.start(waiting, host)
            return
        if not live:
            return
        match_id, version = self.rng.choice(live)
        state = await self.tourney.match(match_id)
        if version >= 6 and self.rng.random() < 0.4:
            await self.tourney.complete(match_id, host)
            return
        score = [state["home_score"], state["away_score"]]
        score[self.rng.randint(0, 1)] += 1
        await self.tourney.report(match_id, score[0], score[1], state["version"], host)


def demo_logins() -> dict[str, Any]:
    """Who can log in to the demo, for the start-up banner."""
    return {"host": DEMO_PASSWORD, **{name.lower(): DEMO_PASSWORD for name in DEMO_TEAMS}}
