"""The realtime peer: what a FastAPI user assembles today, FastAPI WebSockets with broadcaster.

The app is the pattern of broadcaster's own README (encode/broadcaster 0.3.1 on
Redis pub/sub): a WebSocket endpoint that subscribes to its channel and forwards
each message as one text frame, beside a receiver that notices the client
leaving. After subscribing it sends one ``{"subscribed": channel}`` frame, so
the load side knows no publication can slip past before it (broadcaster gives
no other acknowledgement).

Publications do not go through this app: the benchmark publishes with
``Broadcast(redis_url).publish(channel, message)`` from its own process, as an
app's worker or another service publishes an update. A POST handler doing the
same would add only an HTTP request's cost, on the publishing side.

    uvicorn --factory benchmarks._realtime_peer:make_app   (BENCH_REALTIME_REDIS_URL set)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import orjson
from broadcaster import Broadcast
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

#: The Redis the app's ``Broadcast`` is connected to.
REDIS_URL_ENV = "BENCH_REALTIME_REDIS_URL"
#: Held subscribed for the app's lifetime; see ``make_app``.
LISTENER_CHANNEL = "bench:listener"
#: The WebSocket path; the channel is its last segment.
PATH = "/ws/{channel}"


def make_app() -> FastAPI:
    """The peer's app, on the Redis named by ``BENCH_REALTIME_REDIS_URL``.

    broadcaster's Redis listener wakes when its first channel is subscribed and,
    with redis-py 8, runs before redis-py has recorded that subscription: it
    finds nothing subscribed, stops, and waits for the next *new* channel, so the
    first channel's messages never arrive (checked: a subscribed client got
    nothing). Holding one channel subscribed from startup, as an app that met
    this would, keeps the listener running for every channel after it.
    """
    broadcast = Broadcast(os.environ[REDIS_URL_ENV])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with broadcast, broadcast.subscribe(LISTENER_CHANNEL):
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def ready() -> dict[str, bool]:
        return {"ok": True}

    @app.websocket(PATH)
    async def subscribe(websocket: WebSocket, channel: str) -> None:
        await websocket.accept()
        async with anyio.create_task_group() as tasks:

            async def receive() -> None:
                try:
                    async for _ in websocket.iter_text():
                        pass
                except WebSocketDisconnect:
                    pass
                tasks.cancel_scope.cancel()

            async def send() -> None:
                async with broadcast.subscribe(channel) as subscriber:
                    await websocket.send_text(orjson.dumps({"subscribed": channel}).decode())
                    async for event in subscriber:  # type: ignore[union-attr]
                        await websocket.send_text(event.message)

            tasks.start_soon(receive)
            tasks.start_soon(send)

    return app
