"""The JSON API under ``/api`` (OpenAPI at ``/openapi.json``)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from apps.tourney.schema import match_state, matches, tournaments
from apps.tourney.service import Tourney, match_query, match_view
from tenfold import NotFound, Use, current_principal
from tenfold.db import Database, ReadSession

__all__ = ["Int", "router"]

router = APIRouter(prefix="/api")


def _not_a_boolean(value: Any) -> Any:
    """JSON's true and false are not numbers (pydantic's lax mode would take them as 1
    and 0); 8.0 is, as JSON Schema's integer says."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


Int = Annotated[int, BeforeValidator(_not_a_boolean)]

Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Name = Annotated[str, Field(min_length=1, max_length=80)]


class _In(BaseModel):
    """Write bodies refuse fields they do not declare (422): no mass assignment."""

    model_config = ConfigDict(extra="forbid")


class TournamentIn(_In):
    name: str = Field(min_length=1, max_length=120)


class NamedIn(_In):
    name: Name


class PlayerIn(_In):
    team_id: Int = Field(ge=1, le=2**31 - 1)
    user_id: str = Field(min_length=1, max_length=64)


class MatchIn(_In):
    game_id: Int = Field(ge=1, le=2**31 - 1)
    home_team_id: Int = Field(ge=1, le=2**31 - 1)
    away_team_id: Int = Field(ge=1, le=2**31 - 1)
    scheduled_at: float = Field(ge=0, le=4102444800)


class ScoreIn(_In):
    home: Int = Field(ge=0, le=999)
    away: Int = Field(ge=0, le=999)
    version: Int = Field(ge=0, le=2**31 - 1, description="The match version the score was seen on.")


class Created(BaseModel):
    id: int
    name: str


class MatchOut(BaseModel):
    id: int
    tournament_id: int
    game_id: int
    home_team_id: int
    away_team_id: int
    scheduled_at: float
    status: str
    home_score: int
    away_score: int
    version: int


class MatchPage(BaseModel):
    items: list[MatchOut]
    next_cursor: str | None
    prev_cursor: str | None


class LeaderboardRow(BaseModel):
    rank: int
    team_id: int
    team: str
    points: int
    played: int
    wins: int
    draws: int
    losses: int
    score_for: int
    score_against: int


class Leaderboard(BaseModel):
    tournament_id: int
    name: str
    completed: int
    rows: list[LeaderboardRow]


class TournamentOut(BaseModel):
    id: int
    name: str


# -- tournaments ---------------------------------------------------------------------------


@router.post("/tournaments", status_code=201, tags=["tournaments"])
async def create_tournament(body: TournamentIn, tourney: Use[Tourney]) -> Created:
    """Create a tournament (hosts); its creator becomes its organiser."""
    made = await tourney.create_tournament(body.name, _principal())
    return Created(**made)


@router.get("/tournaments", tags=["tournaments"])
async def list_tournaments(session: ReadSession) -> list[TournamentOut]:
    query = sa.select(tournaments.c.id, tournaments.c.name).order_by(tournaments.c.id).limit(100)
    return [TournamentOut(id=r.id, name=r.name) for r in await session.execute(query)]


@router.post("/tournaments/{tournament_id}/teams", status_code=201, tags=["tournaments"])
async def add_team(tournament_id: Id, body: NamedIn, tourney: Use[Tourney]) -> Created:
    made = await tourney.add_team(tournament_id, body.name, current_principal())
    return Created(id=made["id"], name=made["name"])


@router.post("/tournaments/{tournament_id}/players", status_code=204, tags=["tournaments"])
async def add_player(tournament_id: Id, body: PlayerIn, tourney: Use[Tourney]) -> None:
    await tourney.add_player(tournament_id, body.team_id, body.user_id, current_principal())


@router.post("/tournaments/{tournament_id}/games", status_code=201, tags=["tournaments"])
async def add_game(tournament_id: Id, body: NamedIn, tourney: Use[Tourney]) -> Created:
    made = await tourney.add_game(tournament_id, body.name, current_principal())
    return Created(id=made["id"], name=made["name"])


@router.post("/tournaments/{tournament_id}/matches", status_code=201, tags=["matches"])
async def schedule(tournament_id: Id, body: MatchIn, tourney: Use[Tourney]) -> MatchOut:
    made = await tourney.schedule(
        tournament_id,
        body.game_id,
        body.home_team_id,
        body.away_team_id,
        body.scheduled_at,
        current_principal(),
    )
    return MatchOut(**await tourney.match(made["id"]))


@router.get("/tournaments/{tournament_id}/matches", tags=["matches"])
async def list_matches(
    tournament_id: Id,
    session: ReadSession,
    db: Use[Database],
    status: Annotated[str | None, Query(pattern="^(scheduled|live|completed)$")] = None,
    after: Annotated[
        float | None, Query(ge=0, le=4102444800, description="Scheduled after.")
    ] = None,
    before: Annotated[float | None, Query(ge=0, le=4102444800)] = None,
    cursor: Annotated[
        str | None,
        Query(
            max_length=512,
            pattern="^[A-Za-z0-9_-]+$",
            description="next_cursor or prev_cursor of a page (opaque; a made-up one is a 400).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> MatchPage:
    """The tournament's matches by time, a keyset page at a time, filtered by status and
    by when they are scheduled."""
    query = match_query().where(matches.c.tournament_id == tournament_id)
    if status == "scheduled":
        query = query.where(match_state.c.status.is_(None))
    elif status is not None:
        query = query.where(match_state.c.status == status)
    filters = {}
    if after is not None:
        filters["scheduled_at__gt"] = after
    if before is not None:
        filters["scheduled_at__lt"] = before
    pager = db.paginator(
        sort=(matches.c.scheduled_at, matches.c.id),
        filterable={"scheduled_at": matches.c.scheduled_at},
        name="tourney-matches",
    )
    page = await pager.page(session, query, cursor=cursor, limit=limit, filters=filters)
    return MatchPage(
        items=[MatchOut(**match_view(row._mapping)) for row in page.items],
        next_cursor=page.next_cursor,
        prev_cursor=page.prev_cursor,
    )


@router.get(
    "/tournaments/{tournament_id}/leaderboard",
    tags=["leaderboard"],
    responses={304: {"description": "Not modified (If-None-Match)"}},
)
async def leaderboard(
    tournament_id: Id, request: Request, response: Response, tourney: Use[Tourney]
) -> Any:
    """The leaderboard, through the cache; its ``ETag`` lets a polling client get 304."""
    board = await tourney.leaderboard(tournament_id)
    if board is None:
        raise NotFound(f"no tournament {tournament_id}")
    body = orjson.dumps(board)
    etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


# -- matches --------------------------------------------------------------------------------


@router.get("/matches/{match_id}", tags=["matches"])
async def get_match(match_id: Id, tourney: Use[Tourney]) -> MatchOut:
    return MatchOut(**await tourney.match(match_id))


@router.post("/matches/{match_id}/start", tags=["matches"])
async def start(match_id: Id, tourney: Use[Tourney]) -> MatchOut:
    return MatchOut(**await tourney.start(match_id, current_principal()))


@router.post("/matches/{match_id}/score", tags=["matches"])
async def report(match_id: Id, body: ScoreIn, tourney: Use[Tourney]) -> MatchOut:
    """Report the score as seen on match ``version``: a report made on an older version
    than the match's is a 409 with the current state."""
    state = await tourney.report(match_id, body.home, body.away, body.version, current_principal())
    return MatchOut(**state)


@router.post("/matches/{match_id}/complete", tags=["matches"])
async def complete(match_id: Id, tourney: Use[Tourney]) -> MatchOut:
    """Complete a live match: its result is final from now on."""
    return MatchOut(**await tourney.complete(match_id, current_principal()))


def _principal() -> Any:
    from tenfold import Unauthorized

    principal = current_principal()
    if principal is None:
        raise Unauthorized("log in first")
    return principal
