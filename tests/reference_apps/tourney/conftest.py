"""A started Tourney on the embedded profile, with a host, an organised tournament, teams,
players, a game and scheduled matches, and a client per user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.tourney.main import make_app
from tenfold.auth import Users

PASSWORD = "a long enough password"


@dataclass
class World:
    app: Any
    client: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    tournament_id: int = 0
    teams: list[int] = field(default_factory=list)
    game_id: int = 0
    matches: list[int] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)

    async def call(self, method: str, path: str, who: str | None = None, **kw: Any) -> Any:
        headers = {**(self.headers[who] if who else {}), **kw.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kw)

    async def ok(self, method: str, path: str, who: str | None = None, **kw: Any) -> Any:
        response = await self.call(method, path, who, **kw)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json() if response.content else None


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    for name, value in {
        "TENFOLD_DB__URL": f"sqlite+aiosqlite:///{tmp_path}/tourney.db",
        "TENFOLD_APP__NAME": "tourney",
        "TENFOLD_AUTH__PASSWORD_TIME_COST": "1",
        "TENFOLD_AUTH__PASSWORD_MEMORY_COST": "8",
        "TENFOLD_AUTH__PASSWORD_PARALLELISM": "1",
    }.items():
        monkeypatch.setenv(name, value)
    app = make_app()
    async with app.router.lifespan_context(app):
        platform = app.state.tenfold
        users = platform.get(Users)
        ids = {}
        for name, roles in {
            "host": ["host"],
            "other_host": ["host"],
            "red1": ["player"],
            "blue1": ["player"],
            "green1": ["player"],
        }.items():
            ids[name] = (await users.create(name, PASSWORD, roles=roles)).id
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tourney.test") as c:
            headers = {}
            for name in ids:
                token = await c.post("/auth/token", json={"username": name, "password": PASSWORD})
                assert token.status_code == 200, token.text
                headers[name] = {"Authorization": f"Bearer {token.json()['access_token']}"}
            world = World(app, c, headers, users=ids)
            made = await world.ok("POST", "/api/tournaments", "host", json={"name": "Cup"})
            tid = world.tournament_id = made["id"]
            for team in ("Red", "Blue", "Green"):
                created = await world.ok(
                    "POST", f"/api/tournaments/{tid}/teams", "host", json={"name": team}
                )
                world.teams.append(created["id"])
            for user, team in zip(("red1", "blue1", "green1"), world.teams, strict=True):
                await world.ok(
                    "POST",
                    f"/api/tournaments/{tid}/players",
                    "host",
                    json={"team_id": team, "user_id": ids[user]},
                )
            game = await world.ok(
                "POST", f"/api/tournaments/{tid}/games", "host", json={"name": "Beer pong"}
            )
            world.game_id = game["id"]
            red, blue, green = world.teams
            for n, (home, away) in enumerate([(red, blue), (blue, green), (green, red)]):
                match = await world.ok(
                    "POST",
                    f"/api/tournaments/{tid}/matches",
                    "host",
                    json={
                        "game_id": world.game_id,
                        "home_team_id": home,
                        "away_team_id": away,
                        "scheduled_at": 1_800_000_000 + n * 600,
                    },
                )
                world.matches.append(match["id"])
            yield world
