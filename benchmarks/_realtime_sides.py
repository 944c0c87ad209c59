"""The sides ``bench_realtime`` measures: each a function serving its channel.

A side is ``serve(bench, processes, batch_ms)``, an async context manager that
starts ``processes`` server processes serving ``CHANNEL`` (applying ``batch_ms``
of batching if it batches) and yields a ``Deployment``: the servers' WebSocket
URLs and pids, the load side's frame adapter for its wire format, and a
``publish`` coroutine function. ``bench_realtime.SIDES`` names them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from broadcaster import Broadcast

from benchmarks import _realtime_peer
from benchmarks._wrk import Server, uvicorn_server

#: The side every other is compared with.
PEER = "broadcaster"
#: The one channel every fan-out publishes into.
CHANNEL = "tournament:42"


@dataclass(slots=True)
class Bench:
    """What every section works with: the options, the Redis, and a place for files."""

    args: argparse.Namespace
    redis_url: str
    workdir: Path


@dataclass(frozen=True, slots=True)
class Deployment:
    """One side serving ``CHANNEL``: where subscribers connect, how they speak, how to publish."""

    #: One WebSocket URL per server process, each subscribing to ``CHANNEL``'s publications.
    urls: list[str]
    pids: list[int]
    #: The load side's frame adapter (a key of ``_realtime_load.ADAPTERS``).
    adapter: str
    #: Publishes one publication (``{"seq": ..., "t": ...}``) into ``CHANNEL``.
    publish: Callable[[dict[str, Any]], Awaitable[None]]
    #: The batching window the side applies, in ms (0: a frame per publication).
    batch_ms: float


#: A side: ``serve(bench, processes, batch_ms)`` serves ``CHANNEL`` until the context exits.
Serve = Callable[[Bench, int, float], contextlib.AbstractAsyncContextManager[Deployment]]


@contextlib.asynccontextmanager
async def peer_side(bench: Bench, processes: int, batch_ms: float) -> AsyncIterator[Deployment]:
    """FastAPI + broadcaster in ``processes`` uvicorn processes; it never batches."""
    env = {_realtime_peer.REDIS_URL_ENV: bench.redis_url}
    path = _realtime_peer.PATH.format(channel=CHANNEL)
    async with uvicorn_servers("benchmarks._realtime_peer:make_app", processes, env) as servers:
        broadcast = Broadcast(bench.redis_url)
        await broadcast.connect()

        async def publish(data: dict[str, Any]) -> None:
            await broadcast.publish(CHANNEL, orjson.dumps(data).decode())

        try:
            yield Deployment(
                urls=[s.url.replace("http://", "ws://") + path for s in servers],
                pids=[s.pid for s in servers],
                adapter="raw",
                publish=publish,
                batch_ms=0.0,
            )
        finally:
            await broadcast.disconnect()


@contextlib.asynccontextmanager
async def tenfold_side(bench: Bench, processes: int, batch_ms: float) -> AsyncIterator[Deployment]:
    """``tenfold.realtime`` in ``processes`` uvicorn processes over the same Redis; the
    benchmark publishes through a platform of its own, as a worker or a projection would."""
    from benchmarks import _realtime_tenfold as app
    from tenfold import CoreSettings, Platform, RedisSettings, Settings
    from tenfold.realtime import Realtime, RealtimeExtension, RealtimeSettings

    env = {
        **app.ENV,
        "TENFOLD_REDIS__URL": bench.redis_url,
        "TENFOLD_REALTIME__BATCH_WINDOW": str(batch_ms / 1000),
        "TENFOLD_DB__URL": f"sqlite+aiosqlite:///{bench.workdir}/realtime.db",
    }
    composed = CoreSettings.compose([*Settings.sections.items(), ("realtime", RealtimeSettings)])
    settings = composed.load(
        app={"name": app.APP_NAME},
        db={"url": env["TENFOLD_DB__URL"]},
        redis=RedisSettings(url=bench.redis_url),
    )
    publisher = Platform.build(settings, extensions=[RealtimeExtension()], configure_logs=False)
    async with uvicorn_servers(
        "benchmarks._realtime_tenfold:make_app",
        processes,
        env,
        extra_args=["--ws-per-message-deflate", "false"],
        ready_path="/ready",
    ) as servers:
        await publisher.start()
        realtime = publisher.get(Realtime)

        async def publish(data: dict[str, Any]) -> None:
            await realtime.publish(CHANNEL, data)

        try:
            yield Deployment(
                urls=[s.url.replace("http://", "ws://") + "/realtime" for s in servers],
                pids=[s.pid for s in servers],
                adapter="push",
                publish=publish,
                batch_ms=batch_ms,
            )
        finally:
            await publisher.stop()


@contextlib.asynccontextmanager
async def uvicorn_servers(
    app: str,
    processes: int,
    env: dict[str, str],
    *,
    extra_args: list[str] | None = None,
    ready_path: str = "/",
) -> AsyncIterator[list[Server]]:
    """``processes`` uvicorn servers of the factory ``app``, each started and stopped in a
    thread of its own (together: their imports are most of a start)."""
    servings = [
        uvicorn_server(app, env=env, extra_args=extra_args or (), ready_path=ready_path)
        for _ in range(processes)
    ]
    started = await asyncio.gather(
        *(asyncio.to_thread(serving.__enter__) for serving in servings), return_exceptions=True
    )
    running = [s for s, got in zip(servings, started, strict=True) if isinstance(got, Server)]
    try:
        for got in started:
            if isinstance(got, BaseException):
                raise got
        yield [got for got in started if isinstance(got, Server)]
    finally:
        await asyncio.gather(
            *(asyncio.to_thread(serving.__exit__, None, None, None) for serving in running)
        )
