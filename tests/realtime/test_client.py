"""RealtimeClient against a small protocol-speaking fake server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tenfold import TenfoldError
from tenfold.realtime import (
    RealtimeClient,
    RealtimeClosed,
    RealtimeError,
    StreamPosition,
)

Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def fake_server(handler: Handler, **options: Any) -> AsyncIterator[str]:
    """A WebSocket server on 127.0.0.1 running ``handler`` per connection; yields its URL."""
    async with serve(handler, "127.0.0.1", 0, **options) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/realtime"


async def receive(ws: ServerConnection) -> dict[str, Any]:
    return json.loads(await ws.recv())


async def send(ws: ServerConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


def push(channel: str, epoch: str, *offsets: int) -> dict[str, Any]:
    pubs = [{"offset": offset, "data": {"n": offset}} for offset in offsets]
    return {"push": {"channel": channel, "epoch": epoch, "pubs": pubs}}


def subscribed(frame: dict[str, Any], offset: int, **extra: Any) -> dict[str, Any]:
    channel = frame["subscribe"]["channel"]
    result = {"channel": channel, "epoch": "e1", "offset": offset, "recovered": False}
    return {"id": frame["id"], "result": {**result, "resync": False, "pubs": [], **extra}}


async def test_replies_are_matched_by_id_out_of_order() -> None:
    """Two requests in flight get their own replies though the server answers the second first."""

    async def handler(ws: ServerConnection) -> None:
        first, second = await receive(ws), await receive(ws)
        for frame in (second, first):
            await send(ws, {"id": frame["id"], "result": {"echo": frame["publish"]["data"]}})
        await ws.wait_closed()

    async with fake_server(handler) as url, RealtimeClient(url) as client:
        one, two = await asyncio.gather(client.publish("c", "one"), client.publish("c", "two"))
    assert (one, two) == ({"echo": "one"}, {"echo": "two"})


async def test_pushes_go_to_their_channel_and_move_positions() -> None:
    """Interleaved pushes of two channels reach each channel's iterator in order, and
    ``positions`` holds the last offset and epoch of each."""

    async def handler(ws: ServerConnection) -> None:
        for offset in (5, 10):
            await send(ws, subscribed(await receive(ws), offset))
        for frame in (push("a", "e1", 6), push("b", "e1", 11, 12), push("a", "e1", 7)):
            await send(ws, frame)
        await ws.wait_closed()

    async with fake_server(handler) as url, RealtimeClient(url) as client:
        assert (await client.subscribe("a"))["offset"] == 5
        await client.subscribe("b")
        a = [item["offset"] async for item in _take(client.publications("a"), 2)]
        b = [item["data"] async for item in _take(client.publications("b"), 2)]
        assert a == [6, 7]
        assert b == [{"n": 11}, {"n": 12}]
        assert client.positions == {"a": StreamPosition(7, "e1"), "b": StreamPosition(12, "e1")}


async def test_recovered_publications_precede_later_pushes() -> None:
    """A subscribe recovering from a position sends recover, offset and epoch; the recovered
    publications come out of the iterator before the next push, then a resync push shows."""
    seen: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        frame = await receive(ws)
        seen.append(frame["subscribe"])
        pubs = [{"offset": 4, "data": 4}, {"offset": 5, "data": 5}]
        await send(ws, subscribed(frame, 5, recovered=True, pubs=pubs))
        await send(ws, push("a", "e1", 6))
        await send(ws, {"push": {"channel": "a", "resync": True}})
        await ws.wait_closed()

    async with fake_server(handler) as url, RealtimeClient(url) as client:
        result = await client.subscribe("a", recover_from=StreamPosition(3, "e1"))
        items = [item async for item in _take(client.publications("a"), 4)]
    assert seen == [{"channel": "a", "recover": True, "offset": 3, "epoch": "e1"}]
    assert result["recovered"] is True
    assert [item.get("offset") for item in items[:3]] == [4, 5, 6]
    assert items[3] == {"resync": True}


async def test_a_resync_push_moves_the_position() -> None:
    """After a resync push the channel's position is the push's offset and epoch."""

    async def handler(ws: ServerConnection) -> None:
        await send(ws, subscribed(await receive(ws), 7))
        await send(ws, {"push": {"channel": "a", "epoch": "e2", "offset": 0, "resync": True}})
        await ws.wait_closed()

    async with fake_server(handler) as url, RealtimeClient(url) as client:
        await client.subscribe("a")
        assert [item async for item in _take(client.publications("a"), 1)] == [{"resync": True}]
        assert client.positions["a"] == StreamPosition(0, "e2")


async def test_error_reply_raises_realtime_error() -> None:
    """An error reply raises RealtimeError with the server's code and message, a TenfoldError."""

    async def handler(ws: ServerConnection) -> None:
        frame = await receive(ws)
        error = {"code": 403, "message": "not allowed to subscribe to secret"}
        await send(ws, {"id": frame["id"], "error": error})
        await ws.wait_closed()

    async with fake_server(handler) as url, RealtimeClient(url) as client:
        with pytest.raises(RealtimeError) as caught:
            await client.subscribe("secret")
    assert isinstance(caught.value, TenfoldError)
    assert (caught.value.code, caught.value.message) == (403, "not allowed to subscribe to secret")


async def test_server_close_is_recorded_and_ends_waiting() -> None:
    """A server closing with 4000 sets close_code, fails the request in flight with
    RealtimeClosed(4000) and ends the channel iterators."""

    async def handler(ws: ServerConnection) -> None:
        await receive(ws)  # a ping it never answers
        await ws.close(4000, "reconnect elsewhere")

    async with fake_server(handler) as url, RealtimeClient(url) as client:
        with pytest.raises(RealtimeClosed) as caught:
            await client.ping()
        assert await client.wait_closed() == 4000
        assert [item async for item in client.publications("a")] == []
    assert (caught.value.code, client.close_code) == (4000, 4000)
    assert client.close_reason == "reconnect elsewhere"


async def test_a_frame_outside_the_protocol_closes_with_1002() -> None:
    """A server frame that is not a protocol object fails the waiting request and is
    recorded as close code 1002 instead of crashing the reader."""

    async def handler(ws: ServerConnection) -> None:
        await receive(ws)
        await ws.send("not json")
        await ws.wait_closed()

    async with fake_server(handler) as url, RealtimeClient(url) as client:
        with pytest.raises(RealtimeClosed):
            await client.ping()
    assert client.close_code == 1002


async def test_token_headers_and_origin_reach_the_server() -> None:
    """The token is sent in a connect frame before anything else; headers and Origin travel
    on the HTTP upgrade."""
    seen: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen.extend([ws.request.headers["Origin"], ws.request.headers["Cookie"]])
        for _ in range(2):
            frame = await receive(ws)
            seen.append(frame)
            await send(ws, {"id": frame["id"], "result": {}})
        await ws.wait_closed()

    headers = {"Cookie": "session=abc"}
    options = {"token": "t0k", "headers": headers, "origin": "https://app.example"}
    async with fake_server(handler) as url, RealtimeClient(url, **options) as client:
        await client.ping()
    assert seen[:2] == ["https://app.example", "session=abc"]
    assert [frame["id"] for frame in seen[2:]] == [1, 2]
    assert seen[2]["connect"] == {"token": "t0k"}
    assert seen[3]["ping"] == {}


async def test_refused_token_raises_and_closes() -> None:
    """A connect frame answered with 401 raises RealtimeError(401) from ``async with`` and
    closes the connection."""

    async def handler(ws: ServerConnection) -> None:
        frame = await receive(ws)
        await send(ws, {"id": frame["id"], "error": {"code": 401, "message": "bad token"}})
        await ws.wait_closed()

    async with fake_server(handler) as url:
        client = RealtimeClient(url, token="expired")
        with pytest.raises(RealtimeError) as caught:
            async with client:
                pass
    assert caught.value.code == 401
    assert client.close_code == 1000


async def test_refused_upgrade_raises_realtime_error() -> None:
    """An upgrade refused with HTTP 403 raises RealtimeError(403), not a websockets error."""

    async def handler(ws: ServerConnection) -> None:
        raise AssertionError("never accepted")

    def refuse(connection: ServerConnection, request: Any) -> Any:
        return connection.respond(HTTPStatus.FORBIDDEN, "origin refused\n")

    async with fake_server(handler, process_request=refuse) as url:
        with pytest.raises(RealtimeError) as caught:
            async with RealtimeClient(url):
                pass
    assert caught.value.code == 403


async def _take(items: AsyncIterator[dict[str, Any]], count: int) -> AsyncIterator[dict[str, Any]]:
    async with asyncio.timeout(10):
        async for item in items:
            yield item
            count -= 1
            if count == 0:
                return
