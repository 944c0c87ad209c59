"""The page at ``/``: a tournament's live leaderboard and matches, for viewers and players.

The HTML is rendered by the server (the leaderboard and the matches as they are
now, readable without JavaScript) with the same state as JSON in a data block;
``/static/tourney.js`` then keeps it live:

- the channel ``tournament:<id>`` over the WebSocket (``tenfold-realtime.js``)
  updates the leaderboard and the matches without a reload, ignoring anything
  older than what is shown (a match's ``version``, the board's ``completed``);
- a player logged in (``POST /auth/session``: HttpOnly cookies, the CSRF token
  sent back in ``X-CSRF-Token``) reports the scores of their team's live
  matches, the organiser starts and completes matches;
- offline, score reports are kept in ``localStorage`` with an id of their own
  and sent with ``POST /api/sync`` when the page is back online (a replay of an
  id is a duplicate on the server, so nothing is applied twice).

The page sends its own Content-Security-Policy: scripts and styles from this
site only, no inline script (the state's data block is not executed).

Wiring, in ``make_app``: ``routers=[..., page_router()]``. The router holds the
page, ``GET /api/tournaments/{id}`` (what the page shows, with the caller's
team and whether they organise it) and the three static files under
``/static/`` (``tourney.js``, ``tourney.css`` and tenfold's
``tenfold-realtime.js``).
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from apps.tourney.api import Id, Leaderboard, MatchOut
from apps.tourney.schema import games, match_state, matches, teams, tournaments
from apps.tourney.service import Tourney, channel_of, match_query, match_view
from tenfold import NotFound, PlatformDep, Use, current_principal
from tenfold.db import ReadSession
from tenfold.realtime import Realtime

__all__ = ["PAGE_CSP", "TournamentView", "page_router", "static_files", "tournament_view"]

#: The page's policy: everything from this site (the WebSocket included), nothing inline.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; "
    "frame-ancestors 'none'"
)

_STATIC = Path(__file__).with_name("static")
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
#: How many upcoming and finished matches the page lists (all live ones are listed).
UPCOMING = 20
RESULTS = 10


class Named(BaseModel):
    id: int
    name: str


class TournamentView(BaseModel):
    """What the page shows of one tournament, and what the caller may do in it."""

    id: int
    name: str
    teams: list[Named]
    games: list[Named]
    leaderboard: Leaderboard
    live: list[MatchOut]
    upcoming: list[MatchOut]
    results: list[MatchOut]
    channel: str
    you: str | None
    your_team_id: int | None
    you_organise: bool


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def static_files() -> dict[str, StaticFile]:
    """The files served under ``/static/``: the page's own, and tenfold's realtime client."""
    found = {path.name: path.read_bytes() for path in sorted(_STATIC.iterdir()) if path.is_file()}
    client = resources.files("tenfold.realtime").joinpath("static/tenfold-realtime.js")
    found["tenfold-realtime.js"] = client.read_bytes()
    return {
        name: StaticFile(
            body,
            _TYPES.get(Path(name).suffix, "application/octet-stream"),
            '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
        )
        for name, body in found.items()
        if Path(name).suffix in _TYPES
    }


async def tournament_view(
    session: Any, tourney: Tourney, tournament_id: int
) -> TournamentView | None:
    """The tournament as the page shows it to the current principal; None if none."""
    found = await session.execute(
        sa.select(tournaments.c.id, tournaments.c.name).where(tournaments.c.id == tournament_id)
    )
    row = found.first()
    if row is None:
        return None
    board = await tourney.leaderboard(tournament_id)
    if board is None:
        return None
    team_rows = await session.execute(
        sa.select(teams.c.id, teams.c.name)
        .where(teams.c.tournament_id == tournament_id)
        .order_by(teams.c.id)
    )
    game_rows = await session.execute(
        sa.select(games.c.id, games.c.name)
        .where(games.c.tournament_id == tournament_id)
        .order_by(games.c.id)
    )
    of_tournament = match_query().where(matches.c.tournament_id == tournament_id)
    by_time = (matches.c.scheduled_at, matches.c.id)
    live = await session.execute(
        of_tournament.where(match_state.c.status == "live").order_by(*by_time).limit(100)
    )
    upcoming = await session.execute(
        of_tournament.where(match_state.c.status.is_(None)).order_by(*by_time).limit(UPCOMING)
    )
    results = await session.execute(
        of_tournament.where(match_state.c.status == "completed")
        .order_by(*(column.desc() for column in by_time))
        .limit(RESULTS)
    )
    principal = current_principal()
    you = principal.id if principal is not None else None
    return TournamentView(
        id=row.id,
        name=row.name,
        teams=[Named(id=r.id, name=r.name) for r in team_rows],
        games=[Named(id=r.id, name=r.name) for r in game_rows],
        leaderboard=Leaderboard(**board),
        live=[MatchOut(**match_view(r._mapping)) for r in live],
        upcoming=[MatchOut(**match_view(r._mapping)) for r in upcoming],
        results=[MatchOut(**match_view(r._mapping)) for r in results],
        channel=channel_of(tournament_id),
        you=you,
        your_team_id=await tourney.team_of(you, tournament_id) if you else None,
        you_organise=await tourney.manages(principal, tournament_id) if you else False,
    )


def page_router() -> APIRouter:
    """``GET /``, ``GET /api/tournaments/{id}`` and ``GET /static/{name}``."""
    router = APIRouter()
    files = static_files()

    @router.get("/api/tournaments/{tournament_id}", tags=["tournaments"])
    async def get_tournament(
        tournament_id: Id, session: ReadSession, tourney: Use[Tourney]
    ) -> TournamentView:
        """The tournament as its page shows it: teams, games, the leaderboard, live,
        upcoming and recent matches, the caller's team and whether they organise it."""
        view = await tournament_view(session, tourney, tournament_id)
        if view is None:
            raise NotFound(f"no tournament {tournament_id}")
        return view

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str, request: Request) -> Response:
        found = files.get(name)
        if found is None:
            raise NotFound(f"no file {name}")
        headers = {"ETag": found.etag, "Cache-Control": "public, max-age=0, must-revalidate"}
        if found.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

    @router.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def page(
        session: ReadSession,
        tourney: Use[Tourney],
        platform: PlatformDep,
        t: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    ) -> HTMLResponse:
        if t is None:
            first = await session.execute(sa.select(sa.func.min(tournaments.c.id)))
            t = first.scalar()
        view = await tournament_view(session, tourney, t) if t is not None else None
        realtime = platform.find(Realtime)
        auth = getattr(platform.settings, "auth", None)
        client = {
            "realtime_path": realtime.settings.path if realtime is not None else "",
            "csrf_cookie": getattr(auth, "csrf_cookie", "tenfold_csrf"),
            "csrf_header": getattr(auth, "csrf_header", "X-CSRF-Token"),
        }
        status = 200 if view is not None or t is None else 404
        headers = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"}
        return HTMLResponse(render(view, client, files), status_code=status, headers=headers)

    return router


# -- the HTML ---------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _json_block(data: Any) -> str:
    """JSON safe inside a ``<script type="application/json">``: no ``</script>`` can close it."""
    text = orjson.dumps(data).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _board_rows(view: TournamentView) -> str:
    rows = []
    for line in view.leaderboard.rows:
        rows.append(
            f'<tr data-team="{line.team_id}"><td class="rank">{line.rank}</td>'
            f'<td class="team">{_e(line.team)}</td><td class="num">{line.played}</td>'
            f'<td class="num wide">{line.wins}</td><td class="num wide">{line.draws}</td>'
            f'<td class="num wide">{line.losses}</td>'
            f'<td class="num">{line.score_for - line.score_against:+d}</td>'
            f'<td class="num points">{line.points}</td></tr>'
        )
    return "".join(rows)


def _match_items(view: TournamentView, items: list[MatchOut]) -> str:
    names = {team.id: team.name for team in view.teams}
    played = {game.id: game.name for game in view.games}
    out = []
    for m in items:
        out.append(
            f'<article class="match" id="match-{m.id}" data-status="{_e(m.status)}">'
            f'<div class="meta"><span class="game">{_e(played.get(m.game_id, "game"))}</span>'
            f'<span class="status">{_e(m.status)}</span></div>'
            f'<div class="side home"><span class="team">{_e(names.get(m.home_team_id, "?"))}'
            f'</span><span class="score home-score">{m.home_score}</span></div>'
            f'<div class="side away"><span class="team">{_e(names.get(m.away_team_id, "?"))}'
            f'</span><span class="score away-score">{m.away_score}</span></div></article>'
        )
    return "".join(out) or '<p class="empty">None</p>'


def render(
    view: TournamentView | None, client: dict[str, str], files: dict[str, StaticFile]
) -> str:
    """The page: the state rendered, the same state as JSON, and the scripts to keep it live."""

    def asset(name: str) -> str:
        # The file's hash in the URL: a new release is fetched, an old one revalidated.
        return f"/static/{name}?v={files[name].etag.strip(chr(34))}"

    title = _e(view.name) if view is not None else "Tourney"
    if view is None:
        main = '<main class="layout"><p class="empty">No tournament here yet.</p></main>'
    else:
        main = f"""<main class="layout">
  <section class="card board" aria-labelledby="board-title">
    <h2 id="board-title">Leaderboard <small id="completed">{view.leaderboard.completed}
      completed</small></h2>
    <table id="leaderboard"><thead><tr><th>#</th><th>Team</th><th class="num">P</th>
      <th class="num wide">W</th><th class="num wide">D</th><th class="num wide">L</th>
      <th class="num">+/-</th><th class="num">Pts</th></tr></thead>
      <tbody>{_board_rows(view)}</tbody></table>
  </section>
  <section class="card" aria-labelledby="live-title">
    <h2 id="live-title">Live</h2>
    <div id="live" class="matches">{_match_items(view, view.live)}</div>
  </section>
  <section class="card" aria-labelledby="upcoming-title">
    <h2 id="upcoming-title">Upcoming</h2>
    <div id="upcoming" class="matches">{_match_items(view, view.upcoming)}</div>
  </section>
  <section class="card" aria-labelledby="results-title">
    <h2 id="results-title">Results</h2>
    <div id="results" class="matches">{_match_items(view, view.results)}</div>
  </section>
</main>"""
    state = (
        '<script type="application/json" id="tourney-state">'
        + _json_block({"view": view.model_dump() if view is not None else None, **client})
        + "</script>"
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Tourney</title>
<link rel="stylesheet" href="{asset("tourney.css")}">
</head>
<body>
<header class="top">
  <h1 id="title">{title}</h1>
  <div class="status-bar">
    <span id="conn" class="conn" data-state="offline" role="status">no live updates</span>
    <span id="queued" class="queued" data-count="0" hidden></span>
  </div>
  <div id="account" class="account">
    <form id="login" class="login" hidden>
      <input name="username" autocomplete="username" placeholder="username" required
        aria-label="username">
      <input name="password" type="password" autocomplete="current-password"
        placeholder="password" required aria-label="password">
      <button type="submit">Log in</button>
      <span id="login-error" class="error" role="alert"></span>
    </form>
    <div id="me" class="me" hidden><span id="me-name"></span>
      <button type="button" id="logout">Log out</button></div>
  </div>
</header>
<p id="notice" class="notice" role="status" hidden></p>
{main}
{state}
<script src="{asset("tenfold-realtime.js")}"></script>
<script src="{asset("tourney.js")}"></script>
</body>
</html>
"""
