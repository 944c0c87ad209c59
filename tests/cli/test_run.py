"""`tenfold run` serves an app from the working directory, as `make run` does."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
TENFOLD = Path(sys.executable).with_name("tenfold")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _wait_up(url: str) -> None:
    async with httpx.AsyncClient(timeout=1.0) as client:
        for _ in range(300):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


async def test_run_serves_the_example_app_on_tenfold_port(tmp_path: Path) -> None:
    """The console script imports apps.hello from the working directory, on TENFOLD_PORT."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENFOLD_", "PYTHONPATH"))}
    env["TENFOLD_PORT"] = str(port)
    env["TENFOLD_DB__URL"] = f"sqlite+aiosqlite:///{tmp_path}/hello.db"
    proc = await asyncio.create_subprocess_exec(
        str(TENFOLD), "run", cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_up(f"{base}/health")
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/ready")).json()["status"] == "ok"
            created = await client.post("/notes", json={"body": "hello"})
            assert created.status_code == 201
            note = (await client.get(f"/notes/{created.json()['id']}")).json()
            assert note["body"] == "hello"
            missing = await client.get("/notes/999999")
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
            assert "tenfold_http_requests_total" in (await client.get("/metrics")).text
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert f"http://127.0.0.1:{port}" in err.decode()
