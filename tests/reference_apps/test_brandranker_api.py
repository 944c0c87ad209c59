"""Schemathesis, every check on and authenticated, against Brand Ranker under `tenfold run`."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import httpx

from tests._serving import REPO, tenfold_run

BIN = Path(sys.executable).parent
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
        st = await asyncio.create_subprocess_exec(
            BIN / "schemathesis", "--config-file", str(CONFIG), "run",
            f"{served.base}/openapi.json",
            "--checks", "all", "--max-examples", "50", "--workers", "1", "--seed", "1",
            "--header", f"Authorization: Bearer {token}",
            "--no-color",
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(st.communicate(), timeout=300)
    report = output.decode(errors="replace")
    assert st.returncode == 0, report[-8000:]
    summary = report.strip().splitlines()[-1]
    # Warnings remain by design: the analyst gets only 403s from the admin routes, and
    # a DELETE of a random key id finds nothing; neither is a failure.
    assert "failure" not in summary, report[-8000:]
    assert re.search(r"\b[1-9]\d* passed", report), report[-8000:]
