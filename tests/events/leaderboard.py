"""A leaderboard read model: points per team from MatchCompleted events, for the tests."""

from __future__ import annotations

import random
from typing import Any

import sqlalchemy as sa

from tenfold.db import TenfoldSession
from tenfold.events import NewEvent, Projection, RecordedEvent

metadata = sa.MetaData()

points = sa.Table(
    "test_leaderboard",
    metadata,
    sa.Column("team", sa.String(50), primary_key=True),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("played", sa.Integer, nullable=False),
    sa.Index("test_leaderboard_by_points", "points"),
)

TEAMS = [f"team-{i}" for i in range(12)]


class Leaderboard(Projection):
    """3 points for a win, 1 each for a draw; ``fail_on`` makes a handler raise (tests)."""

    name = "leaderboard"
    tables = (points,)
    types = frozenset({"MatchCompleted"})

    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.fail_on = fail_on or set()
        self.applied: list[str] = []

    async def handle(self, event: RecordedEvent, session: TenfoldSession, tables: Any) -> None:
        if event.data.get("n") in self.fail_on:
            raise RuntimeError(f"refused {event.data['n']}")
        table = tables["test_leaderboard"]
        home, away = event.data["home"], event.data["away"]
        hg, ag = event.data["home_goals"], event.data["away_goals"]
        gained = {home: 3 if hg > ag else int(hg == ag), away: 3 if ag > hg else int(hg == ag)}
        await _add(session, table, gained)
        self.applied.append(event.id)


async def _add(session: TenfoldSession, table: sa.Table, gained: dict[str, int]) -> None:
    """One upsert for both teams (they differ: one statement per event)."""
    (home, home_points), (away, away_points) = gained.items()
    params = {"home": home, "home_points": home_points, "away": away, "away_points": away_points}
    await session.execute(_upsert(session, table), params)


def _upsert(session: TenfoldSession, table: sa.Table) -> sa.TextClause:
    # Plain SQL, the same on SQLite and PostgreSQL: the insert().on_conflict_do_update()
    # construct built per event cost most of a 10,000-event test in SQLAlchemy's compiler.
    name = session.bind.dialect.identifier_preparer.format_table(table)
    return sa.text(
        f"INSERT INTO {name} (team, points, played) "
        "VALUES (:home, :home_points, 1), (:away, :away_points, 1) "
        f"ON CONFLICT (team) DO UPDATE SET points = {name}.points + excluded.points, "
        f"played = {name}.played + 1"
    )


def match(rng: random.Random, n: int) -> NewEvent:
    home, away = rng.sample(TEAMS, 2)
    return NewEvent(
        "MatchCompleted",
        {
            "n": n,
            "home": home,
            "away": away,
            "home_goals": rng.randint(0, 4),
            "away_goals": rng.randint(0, 4),
        },
    )


def expected(events: list[NewEvent]) -> dict[str, tuple[int, int]]:
    """The leaderboard computed in memory: (points, played) per team."""
    table: dict[str, tuple[int, int]] = {}
    for event in events:
        d = event.data
        hg, ag = d["home_goals"], d["away_goals"]
        for team, gain in (
            (d["home"], 3 if hg > ag else int(hg == ag)),
            (d["away"], 3 if ag > hg else int(hg == ag)),
        ):
            p, n = table.get(team, (0, 0))
            table[team] = (p + gain, n + 1)
    return table


async def board(session: TenfoldSession, table: sa.Table = points) -> dict[str, tuple[int, int]]:
    rows = (await session.execute(sa.select(table.c.team, table.c.points, table.c.played))).all()
    return {r.team: (r.points, r.played) for r in rows}
