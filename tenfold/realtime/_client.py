"""``RealtimeClient``: the realtime WebSocket protocol (v1) from Python, for tests, scripts
and benchmarks.

    async with RealtimeClient("ws://127.0.0.1:8000/realtime", token=token) as client:
        await client.subscribe("tournament:42")
        async for item in client.publications("tournament:42"):
            ...  # {"offset": 18, "epoch": "a1b2c3d4", "data": {...}} or {"resync": True}

One asyncio task reads each connection: replies resolve the request with the
same id (in whatever order they come), pushes go to per-channel queues. There
is no thread per connection and no reconnection: a test that wants to resume
opens a new client and passes it the old one's ``positions``.

    TenfoldError
    └── RealtimeError            an error reply: ``code`` (400, 401, 403, 404, 409, 429, 500)
        └── RealtimeClosed       the connection closed: ``code`` is the close code
    DependencyUnavailable        the server could not be reached (connect, TLS, timeout)
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tenfold._errors import DependencyUnavailable, TenfoldError
from tenfold.realtime._model import StreamPosition

__all__ = ["RealtimeClient", "RealtimeClosed", "RealtimeError"]

_CLOSED = object()  # ends a channel's queue once the connection is gone


class RealtimeError(TenfoldError):
    """The server answered a request with an error: ``code`` and ``message`` as sent."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message, code=code)
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"


class RealtimeClosed(RealtimeError):
    """The connection closed before the reply came; ``code`` is the WebSocket close code."""


class RealtimeClient:
    """One connection speaking the realtime protocol (see the module doc).

    ``token`` is sent in a ``connect`` frame first; ``headers`` (cookies,
    ``Authorization``) and ``origin`` go on the HTTP upgrade. Per-channel
    queues are unbounded: a test that never reads a channel keeps its pushes.
    ``compression`` is off by default because a deflate context costs tens of
    kilobytes per connection, which adds up in a 1,000-connection benchmark.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        origin: str | None = None,
        compression: str | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.token = token
        self.headers = dict(headers or {})
        self.origin = origin
        self.compression = compression
        self.open_timeout = open_timeout
        self.positions: dict[str, StreamPosition] = {}
        self.close_code: int | None = None
        self.close_reason = ""
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], str, Any]] = {}
        self._queues: dict[str, asyncio.Queue[Any]] = {}

    def __repr__(self) -> str:
        state = "open" if self.close_code is None else f"closed={self.close_code}"
        return f"<RealtimeClient {self.url} {state} channels={len(self._queues)}>"

    async def __aenter__(self) -> RealtimeClient:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, start reading, and authenticate with ``token`` if one was given."""
        try:
            self._ws = await connect(
                self.url,
                origin=self.origin,  # type: ignore[arg-type]
                additional_headers=self.headers,
                compression=self.compression,
                open_timeout=self.open_timeout,
                # The protocol has its own ping (``ping()``); a keepalive task per
                # connection would only add load to benchmarks.
                ping_interval=None,
                proxy=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise RealtimeError(
                status, f"the WebSocket upgrade was refused: HTTP {status}"
            ) from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise DependencyUnavailable(
                f"cannot open a WebSocket to {self.url}", dependency="realtime"
            ) from exc
        self._reader = asyncio.create_task(self._read(self._ws))
        if self.token is not None:
            try:
                await self.request("connect", {"token": self.token})
            except RealtimeError:
                await self.close()  # ``async with`` never reaches __aexit__ from here
                raise

    async def close(self) -> None:
        """Close the connection (code 1000) and wait for the reader to finish."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader

    async def wait_closed(self) -> int | None:
        """Wait until the server closes the connection; return its close code."""
        if self._reader is not None:
            await asyncio.shield(self._reader)
        return self.close_code

    # -- requests ------------------------------------------------------------------------

    async def request(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Send ``{"id": n, method: params}`` and return the reply's result.

        Raises ``RealtimeError`` for an error reply, ``RealtimeClosed`` if the
        connection closes first.
        """
        if self._ws is None or self.close_code is not None:
            raise RealtimeClosed(self.close_code or 1006, "the connection is not open")
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (future, method, params)
        try:
            frame = orjson.dumps({"id": request_id, method: dict(params or {})})
            await self._ws.send(frame, text=True)
            return await future
        except ConnectionClosed as exc:
            raise self._closed_error() from exc
        finally:
            self._pending.pop(request_id, None)

    async def subscribe(self, channel: str, recover_from: StreamPosition | None = None) -> Any:
        """Subscribe; with ``recover_from``, ask for the publications after that position.

        Recovered publications (or a ``{"resync": True}`` item) are also put in
        the channel's queue, before any later push, so ``publications()`` reads
        one ordered stream.
        """
        params: dict[str, Any] = {"channel": channel}
        if recover_from is not None:
            params.update(recover=True, offset=recover_from.offset, epoch=recover_from.epoch)
        self._queue(channel)
        return await self.request("subscribe", params)

    async def resume(self, positions: Mapping[str, StreamPosition]) -> dict[str, Any]:
        """Subscribe to each channel recovering from its position (another client's
        ``positions``); return each channel's subscribe result."""
        return {channel: await self.subscribe(channel, pos) for channel, pos in positions.items()}

    async def unsubscribe(self, channel: str) -> Any:
        return await self.request("unsubscribe", {"channel": channel})

    async def publish(self, channel: str, data: Any) -> Any:
        return await self.request("publish", {"channel": channel, "data": data})

    async def ping(self) -> Any:
        return await self.request("ping", {})

    async def presence(self, channel: str) -> Any:
        return await self.request("presence", {"channel": channel})

    async def presence_count(self, channel: str) -> Any:
        return await self.request("presence_count", {"channel": channel})

    # -- pushes --------------------------------------------------------------------------

    async def publications(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        """The channel's publications as they come, ``{"offset", "epoch", "data"}``, and
        ``{"resync": True}`` items; ends when the connection closes."""
        queue = self._queue(channel)
        while True:
            item = await queue.get()
            if item is _CLOSED:
                queue.put_nowait(_CLOSED)  # so that a second iterator ends too
                return
            yield item

    def received(self, channel: str) -> list[dict[str, Any]]:
        """What the channel's queue holds now, without waiting (and empties it)."""
        queue, items = self._queue(channel), []
        while not queue.empty():
            item = queue.get_nowait()
            if item is _CLOSED:
                queue.put_nowait(_CLOSED)
                break
            items.append(item)
        return items

    def _queue(self, channel: str) -> asyncio.Queue[Any]:
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = asyncio.Queue()
            if self.close_code is not None:
                queue.put_nowait(_CLOSED)
        return queue

    # -- the reader ----------------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        bad_frame = False
        try:
            async for message in ws:
                self._dispatch(orjson.loads(message))
        except ConnectionClosed:
            pass  # recorded below, like a clean close
        except (ValueError, LookupError, TypeError, AttributeError):
            # Not the protocol: fail loudly in the test reading it, as a 1002 close.
            bad_frame = True
            await ws.close(1002, "bad frame from the server")
        finally:
            self.close_code = 1002 if bad_frame else (ws.close_code or 1006)
            self.close_reason = "bad frame from the server" if bad_frame else ws.close_reason or ""
            error = self._closed_error()
            for future, _method, _params in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            for queue in self._queues.values():
                queue.put_nowait(_CLOSED)

    def _dispatch(self, frame: dict[str, Any]) -> None:
        if "push" in frame:
            push = frame["push"]
            self._enqueue(push["channel"], push.get("epoch"), push.get("pubs", []), push)
            return
        pending = self._pending.get(frame.get("id"))  # type: ignore[arg-type]
        if pending is None or pending[0].done():
            return  # the request was cancelled
        future, method, params = pending
        if "error" in frame:
            error = frame["error"]
            future.set_exception(RealtimeError(error.get("code", 500), error.get("message", "")))
            return
        result = frame.get("result", {})
        if method == "subscribe":
            # Done here, not in subscribe(), so recovered publications precede later pushes.
            channel = params["channel"]
            self.positions[channel] = StreamPosition(result["offset"], result["epoch"])
            if params.get("recover"):
                self._enqueue(channel, result["epoch"], result.get("pubs", []), result)
        future.set_result(result)

    def _enqueue(
        self, channel: str, epoch: str | None, pubs: list[Any], source: Mapping[str, Any]
    ) -> None:
        queue = self._queue(channel)
        if source.get("resync"):
            queue.put_nowait({"resync": True})
            if epoch is not None and isinstance(source.get("offset"), int):
                # The protocol puts the client at the resync's position: resuming from the
                # old one would only be told to resync again.
                self.positions[channel] = StreamPosition(source["offset"], epoch)
            return
        for pub in pubs:
            queue.put_nowait({"offset": pub["offset"], "epoch": epoch, "data": pub.get("data")})
            if epoch is not None:
                self.positions[channel] = StreamPosition(pub["offset"], epoch)

    def _closed_error(self) -> RealtimeClosed:
        code = self.close_code or (self._ws.close_code if self._ws else None) or 1006
        return RealtimeClosed(code, f"the connection closed ({code} {self.close_reason})".strip())
