"""The browser client (tenfold/realtime/static/tenfold-realtime.js), run under Node with a fake
WebSocket: cheap checks of its protocol logic until headless-browser tests exist."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import tenfold.realtime

SCRIPT = Path(tenfold.realtime.__file__).parent / "static" / "tenfold-realtime.js"
CHECK = Path(__file__).parent / "browser_client_check.js"


@pytest.fixture
def node() -> str:
    path = shutil.which("node")
    if path is None:
        if os.environ.get("CI") == "true":  # make test installs it; CI never skips
            pytest.fail("node is not installed (scripts/ensure-servers.sh installs nodejs)")
        pytest.skip("node is not installed")
    return path


def test_browser_client_parses(node: str) -> None:
    """The client is valid JavaScript."""
    subprocess.run([node, "--check", str(SCRIPT)], check=True, timeout=30)


def test_browser_client_protocol(node: str) -> None:
    """The client authenticates first, buffers pushes until subscribed, drops duplicates,
    recovers a gap from its last offset, resubscribes with recover after a 4000 close, reports
    resync (from a reply or a push), backs off with jitter and stops on 1008."""
    done = subprocess.run(
        [node, str(CHECK), str(SCRIPT)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("OK")
