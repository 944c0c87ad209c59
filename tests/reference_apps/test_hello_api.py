"""Schemathesis, every check on, against the example app served by a real `tenfold run`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests._serving import REPO, tenfold_run

BIN = Path(sys.executable).parent
CONFIG = Path(__file__).with_name("schemathesis.toml")


async def test_schemathesis_finds_no_failure_with_every_check_on(tmp_path: Path) -> None:
    """Documented statuses, problem+json bodies and headers, no 500, valid data accepted."""
    app = ("--app-dir", str(REPO), "--app", "apps.hello.main:app")
    async with tenfold_run(tmp_path, *app) as served:
        # A fixed seed: the same cases on every run, so a failure reproduces. 50 examples per
        # operation, as for Brand Ranker's 18: this app has two.
        st = await asyncio.create_subprocess_exec(
            BIN / "schemathesis", "--config-file", str(CONFIG), "run",
            f"{served.base}/openapi.json",
            "--checks", "all", "--max-examples", "50", "--workers", "1", "--seed", "1",
            "--no-color",
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(st.communicate(), timeout=240)
    report = output.decode(errors="replace")
    assert st.returncode == 0, report[-6000:]
    assert "No issues found" in report
