"""Schemathesis, every check on and authenticated, against Brand Ranker under `tenfold run`."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests._serving import REPO, tenfold_run
from tests.reference_apps._fuzz import fuzz

CONFIG = Path(__file__).with_name("schemathesis.toml")
PASSWORD = "a long enough password"
FAST_HASH = {
    "TENFOLD_AUTH__PASSWORD_TIME_COST": "1",
    "TENFOLD_AUTH__PASSWORD_MEMORY_COST": "8",
    "TENFOLD_AUTH__PASSWORD_PARALLELISM": "1",
    "TENFOLD_APP__NAME": "brandranker",
}


async def test_schemathesis_finds_no_failure_authenticated(tmp_path: Path) -> None:
    """Logged in as an analyst: documented statuses, problem+json errors, no 500."""
    app = ("--app-dir", str(REPO), "--app", "apps.brandranker.main:make_app")
    # The server's log goes to a file: a pipe nobody reads would fill and stall it.
    log = tmp_path / "server.log"
    async with tenfold_run(tmp_path, *app, log=log, **FAST_HASH) as served:
        async with httpx.AsyncClient(base_url=served.base) as client:
            body = {"username": "fuzzer", "password": PASSWORD}
            assert (await client.post("/api/signup", json=body)).status_code == 201
            token = (await client.post("/auth/token", json=body)).json()["access_token"]
        # Warnings remain by design: the analyst gets only 403s from the admin routes, and
        # a DELETE of a random key id finds nothing; neither is a failure.
        await fuzz(served.base, token, CONFIG, tmp_path, examples=50)
