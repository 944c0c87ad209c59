"""`tenfold run` as a test's subprocess: started on a free loopback port, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tenfold.testing import allocate_port, release_port

REPO = Path(__file__).resolve().parents[1]
TENFOLD = Path(sys.executable).with_name("tenfold")
# What the parent's environment must not lend the server: its settings are the test's.
_NOT_INHERITED = ("TENFOLD_", "PYTHONPATH", "PROMETHEUS_", "FORWARDED_ALLOW_IPS")


async def wait_up(url: str) -> None:
    """Return once ``url`` answers 200; fail after about 15 s."""
    async with httpx.AsyncClient(timeout=1.0) as client:
        for _ in range(300):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


class Served:
    """A running `tenfold run`: its base URL, and its stderr once it has stopped."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.port = int(base.rsplit(":", 1)[1])
        self.stderr = ""


@asynccontextmanager
async def tenfold_run(
    tmp_path: Path, *args: str, log: Path | None = None, **env: str
) -> AsyncIterator[Served]:
    """`tenfold run *args` from the repository with ``TENFOLD_*`` ``env``.

    The database defaults to SQLite in ``tmp_path``. With ``log``, the server's
    output goes to that file as it runs (readable during the test); otherwise
    ``served.stderr`` holds it once the server has stopped.
    """
    port = allocate_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
    environ["TENFOLD_PORT"] = str(port)
    environ.setdefault("TENFOLD_DB__URL", f"sqlite+aiosqlite:///{tmp_path}/hello.db")
    environ.update(env)
    out = log.open("wb") if log is not None else asyncio.subprocess.PIPE
    try:
        proc = await asyncio.create_subprocess_exec(
            str(TENFOLD), "run", *args, cwd=REPO, env=environ, stdout=out, stderr=out
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]  # the child holds its own copy
    served = Served(f"http://127.0.0.1:{port}")
    try:
        await wait_up(f"{served.base}/health")
        yield served
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        served.stderr = err.decode() if err else ""
        release_port(port)
