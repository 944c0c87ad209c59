"""Schemathesis, every check on, against the example app served by a real `tenfold run`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from tenfold.testing import allocate_port, release_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONFIG = Path(__file__).with_name("schemathesis.toml")


async def _wait_up(url: str) -> None:
    async with httpx.AsyncClient(timeout=1.0) as client:
        for _ in range(300):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


async def test_schemathesis_finds_no_failure_with_every_check_on(tmp_path: Path) -> None:
    """Documented statuses, problem+json bodies and headers, no 500, valid data accepted."""
    port = allocate_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENFOLD_", "PYTHONPATH"))}
    env |= {"TENFOLD_PORT": str(port), "TENFOLD_DB__URL": f"sqlite+aiosqlite:///{tmp_path}/h.db"}
    server = await asyncio.create_subprocess_exec(
        BIN / "tenfold", "run", "--app-dir", str(REPO), "--app", "apps.hello.main:app",
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_up(f"{base}/health")
        # A fixed seed: the same cases on every run, so a failure reproduces.
        st = await asyncio.create_subprocess_exec(
            BIN / "schemathesis", "--config-file", str(CONFIG), "run", f"{base}/openapi.json",
            "--checks", "all", "--max-examples", "100", "--workers", "1", "--seed", "1",
            "--no-color",
            cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(st.communicate(), timeout=240)
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), timeout=30)
        release_port(port)
    report = output.decode(errors="replace")
    assert st.returncode == 0, report[-6000:]
    assert "No issues found" in report
