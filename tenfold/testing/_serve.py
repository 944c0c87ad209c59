"""``serve_asgi(app)``: an ASGI app served by uvicorn on a loopback port, in the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from tenfold.testing._ports import allocate_port, release_port

__all__ = ["serve_asgi"]


class _Server(uvicorn.Server):
    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # Ctrl-C and SIGTERM stay the test runner's


@asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port while the block runs; yields its base URL.

    For fake upstream services: the app under test calls it over real
    sockets, so timeouts, retries and breakers behave as they would in
    production. The server runs as a task on the current event loop and is
    shut down (its connections closed) when the block ends.
    """
    port = allocate_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="auto"
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # the reason it could not start
                raise RuntimeError(f"the server on port {port} stopped before it started")
            await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        release_port(port)
