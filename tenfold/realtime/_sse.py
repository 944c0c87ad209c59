"""Server-Sent Events: one channel as a ``text/event-stream``, for clients without WebSockets.

    GET /realtime/sse?channel=tournament:42          (Last-Event-ID: a1b2c3d4:17)

Each publication is one event whose ``id`` is ``<epoch>:<offset>`` and whose
``data`` is the published JSON. The browser's ``EventSource`` sends the last
id back as ``Last-Event-ID`` when it reconnects, and the stream resumes with
exactly the publications after it (through the channel hub's recovery), or
with an ``event: resync`` naming the current position when they are no
longer in history or the epoch changed.

A plain ASGI endpoint rather than ``sse-starlette``: that package ends
streams on shutdown by patching uvicorn's signal handler with process-wide
state, while tenfold already has a drain (``Lifecycle.on_drain``), its own
bounded queues and keep-alive timing, and the framing is a few lines.

The stream shares the WebSocket endpoint's rules: the ``subscribe``
permission hook (403), the per-address connection cap (429), the send
queue bound (a slow consumer's stream is ended) and the drain (streams end;
``EventSource`` reconnects by itself, to another instance).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import orjson

from tenfold._context import Principal, current_principal
from tenfold._errors import BadRequest, ShuttingDown
from tenfold.observability import get_logger
from tenfold.realtime._model import Publication, StreamPosition, check_channel
from tenfold.web import problem_response

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from tenfold.realtime._hub import Subscriber
    from tenfold.realtime._model import Recovery
    from tenfold.realtime._service import Realtime

__all__ = ["EventStreams", "event_id", "parse_event_id"]

_log = get_logger("tenfold.realtime")

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # nginx buffers proxied responses by default, which would hold events back.
    (b"x-accel-buffering", b"no"),
]
_KEEPALIVE = b":\n\n"


def event_id(epoch: str, offset: int) -> str:
    """The SSE id of a position: ``<epoch>:<offset>``."""
    return f"{epoch}:{offset}"


def parse_event_id(value: str) -> StreamPosition:
    """The position an SSE id names; BadRequest when it is not ``<epoch>:<offset>``."""
    epoch, _, offset = value.rpartition(":")
    if not epoch or not offset.isdigit() or not offset.isascii():
        raise BadRequest("Last-Event-ID is <epoch>:<offset>, as the stream's ids are")
    return StreamPosition(int(offset), epoch)


def _event(data: bytes | str, *, id: str | None = None, event: str | None = None) -> str:
    text = data.decode() if isinstance(data, bytes) else data
    head = (f"event: {event}\n" if event else "") + (f"id: {id}\n" if id else "")
    # JSON only has line breaks between tokens: one data line each keeps it intact.
    return head + "".join(f"data: {line}\n" for line in text.splitlines() or [""]) + "\n"


def _publications(publications: list[Publication]) -> str:
    return "".join(_event(p.data, id=event_id(p.epoch, p.offset)) for p in publications)


def _resync(channel: str, epoch: str, offset: int) -> str:
    data = orjson.dumps({"channel": channel, "epoch": epoch, "offset": offset}).decode()
    return _event(data, id=event_id(epoch, offset), event="resync")


def _from_frame(frame: str) -> str:
    """The events of one hub push frame (a batch of publications, or a resync)."""
    push = orjson.loads(frame)["push"]
    epoch = push["epoch"]
    if push.get("resync"):
        return _resync(push["channel"], epoch, push["offset"])
    return "".join(
        _event(orjson.dumps(p["data"]), id=event_id(epoch, p["offset"])) for p in push["pubs"]
    )


class _Stream:
    """One client's event stream: a ``Sink`` of the channel hub with a bounded queue."""

    __slots__ = ("_queue", "_ready", "ending", "limit", "rt")

    def __init__(self, rt: Realtime) -> None:
        self.rt = rt
        self.limit = rt.settings.send_queue
        self._queue: deque[str] = deque()
        self._ready = asyncio.Event()
        #: Why the stream is to end, once it is.
        self.ending: str | None = None

    def push(self, frame: str) -> None:
        if self.ending is not None:
            return
        if len(self._queue) >= self.limit:
            self.rt.stats.slow_consumers += 1
            _log.warning("realtime_slow_consumer", stream="sse", queued=len(self._queue))
            self._queue.clear()  # it reconnects with its last id and recovers from history
            self.end("slow consumer")
            return
        self._queue.append(frame)
        self._ready.set()

    def end(self, reason: str) -> None:
        if self.ending is None:
            self.ending = reason
            self._ready.set()

    async def next_chunk(self, keepalive: float) -> bytes | None:
        """The events queued since the last call (a keep-alive comment after ``keepalive``
        seconds of silence); None once the stream is to end and all is sent."""
        if not self._queue and self.ending is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(keepalive):
                    await self._ready.wait()
        self._ready.clear()
        if not self._queue:
            return None if self.ending is not None else _KEEPALIVE
        frames, self._queue = self._queue, deque()
        self.rt.stats.messages_out += len(frames)
        return "".join(_from_frame(f) for f in frames).encode()


class EventStreams:
    """The SSE endpoint (ASGI) over a ``Realtime``: its open streams and their drain."""

    def __init__(self, realtime: Realtime) -> None:
        self.rt = realtime
        self.open: set[_Stream] = set()

    def __repr__(self) -> str:
        return f"<EventStreams {self.rt.settings.sse_path} streams={len(self.open)}>"

    def begin_drain(self) -> None:
        """End every stream: ``EventSource`` reconnects by itself, elsewhere."""
        for stream in list(self.open):
            stream.end("draining")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":  # a HEAD would hold a stream open with no body
            allow = {"Allow": "GET"}
            await problem_response(405, headers=allow)(scope, receive, send)
            return
        if self.rt.draining:
            raise ShuttingDown("the server is shutting down; reconnect elsewhere")
        channel, since = _request(scope)
        user = scope.get("user")
        principal = user if isinstance(user, Principal) else current_principal()
        if not await self.rt.allowed("subscribe", principal, channel):
            detail = f"not allowed to subscribe to {channel}"
            await problem_response(403, detail=detail)(scope, receive, send)
            return
        async with self.rt._slot(self.rt._ip(scope)) as admitted:
            if not admitted:
                detail = "too many connections from this address"
                await problem_response(429, detail=detail)(scope, receive, send)
                return
            stream = _Stream(self.rt)
            subscriber, recovery = await self.rt.hub.subscribe(channel, stream, since)
            self.open.add(stream)
            if self.rt.draining:  # the drain began while it subscribed: it missed that call
                stream.end("draining")
            try:
                await self._serve(stream, subscriber, recovery, receive, send)
            finally:
                self.open.discard(stream)
                self.rt.hub.unsubscribe(subscriber)

    async def _serve(
        self,
        stream: _Stream,
        subscriber: Subscriber,
        recovery: Recovery,
        receive: Receive,
        send: Send,
    ) -> None:
        settings = self.rt.settings
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        first = f"retry: {round(settings.sse_retry * 1000)}\n\n"
        top = recovery.top
        if recovery.resync:
            first += _resync(subscriber.channel, top.epoch, top.offset)
        else:
            first += _publications(recovery.publications)
        # The recovered events go out before go_live queues what arrived meanwhile.
        await send({"type": "http.response.body", "body": first.encode(), "more_body": True})
        self.rt.hub.go_live(subscriber)
        watcher = asyncio.create_task(_watch_disconnect(receive, stream))
        try:
            while (chunk := await stream.next_chunk(settings.sse_keepalive)) is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except OSError as exc:  # the client went away mid-write
            _log.debug("realtime_stream_lost", error=repr(exc))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def _watch_disconnect(receive: Receive, stream: _Stream) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    stream.end("client left")


def _request(scope: Scope) -> tuple[str, StreamPosition | None]:
    """The channel and the position to resume from (``Last-Event-ID``, else the
    ``last_event_id`` query parameter, for a first connection that knows one)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    channels = query.get("channel", [])
    if len(channels) != 1:
        raise BadRequest("name one channel: ?channel=<name>")
    channel = check_channel(channels[0])
    last = next((v for k, v in scope.get("headers", ()) if k == b"last-event-id"), None)
    value = last.decode("latin-1") if last is not None else query.get("last_event_id", [""])[0]
    return channel, parse_event_id(value) if value else None
