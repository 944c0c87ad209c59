"""Schemathesis, every check on, as one logged-in user, over an app served by `tenfold run`."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


async def fuzz(base: str, token: str, config: Path, cwd: Path, *, examples: int) -> str:
    """Run schemathesis against ``base``'s OpenAPI with ``token`` as the bearer; the report.

    Fails (assert) on any failure; warnings (routes that answer this user only 403 or
    404, say) are allowed."""
    st = await asyncio.create_subprocess_exec(
        BIN / "schemathesis", "--config-file", str(config), "run", f"{base}/openapi.json",
        "--checks", "all", "--max-examples", str(examples), "--workers", "1", "--seed", "1",
        "--header", f"Authorization: Bearer {token}", "--no-color",
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(st.communicate(), timeout=300)
    report = output.decode(errors="replace")
    assert st.returncode == 0, report[-8000:]
    assert "failure" not in report.strip().splitlines()[-1], report[-8000:]
    assert re.search(r"\b[1-9]\d* passed", report), report[-8000:]
    return report
