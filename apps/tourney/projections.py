"""The read models fed from the event log: each match's state, and the leaderboard.

Both are ``tenfold.events.Projection``s: applied exactly once, in the same
transaction as their checkpoint, and rebuilt from the log with
``tenfold projections rebuild tourney_standings``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from apps.tourney.domain import MATCH_COMPLETED, MATCH_STARTED, SCORE_UPDATED, points_for
from apps.tourney.schema import match_state, standings
from tenfold.events import Projection, RecordedEvent

__all__ = ["MATCH_STATE", "STANDINGS", "MatchState", "Standings", "match_id_of"]

MATCH_STATE = "tourney_match_state"
STANDINGS = "tourney_standings"


def match_id_of(stream_id: str) -> int:
    return int(stream_id.removeprefix("match-"))


def _insert(session: Any) -> Any:
    if session.bind.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert


class MatchState(Projection):
    """``tourney_match_state``: status, score and stream version of each started match."""

    name = MATCH_STATE
    tables = (match_state,)
    types = frozenset({MATCH_STARTED, SCORE_UPDATED, MATCH_COMPLETED})

    async def handle(self, event: RecordedEvent, session: Any, tables: Any) -> None:
        table = tables[match_state.name]
        match_id = match_id_of(event.stream_id)
        data = event.data
        now = event.recorded_at
        if event.type == MATCH_STARTED:
            await session.execute(
                sa.insert(table).values(
                    match_id=match_id,
                    tournament_id=data["tournament_id"],
                    status="live",
                    home_score=0,
                    away_score=0,
                    version=event.version,
                    updated_at=now,
                )
            )
            return
        values: dict[str, Any] = {
            "home_score": data["home"],
            "away_score": data["away"],
            "version": event.version,
            "updated_at": now,
        }
        if event.type == MATCH_COMPLETED:
            values["status"] = "completed"
        await session.execute(sa.update(table).where(table.c.match_id == match_id).values(**values))


class Standings(Projection):
    """``tourney_standings``: points, results and scores per team, from completed matches."""

    name = STANDINGS
    tables = (standings,)
    types = frozenset({MATCH_COMPLETED})

    async def handle(self, event: RecordedEvent, session: Any, tables: Any) -> None:
        table = tables[standings.name]
        data = event.data
        rows = []
        for team, own, other in (
            (data["home_team"], data["home"], data["away"]),
            (data["away_team"], data["away"], data["home"]),
        ):
            points, wins, draws, losses = points_for(own, other)
            rows.append(
                {
                    "tournament_id": data["tournament_id"],
                    "team_id": team,
                    "points": points,
                    "played": 1,
                    "wins": wins,
                    "draws": draws,
                    "losses": losses,
                    "score_for": own,
                    "score_against": other,
                }
            )
        stmt = _insert(session)(table).values(rows)
        added = ("points", "played", "wins", "draws", "losses", "score_for", "score_against")
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[table.c.tournament_id, table.c.team_id],
                set_={name: table.c[name] + stmt.excluded[name] for name in added},
            )
        )
