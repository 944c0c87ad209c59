"""Realtime apps served on loopback, and a bare protocol client for the endpoint tests."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tenfold import CoreSettings, create_app
from tenfold.realtime import RealtimeExtension
from tenfold.testing import serve_asgi


class Peer:
    """One WebSocket speaking the protocol: requests by id, pushes kept in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.pushes: list[dict[str, Any]] = []
        self.replies: dict[int, dict[str, Any]] = {}

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = next(self._ids)
        await self.ws.send(orjson.dumps({"id": request_id, method: params or {}}).decode())
        async with asyncio.timeout(10):
            while request_id not in self.replies:
                await self._read()
        return self.replies.pop(request_id)

    async def _read(self) -> None:
        frame = orjson.loads(await self.ws.recv())
        if "push" in frame:
            self.pushes.append(frame["push"])
        else:
            self.replies[frame["id"]] = frame

    async def offsets(self, channel: str, count: int) -> list[int]:
        """The offsets pushed on ``channel`` once there are ``count`` of them."""
        async with asyncio.timeout(10):
            while len(self._offsets(channel)) < count:
                await self._read()
        return self._offsets(channel)

    def _offsets(self, channel: str) -> list[int]:
        return [
            p["offset"]
            for push in self.pushes
            if push["channel"] == channel
            for p in push.get("pubs", [])
        ]


async def close_code(ws: ClientConnection, timeout: float = 10) -> int | None:  # noqa: ASYNC109
    """Read until the server closes the connection; the close code it sent."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


@asynccontextmanager
async def peer(url: str, *, rcvbuf: int | None = None, **options: Any) -> AsyncIterator[Peer]:
    """A protocol client on ``url``; ``rcvbuf`` pins its socket's receive buffer (the kernel
    would otherwise grow it to tens of MiB for a client that stops reading)."""
    if rcvbuf is not None:
        host, port = urlsplit(url).hostname, urlsplit(url).port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        options["sock"] = sock
    async with connect(url, open_timeout=5, close_timeout=2, **options) as ws:
        yield Peer(ws)


@asynccontextmanager
async def realtime_app(settings: CoreSettings, **extension: Any) -> AsyncIterator[tuple[str, Any]]:
    """A started app with the realtime extension on a loopback port: (ws URL, app)."""
    app = create_app(settings, extensions=[RealtimeExtension(**extension)], configure_logs=False)
    async with serve_asgi(app) as base:
        yield base.replace("http://", "ws://") + "/realtime", app
