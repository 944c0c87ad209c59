"""A match's life as events, and the leaderboard's rules.

A match is an event-sourced aggregate (stream ``match-<id>``):

    MATCH_STARTED    {"tournament_id", "home", "away", "started_by"}
    SCORE_UPDATED    {"home", "away", "reported_by"}
    MATCH_COMPLETED  {"tournament_id", "home_team", "away_team", "home", "away",
                      "winner", "completed_by"}

A score report names the match version its reporter saw; a report made on an
older version is a conflict (409), so of two reports made on the same version
one wins and the other is told the current state. A completed match refuses
every change: its result is final.

The leaderboard gives 3 points for a win and 1 for a draw; ties are broken by
wins, then score difference, then score for, then the team's name.
``standings`` computes it from a tournament's completed matches, the same rules
the projection applies one event at a time, so the two can be compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tenfold import Conflict
from tenfold.events import Aggregate, on

__all__ = [
    "MATCH_COMPLETED",
    "MATCH_STARTED",
    "SCORE_UPDATED",
    "Match",
    "MatchIsOver",
    "MatchNotLive",
    "StaleReport",
    "Standing",
    "points_for",
    "ranked",
    "standings",
    "stream_of",
]

MATCH_STARTED = "MATCH_STARTED"
SCORE_UPDATED = "SCORE_UPDATED"
MATCH_COMPLETED = "MATCH_COMPLETED"


class MatchIsOver(Conflict):
    """The match is completed: its result can no longer change."""


class MatchNotLive(Conflict):
    """The match has not started (or has already), so this cannot happen now."""


class StaleReport(Conflict):
    """The report was made on an older version of the match than the current one."""


def stream_of(match_id: int) -> str:
    return f"match-{match_id}"


class Match(Aggregate):
    """One match: started, scored, completed."""

    snapshot_version = 1

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.tournament_id = 0
        self.home = 0
        self.away = 0
        self.score = [0, 0]
        self.status = "scheduled"

    # -- commands ------------------------------------------------------------------------

    def start(self, tournament_id: int, home: int, away: int, by: str) -> None:
        if self.status != "scheduled":
            raise MatchNotLive(f"match {self.id} has already started")
        self.record(
            MATCH_STARTED,
            {"tournament_id": tournament_id, "home": home, "away": away, "started_by": by},
        )

    def report(self, home: int, away: int, *, seen_version: int, by: str) -> bool:
        """Record a score reported on ``seen_version``; False when it is already the score
        (a repeated report changes nothing)."""
        self._must_be_live()
        if [home, away] == self.score:
            return False
        if seen_version != self.version:
            raise StaleReport(
                f"the match is at version {self.version}, the report was made on "
                f"{seen_version}: reload it",
                version=self.version,
                score=list(self.score),
            )
        self.record(SCORE_UPDATED, {"home": home, "away": away, "reported_by": by})
        return True

    def complete(self, by: str) -> None:
        self._must_be_live()
        home, away = self.score
        winner = self.home if home > away else self.away if away > home else None
        self.record(
            MATCH_COMPLETED,
            {
                "tournament_id": self.tournament_id,
                "home_team": self.home,
                "away_team": self.away,
                "home": home,
                "away": away,
                "winner": winner,
                "completed_by": by,
            },
        )

    def _must_be_live(self) -> None:
        if self.status == "completed":
            raise MatchIsOver(f"match {self.id} is completed: its result is final")
        if self.status != "live":
            raise MatchNotLive(f"match {self.id} has not started")

    # -- handlers ------------------------------------------------------------------------

    @on(MATCH_STARTED)
    def _started(self, data: dict[str, Any]) -> None:
        self.tournament_id = data["tournament_id"]
        self.home, self.away = data["home"], data["away"]
        self.status = "live"

    @on(SCORE_UPDATED)
    def _scored(self, data: dict[str, Any]) -> None:
        self.score = [data["home"], data["away"]]

    @on(MATCH_COMPLETED)
    def _completed(self, data: dict[str, Any]) -> None:
        self.score = [data["home"], data["away"]]
        self.status = "completed"


def points_for(own: int, other: int) -> tuple[int, int, int, int]:
    """(points, wins, draws, losses) a team gets from one completed match."""
    if own > other:
        return 3, 1, 0, 0
    if own == other:
        return 1, 0, 1, 0
    return 0, 0, 0, 1


@dataclass(slots=True)
class Standing:
    """One team's line in a tournament's leaderboard."""

    team_id: int
    name: str = ""
    points: int = 0
    played: int = 0
    wins: int = 0
    draws: int = 0
    losses: int = 0
    score_for: int = 0
    score_against: int = 0
    rank: int = field(default=0)

    @property
    def difference(self) -> int:
        return self.score_for - self.score_against

    def add(self, own: int, other: int) -> None:
        points, wins, draws, losses = points_for(own, other)
        self.points += points
        self.played += 1
        self.wins += wins
        self.draws += draws
        self.losses += losses
        self.score_for += own
        self.score_against += other

    def sort_key(self) -> tuple[Any, ...]:
        return (
            -self.points,
            -self.wins,
            -self.difference,
            -self.score_for,
            self.name,
            self.team_id,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "team_id": self.team_id,
            "team": self.name,
            "points": self.points,
            "played": self.played,
            "wins": self.wins,
            "draws": self.draws,
            "losses": self.losses,
            "score_for": self.score_for,
            "score_against": self.score_against,
        }


def ranked(rows: Iterable[Standing]) -> list[Standing]:
    """``rows`` in leaderboard order with their ranks (tied teams share a rank)."""
    ordered = sorted(rows, key=Standing.sort_key)
    previous: tuple[Any, ...] | None = None
    for position, row in enumerate(ordered, start=1):
        tie = (row.points, row.wins, row.difference, row.score_for)
        row.rank = ordered[position - 2].rank if tie == previous else position
        previous = tie
    return ordered


def standings(
    teams: dict[int, str], completed: Iterable[tuple[int, int, int, int]]
) -> list[Standing]:
    """The leaderboard from scratch: every team of ``teams`` (id -> name), and each
    completed match as ``(home team, away team, home score, away score)``."""
    table = {team_id: Standing(team_id, name) for team_id, name in teams.items()}
    for home, away, home_score, away_score in completed:
        table.setdefault(home, Standing(home)).add(home_score, away_score)
        table.setdefault(away, Standing(away)).add(away_score, home_score)
    return ranked(table.values())
