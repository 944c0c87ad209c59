"""Tourney's tables: what organisers set up, and the read models the projections keep.

Set-up rows (tournaments, teams, players, games, the match schedule) are written
by the API. A match's live state and the leaderboard are projections of the
event log (``match_state``, ``standings``): rebuilt from it at will
(``tenfold projections rebuild``), never written by a request.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "games",
    "match_state",
    "matches",
    "metadata",
    "players",
    "standings",
    "sync_actions",
    "teams",
    "tournaments",
]

metadata = sa.MetaData()

tournaments = sa.Table(
    "tourney_tournaments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("organiser_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

teams = sa.Table(
    "tourney_teams",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tournament_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.UniqueConstraint("tournament_id", "name", name="tourney_teams_name"),
)

#: A user plays for one team per tournament.
players = sa.Table(
    "tourney_players",
    metadata,
    sa.Column("tournament_id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.Integer, nullable=False),
)

games = sa.Table(
    "tourney_games",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tournament_id", sa.Integer, nullable=False, index=True),
    sa.Column("name", sa.String(80), nullable=False),
)

#: The schedule: who plays whom, at what, when.
matches = sa.Table(
    "tourney_matches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tournament_id", sa.Integer, nullable=False),
    sa.Column("game_id", sa.Integer, nullable=False),
    sa.Column("home_team_id", sa.Integer, nullable=False),
    sa.Column("away_team_id", sa.Integer, nullable=False),
    sa.Column("scheduled_at", sa.Float, nullable=False),
    sa.Index("tourney_matches_by_time", "tournament_id", "scheduled_at", "id"),
)

#: Projection ``tourney_match_state``: each started match's status and score.
match_state = sa.Table(
    "tourney_match_state",
    metadata,
    sa.Column("match_id", sa.Integer, primary_key=True),
    sa.Column("tournament_id", sa.Integer, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("home_score", sa.Integer, nullable=False),
    sa.Column("away_score", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("tourney_match_state_by_status", "tournament_id", "status"),
)

#: Projection ``tourney_standings``: one row per team with a completed match.
standings = sa.Table(
    "tourney_standings",
    metadata,
    sa.Column("tournament_id", sa.Integer, primary_key=True),
    sa.Column("team_id", sa.Integer, primary_key=True),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("played", sa.Integer, nullable=False),
    sa.Column("wins", sa.Integer, nullable=False),
    sa.Column("draws", sa.Integer, nullable=False),
    sa.Column("losses", sa.Integer, nullable=False),
    sa.Column("score_for", sa.Integer, nullable=False),
    sa.Column("score_against", sa.Integer, nullable=False),
)

#: Offline actions already applied, by the client's id for them: a replay is a duplicate.
sync_actions = sa.Table(
    "tourney_sync_actions",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("action_id", sa.String(64), primary_key=True),
    sa.Column("result", sa.JSON, nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)
