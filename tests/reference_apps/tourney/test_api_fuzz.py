"""Schemathesis, every check on, authenticated as a player, over Tourney under `tenfold run`."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests._serving import REPO, tenfold_run
from tests.reference_apps._fuzz import fuzz

CONFIG = Path(__file__).with_name("schemathesis.toml")
ENV = {
    "TENFOLD_APP__NAME": "tourney",
    "TENFOLD_TOURNEY__DEMO": "true",
    "TENFOLD_TOURNEY__DEMO_INTERVAL": "60",  # seeded, but the fuzzer has the matches to itself
    "TENFOLD_AUTH__PASSWORD_TIME_COST": "1",
    "TENFOLD_AUTH__PASSWORD_MEMORY_COST": "8",
    "TENFOLD_AUTH__PASSWORD_PARALLELISM": "1",
    # The plan's 100/minute per user would answer most of the fuzzer's requests 429.
    "TENFOLD_TOURNEY__API_LIMIT": "100000/minute",
}


async def test_schemathesis_finds_no_failure_as_a_player(tmp_path: Path) -> None:
    app = ("--app-dir", str(REPO), "--app", "apps.tourney.main:make_app")
    log = tmp_path / "server.log"
    async with tenfold_run(tmp_path, *app, log=log, **ENV) as served:
        async with httpx.AsyncClient(base_url=served.base) as client:
            body = {"username": "red", "password": "beer-olympics"}
            response = await client.post("/auth/token", json=body)
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]
        await fuzz(served.base, token, CONFIG, tmp_path, examples=30)
