"""Schemathesis, every check on, authenticated as a player, over Tourney under `tenfold run`."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import httpx

from tests._serving import REPO, tenfold_run

BIN = Path(sys.executable).parent
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
        st = await asyncio.create_subprocess_exec(
            BIN / "schemathesis", "--config-file", str(CONFIG), "run",
            f"{served.base}/openapi.json",
            "--checks", "all", "--max-examples", "30", "--workers", "1", "--seed", "1",
            "--header", f"Authorization: Bearer {token}",
            "--no-color",
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(st.communicate(), timeout=300)
    report = output.decode(errors="replace")
    assert st.returncode == 0, report[-8000:]
    summary = report.strip().splitlines()[-1]
    assert "failure" not in summary, report[-8000:]
    assert re.search(r"\b[1-9]\d* passed", report), report[-8000:]
