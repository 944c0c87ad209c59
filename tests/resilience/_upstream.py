"""A fake upstream: a small Starlette app served by uvicorn on loopback in a thread.

Tests steer it through its attributes: ``mode`` ("ok", "fail", "stall",
"429"), ``quota_15m`` (advertise a Strava-style 15-minute quota) and
``retry_after``; it counts the requests it received and keeps their headers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class FakeUpstream:
    """The fake provider's state and its ASGI app."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.quota_15m: int | None = None
        self.retry_after: str | None = None
        self.stall_seconds = 1.0
        self.requests = 0
        self.seen_headers: list[dict[str, str]] = []
        self.url = ""
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    async def _handle(self, request: Request) -> JSONResponse:
        self.requests += 1
        self.seen_headers.append(dict(request.headers))
        headers: dict[str, str] = {}
        if self.quota_15m is not None:
            headers["X-RateLimit-Limit"] = f"{self.quota_15m},1000"
            headers["X-RateLimit-Usage"] = f"{self.requests},{self.requests}"
        if self.retry_after is not None:
            headers["Retry-After"] = self.retry_after
        if self.mode == "stall":
            await asyncio.sleep(self.stall_seconds)
        if self.mode == "fail":
            return JSONResponse({"error": "down"}, status_code=503, headers=headers)
        if self.mode == "429":
            return JSONResponse({"error": "slow down"}, status_code=429, headers=headers)
        return JSONResponse({"n": self.requests}, headers=headers)


@contextmanager
def serve_upstream() -> Iterator[FakeUpstream]:
    """Run a ``FakeUpstream`` on a free loopback port until the block exits."""
    upstream = FakeUpstream()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        upstream.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake upstream did not start")
        time.sleep(0.01)
    upstream.url = f"http://127.0.0.1:{port}"
    try:
        yield upstream
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
