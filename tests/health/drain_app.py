"""An app for the drain test, served by the real `tenfold run` (not a test module).

``/slow`` touches the file named by ``DRAIN_TEST_STARTED`` and then waits for
SIGUSR1, so the test decides when the in-flight request may finish.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from fastapi import APIRouter

from tenfold import Platform, create_app

router = APIRouter()
_release: dict[str, asyncio.Event] = {}


async def _install_release(platform: Platform) -> None:
    event = _release["event"] = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, event.set)


@router.get("/slow")
async def slow() -> dict[str, bool]:
    await asyncio.to_thread(Path(os.environ["DRAIN_TEST_STARTED"]).touch)
    await _release["event"].wait()
    return {"done": True}


app = create_app(routers=[router], on_startup=[_install_release])
