"""What the API, the demo simulator and offline sync do: one place for each rule.

Access: a *host* (global role) creates tournaments and becomes the *organiser*
of each one it creates, a role granted on ``tournament:<id>`` alone. An
organiser manages their tournament (teams, games, the schedule, starting and
completing matches); another tournament's management answers 404, as if it did
not exist. A player reports scores for the matches their team plays; a viewer
(anyone) watches.

A change to a match is answered, and pushed on the channel ``tournament:<id>``,
with the match as the aggregate just saved holds it. Before the answer, the
match-state projection holds the change (its runner is woken by the append;
waiting for it costs no query), so the lists read right after a write include
it. Only a completed match changes the leaderboard: ``complete`` also waits
for the standings projection, replaces the cached leaderboard and pushes it
with the match, so the pushed message, the cached response and the read model
agree. A score update leaves the cached leaderboard alone: it has not changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from apps.tourney.domain import Match, Standing, ranked, stream_of
from apps.tourney.projections import MATCH_STATE, STANDINGS
from apps.tourney.schema import games, match_state, matches, players, standings, teams, tournaments
from tenfold import BadRequest, Forbidden, NotFound, Principal, Unauthorized
from tenfold.auth import Access, Grants
from tenfold.cache import Cache, key
from tenfold.db import Database
from tenfold.events import Aggregates, Appended, ConcurrencyError, Projections

__all__ = ["ORGANISER", "Tourney", "channel_of", "leaderboard_tag", "state_view"]

#: The role a tournament's creator holds on it (``tournament:<id>``).
ORGANISER = "organiser"


#: Times a change is decided on a freshly loaded match before a lost race is the caller's.
_ATTEMPTS = 3


def channel_of(tournament_id: int) -> str:
    return f"tournament:{tournament_id}"


def fixture_key(match_id: int) -> str:
    return key("tournament", "fixture", match_id)


def leaderboard_tag(tournament_id: int) -> str:
    return f"leaderboard:{tournament_id}"


def _resource(tournament_id: int) -> str:
    return f"tournament:{tournament_id}"


class Tourney:
    """The app's operations over the platform's database, events, cache and channels."""

    def __init__(
        self,
        db: Database,
        aggregates: Aggregates,
        projections: Projections,
        cache: Cache,
        access: Access,
        grants: Grants,
        publish: Callable[[str, Any], Any] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.aggregates = aggregates
        self.projections = projections
        self.cache = cache
        self.access = access
        self.grants = grants
        self.publish = publish
        self.clock = clock

    # -- access --------------------------------------------------------------------------

    async def manages(self, principal: Principal | None, tournament_id: int) -> bool:
        return await self.access.can(principal, "tournaments:manage", _resource(tournament_id))

    async def must_manage(self, principal: Principal | None, tournament_id: int) -> None:
        """404 unless ``principal`` organises the tournament (its existence must not leak)."""
        if not await self.manages(principal, tournament_id):
            raise NotFound(f"no tournament {tournament_id}")

    # -- set-up --------------------------------------------------------------------------

    async def create_tournament(self, name: str, principal: Principal) -> dict[str, Any]:
        await self.access.check("tournaments:create", principal=principal)
        async with self.db.session() as session:
            row = {"name": name, "organiser_id": principal.id, "created_at": self.clock()}
            result = await session.execute(sa.insert(tournaments).values(**row))
            tournament_id = result.inserted_primary_key[0]
        await self.grants.grant(principal.id, ORGANISER, _resource(tournament_id))
        return {"id": tournament_id, "name": name}

    async def add_team(
        self, tournament_id: int, name: str, principal: Principal | None
    ) -> dict[str, Any]:
        await self.must_manage(principal, tournament_id)
        async with self.db.session() as session:
            result = await session.execute(
                sa.insert(teams).values(tournament_id=tournament_id, name=name)
            )
        await self.cache.invalidate_tags(leaderboard_tag(tournament_id))
        return {"id": result.inserted_primary_key[0], "tournament_id": tournament_id, "name": name}

    async def add_player(
        self, tournament_id: int, team_id: int, user_id: str, principal: Principal | None
    ) -> None:
        await self.must_manage(principal, tournament_id)
        await self._team(tournament_id, team_id)
        async with self.db.session() as session:
            await session.execute(
                sa.delete(players).where(
                    players.c.tournament_id == tournament_id, players.c.user_id == user_id
                )
            )
            await session.execute(
                sa.insert(players).values(
                    tournament_id=tournament_id, user_id=user_id, team_id=team_id
                )
            )

    async def add_game(
        self, tournament_id: int, name: str, principal: Principal | None
    ) -> dict[str, Any]:
        await self.must_manage(principal, tournament_id)
        async with self.db.session() as session:
            result = await session.execute(
                sa.insert(games).values(tournament_id=tournament_id, name=name)
            )
        return {"id": result.inserted_primary_key[0], "tournament_id": tournament_id, "name": name}

    async def schedule(
        self,
        tournament_id: int,
        game_id: int,
        home: int,
        away: int,
        at: float,
        principal: Principal | None,
    ) -> dict[str, Any]:
        await self.must_manage(principal, tournament_id)
        if home == away:
            raise BadRequest("a team cannot play itself")
        await self._team(tournament_id, home)
        await self._team(tournament_id, away)
        async with self.db.session() as session:
            found = await session.execute(
                sa.select(games.c.id).where(
                    games.c.id == game_id, games.c.tournament_id == tournament_id
                )
            )
            if found.first() is None:
                raise BadRequest(f"tournament {tournament_id} has no game {game_id}")
            values = {
                "tournament_id": tournament_id,
                "game_id": game_id,
                "home_team_id": home,
                "away_team_id": away,
                "scheduled_at": at,
            }
            result = await session.execute(sa.insert(matches).values(**values))
        match_id = result.inserted_primary_key[0]
        # A lookup of this id before it existed may have cached "not found".
        await self.cache.delete(fixture_key(match_id))
        return {"id": match_id, **values}

    async def _team(self, tournament_id: int, team_id: int) -> None:
        async with self.db.session() as session:
            found = await session.execute(
                sa.select(teams.c.id).where(
                    teams.c.id == team_id, teams.c.tournament_id == tournament_id
                )
            )
            if found.first() is None:
                raise BadRequest(f"tournament {tournament_id} has no team {team_id}")

    # -- play ----------------------------------------------------------------------------

    async def start(self, match_id: int, principal: Principal | None) -> dict[str, Any]:
        fixture = await self.fixture(match_id)
        await self.must_manage(principal, fixture["tournament_id"])
        home, away = fixture["home_team_id"], fixture["away_team_id"]
        return await self._change(
            match_id,
            fixture,
            lambda match: match.start(fixture["tournament_id"], home, away, _who(principal)),
            standings_changed=False,
        )

    async def report(
        self, match_id: int, home: int, away: int, seen_version: int, principal: Principal | None
    ) -> dict[str, Any]:
        """Record the score a player (of either team) or the organiser reports, as seen on
        match version ``seen_version``: 409 when the match has moved on since."""
        fixture = await self.fixture(match_id)
        await self.may_report(principal, fixture)
        return await self._change(
            match_id,
            fixture,
            lambda match: match.report(home, away, seen_version=seen_version, by=_who(principal)),
            standings_changed=False,
        )

    async def complete(self, match_id: int, principal: Principal | None) -> dict[str, Any]:
        fixture = await self.fixture(match_id)
        await self.must_manage(principal, fixture["tournament_id"])
        return await self._change(
            match_id, fixture, lambda match: match.complete(_who(principal)), standings_changed=True
        )

    async def _change(
        self,
        match_id: int,
        fixture: dict[str, Any],
        command: Callable[[Match], Any],
        *,
        standings_changed: bool,
    ) -> dict[str, Any]:
        """``command`` on the match as stored, then saved. When another change was appended
        between the load and the save (the store's 409), the command is decided again on the
        match as it now is: a report made on the older version is then a ``StaleReport``
        carrying the current version, a second completion ``MatchIsOver``."""
        attempt = 1
        while True:
            match = await self.aggregates.load(Match, stream_of(match_id), new_if_missing=True)
            command(match)
            try:
                appended = await self.aggregates.save(match)
            except ConcurrencyError:
                if attempt == _ATTEMPTS:
                    raise
                attempt += 1
                continue
            state = state_view(fixture, match)
            if appended is not None:
                await self.after_change(state, appended, standings_changed=standings_changed)
            return state

    async def may_report(self, principal: Principal | None, fixture: dict[str, Any]) -> None:
        if principal is None:
            raise Unauthorized("log in to report a score")
        if await self.manages(principal, fixture["tournament_id"]):
            return
        if not await self.access.can(principal, "matches:report"):
            raise Forbidden("needs the matches:report permission")
        team = await self.team_of(principal.id, fixture["tournament_id"])
        if team not in (fixture["home_team_id"], fixture["away_team_id"]):
            raise Forbidden("players report the scores of their own team's matches only")

    async def team_of(self, user_id: str, tournament_id: int) -> int | None:
        async with self.db.session() as session:
            found = await session.execute(
                sa.select(players.c.team_id).where(
                    players.c.tournament_id == tournament_id, players.c.user_id == user_id
                )
            )
            return found.scalar()

    async def after_change(
        self, state: dict[str, Any], appended: Appended, *, standings_changed: bool
    ) -> None:
        """Push the match as saved, then wait until the match-state projection holds
        ``appended``. When the standings changed, wait for them too, replace the cached
        leaderboard and push the match with it (one message)."""
        tournament_id = state["tournament_id"]
        message: dict[str, Any] = {"type": "match", "match": state}
        if not standings_changed and self.publish is not None:
            # The saved aggregate is the truth: viewers need not wait for a read model.
            await self.publish(channel_of(tournament_id), message)
        await self.projections.wait_for(MATCH_STATE, appended.position, timeout=10.0)
        if standings_changed:
            await self.projections.wait_for(STANDINGS, appended.position, timeout=10.0)
            await self.cache.invalidate_tags(leaderboard_tag(tournament_id))
            message["leaderboard"] = await self.leaderboard(tournament_id)
            if self.publish is not None:
                await self.publish(channel_of(tournament_id), message)

    # -- reads ---------------------------------------------------------------------------

    async def fixture(self, match_id: int) -> dict[str, Any]:
        """The match as scheduled (tournament, teams, game, time): never changed once made,
        so kept in the cache's ``tournament`` namespace; 404 for no such match."""
        found = await self.cache.get_or_load(
            fixture_key(match_id), lambda: self._load_fixture(match_id)
        )
        if found is None:
            raise NotFound(f"no match {match_id}")
        return found

    async def _load_fixture(self, match_id: int) -> dict[str, Any] | None:
        async with self.db.session() as session:
            row = (
                await session.execute(sa.select(matches).where(matches.c.id == match_id))
            ).first()
        # Plain str keys: SQLAlchemy's are a str subclass, which the cache's JSON refuses.
        return None if row is None else {str(k): v for k, v in row._mapping.items()}

    async def current(self, match_id: int) -> dict[str, Any]:
        """The match as scheduled, with its state from the event store (never behind)."""
        fixture = await self.fixture(match_id)
        match = await self.aggregates.load(Match, stream_of(match_id), new_if_missing=True)
        return state_view(fixture, match)

    async def match(self, match_id: int) -> dict[str, Any]:
        """The match as scheduled, with its state from the match-state projection."""
        async with self.db.session() as session:
            row = (await session.execute(_match_query().where(matches.c.id == match_id))).first()
        if row is None:
            raise NotFound(f"no match {match_id}")
        return match_view(row._mapping)

    async def leaderboard(self, tournament_id: int) -> dict[str, Any] | None:
        """The tournament's leaderboard through the cache (``leaderboard`` namespace: 5 s,
        invalidated when a match completes or a team joins, one load at a time); None for
        no such tournament."""
        return await self.cache.get_or_load(
            key("leaderboard", tournament_id),
            lambda: self.load_leaderboard(tournament_id),
            tags=[leaderboard_tag(tournament_id)],
        )

    async def load_leaderboard(self, tournament_id: int) -> dict[str, Any] | None:
        async with self.db.session() as session:
            found = await session.execute(
                sa.select(tournaments.c.name).where(tournaments.c.id == tournament_id)
            )
            name = found.scalar()
            if name is None:
                return None
            query = (
                sa.select(teams.c.id, teams.c.name, standings)
                .select_from(teams)
                .outerjoin(
                    standings,
                    sa.and_(
                        standings.c.tournament_id == teams.c.tournament_id,
                        standings.c.team_id == teams.c.id,
                    ),
                )
                .where(teams.c.tournament_id == tournament_id)
            )
            rows = (await session.execute(query)).all()
        board = []
        for row in rows:
            line = Standing(row.id, row.name)
            if row.points is not None:
                line.points, line.played = row.points, row.played
                line.wins, line.draws, line.losses = row.wins, row.draws, row.losses
                line.score_for, line.score_against = row.score_for, row.score_against
            board.append(line)
        ordered = ranked(board)
        completed = sum(line.played for line in ordered) // 2
        return {
            "tournament_id": tournament_id,
            "name": name,
            "completed": completed,
            "rows": [line.to_dict() for line in ordered],
        }


def _who(principal: Principal | None) -> str:
    return principal.id if principal is not None else "system"


def _match_query() -> sa.Select[Any]:
    return sa.select(
        matches,
        match_state.c.status,
        match_state.c.home_score,
        match_state.c.away_score,
        match_state.c.version,
    ).outerjoin(match_state, match_state.c.match_id == matches.c.id)


def state_view(fixture: dict[str, Any], match: Match) -> dict[str, Any]:
    """``match_view`` of a fixture and its aggregate, as saved."""
    home, away = match.score
    return match_view(
        {
            **fixture,
            "status": match.status,
            "home_score": home,
            "away_score": away,
            "version": match.version,
        }
    )


def match_view(row: Any) -> dict[str, Any]:
    """A match for clients: the schedule, and its state (a scheduled match is 0-0, v0)."""
    status = row["status"] or "scheduled"
    return {
        "id": row["id"],
        "tournament_id": row["tournament_id"],
        "game_id": row["game_id"],
        "home_team_id": row["home_team_id"],
        "away_team_id": row["away_team_id"],
        "scheduled_at": row["scheduled_at"],
        "status": status,
        "home_score": row["home_score"] or 0,
        "away_score": row["away_score"] or 0,
        "version": row["version"] or 0,
    }


match_query = _match_query
