"""The load side's frame adapters: subscribing and unpacking, against a WebSocket server here.

The server is a real ``websockets`` server on a loopback port that speaks the
part of each wire format the adapter needs, and the clients are the load side's
own (picows); no tenfold server is involved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from benchmarks._realtime_load import ADAPTERS, PushFrames, RawFrames, connect_socket

Handler = Callable[[ServerConnection], object]


async def _url(handler: Handler) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def _protocol_v1(ws: ServerConnection) -> None:
    """Answers each subscribe (refusing ``secret``), after an unrelated push first."""
    async for frame in ws:
        request = orjson.loads(frame)
        await ws.send(orjson.dumps({"push": {"channel": "other", "pubs": []}}).decode())
        channel = request["subscribe"]["channel"]
        if channel == "secret":
            error = {"code": 403, "message": f"not allowed to subscribe to {channel}"}
            await ws.send(orjson.dumps({"id": request["id"], "error": error}).decode())
        else:
            result = {"channel": channel, "epoch": "e1", "offset": 0}
            await ws.send(orjson.dumps({"id": request["id"], "result": result}).decode())


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[object]:
    """A load-side client connection to ``url``, closed after the block."""
    socket = await connect_socket(url)
    try:
        yield socket
    finally:
        await socket.close()


@pytest.fixture
async def v1_url() -> AsyncIterator[str]:
    """A server answering protocol v1 subscribe frames."""
    async for url in _url(_protocol_v1):
        yield url


def test_adapters_are_named_by_wire_format() -> None:
    """The raw and push adapters are registered under the names sides give."""
    assert isinstance(ADAPTERS["raw"], RawFrames)
    assert isinstance(ADAPTERS["push"], PushFrames)


async def test_push_adapter_subscribes_and_waits_for_its_reply(v1_url: str) -> None:
    """The push adapter sends a subscribe frame and returns on its reply, past other frames."""
    async with connect(v1_url) as ws:
        await PushFrames().subscribe(ws, "tournament:42")


async def test_push_adapter_raises_on_a_refused_subscription(v1_url: str) -> None:
    """An error reply to the subscribe frame fails the client, naming the channel."""
    async with connect(v1_url) as ws:
        with pytest.raises(RuntimeError, match="secret"):
            await PushFrames().subscribe(ws, "secret")


def test_push_adapter_unpacks_every_publication_of_a_batch() -> None:
    """A push frame yields (seq, sent_at) for each of its pubs, in order; a resync yields none."""
    pubs = [{"offset": 18 + i, "data": {"seq": i, "t": 100.0 + i}} for i in range(3)]
    frame = orjson.dumps({"push": {"channel": "c", "epoch": "e", "pubs": pubs}})
    assert list(PushFrames().unpack(frame)) == [(0, 100.0), (1, 101.0), (2, 102.0)]
    resync = orjson.dumps({"push": {"channel": "c", "resync": True}})
    assert list(PushFrames().unpack(resync)) == []


async def test_raw_adapter_waits_for_the_subscription_then_unpacks_one_per_frame() -> None:
    """The raw adapter needs the server's subscribed frame for its channel; a frame is one pub."""

    async def hello(ws: ServerConnection) -> None:
        await ws.send(orjson.dumps({"subscribed": "tournament:42"}).decode())
        await ws.wait_closed()

    async for url in _url(hello):
        async with connect(url) as ws:
            await RawFrames().subscribe(ws, "tournament:42")
        async with connect(url) as ws:
            with pytest.raises(RuntimeError, match="elsewhere"):
                await RawFrames().subscribe(ws, "elsewhere")
    assert list(RawFrames().unpack(b'{"seq": 7, "t": 1.5}')) == [(7, 1.5)]
