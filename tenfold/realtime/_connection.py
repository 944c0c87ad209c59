"""One WebSocket connection: the protocol's frames in, replies and pushes out.

Frames from the client are handled one at a time, in order. Everything for
the client (replies and pushes) goes through one bounded queue and one writer
task, so a reply always precedes the pushes it announces, and a client that
does not read fills only its own queue: when it is full the connection is
closed with 4001 (slow consumer) and publishing never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import orjson

from tenfold._context import Principal, set_principal
from tenfold._errors import BadRequest, DependencyUnavailable, TenfoldError
from tenfold.observability import get_logger
from tenfold.realtime._model import StreamPosition, check_channel

if TYPE_CHECKING:
    from starlette.types import Receive, Send

    from tenfold.realtime._hub import Subscriber
    from tenfold.realtime._service import Realtime

__all__ = ["CLOSE", "Connection"]

_log = get_logger("tenfold.realtime")

#: Close codes (docs/realtime.md, "Close codes").
CLOSE = {
    "normal": 1000,
    "policy": 1008,
    "too_big": 1009,
    "draining": 4000,
    "slow": 4001,
    "idle": 4002,
    "rate": 4003,
}
#: How long a closing connection's writer may take to send what is queued and the close.
_CLOSE_GRACE = 5.0


class _Refused(Exception):
    """A request the server refuses: becomes an error reply with ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Connection:
    """One client's WebSocket after the handshake (a ``Sink`` of the channel hub)."""

    __slots__ = (
        "_queue",
        "_send",
        "_wake",
        "closing",
        "id",
        "ip",
        "principal",
        "rt",
        "subscriptions",
    )

    def __init__(
        self, rt: Realtime, send: Send, *, id: str, ip: str, principal: Principal | None
    ) -> None:
        self.rt = rt
        self._send = send
        self.id = id
        self.ip = ip
        self.principal = principal
        self.subscriptions: dict[str, Subscriber] = {}
        # A list and a future rather than a deque and an Event: an idle connection holds
        # ~60 bytes for them instead of ~1.3 KiB (each of those allocates a block).
        self._queue: list[str] = []
        #: The writer's wake-up while it waits for frames (None: it is not waiting).
        self._wake: asyncio.Future[None] | None = None
        #: (code, reason) once the connection is to be closed.
        self.closing: tuple[int, str] | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.ip} subscriptions={len(self.subscriptions)}>"

    # -- the send side -----------------------------------------------------------------------

    def push(self, frame: str) -> None:
        """Queue ``frame``; a full queue closes the connection as a slow consumer."""
        if self.closing is not None:
            return
        if len(self._queue) >= self.rt.settings.send_queue:
            self.rt.stats.slow_consumers += 1
            _log.warning("realtime_slow_consumer", connection=self.id, queued=len(self._queue))
            self._queue.clear()  # what it has not read is lost to it anyway
            self.close(CLOSE["slow"], "slow consumer")
            return
        self._queue.append(frame)
        self._notify()

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued (a slow consumer's queue was dropped already)."""
        if self.closing is None:
            self.closing = (code, reason)
            self._notify()

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    async def writer(self) -> None:
        """Send queued frames until the connection closes; then the close frame."""
        send, queue, stats = self._send, self._queue, self.rt.stats
        loop = asyncio.get_running_loop()
        while True:
            if not queue and self.closing is None:
                self._wake = loop.create_future()
                await self._wake
            while queue:
                # Popped one at a time, so that a slow consumer's clear() stops the rest.
                await send({"type": "websocket.send", "text": queue.pop(0)})
                stats.messages_out += 1
            if self.closing is not None:
                code, reason = self.closing
                await send({"type": "websocket.close", "code": code, "reason": reason})
                return

    # -- the receive side --------------------------------------------------------------------

    async def serve(self, receive: Receive) -> None:
        """Handle the client's frames until it leaves or the connection is closed."""
        settings = self.rt.settings
        while self.closing is None:
            try:
                # asyncio.timeout, not wait_for: no task per receive, on every connection.
                async with asyncio.timeout(settings.idle_timeout):
                    message = await receive()
            except TimeoutError:
                self.close(CLOSE["idle"], "idle")
                return
            if message["type"] == "websocket.disconnect":
                self.closing = (message.get("code", 1000), "client left")
                return
            text = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                text = raw.decode("utf-8", "replace")
            if len(text) > settings.max_frame or len(text.encode()) > settings.max_frame:
                self.close(CLOSE["too_big"], "frame too big")
                return
            self.rt.stats.messages_in += 1
            if not await self.rt.message_allowed(self):
                self.close(CLOSE["rate"], "message rate exceeded")
                return
            await self.handle(text)

    async def handle(self, text: str) -> None:
        """One client frame: the method it names, and its reply."""
        request_id: Any = None
        try:
            frame = orjson.loads(text)
            if not isinstance(frame, dict) or not isinstance(frame.get("id"), int):
                raise _Refused(400, "a frame is a JSON object with an integer id")
            request_id = frame["id"]
            methods = [k for k in frame if k != "id"]
            if len(methods) != 1 or not isinstance(frame[methods[0]], dict):
                raise _Refused(400, "a frame names one method, with an object of parameters")
            method = methods[0]
            handler = _METHODS.get(method)
            if handler is None:
                raise _Refused(404, f"unknown method {method!r}")
            result = await handler(self, request_id, frame[method])
        except _Refused as refused:
            self._reply_error(request_id, refused.code, refused.message)
            return
        except orjson.JSONDecodeError:
            self._reply_error(request_id, 400, "the frame is not JSON")
            return
        except BadRequest as exc:
            self._reply_error(request_id, 400, exc.message)
            return
        except DependencyUnavailable:
            self._reply_error(request_id, 503, "the channel is unavailable; retry shortly")
            return
        except TenfoldError as exc:
            _log.warning("realtime_request_failed", connection=self.id, error=repr(exc))
            self._reply_error(request_id, 500, "the server could not handle the request")
            return
        if result is not None:  # None: the method queued its reply itself
            self.push(orjson.dumps({"id": request_id, "result": result}).decode())

    def _reply_error(self, request_id: Any, code: int, message: str) -> None:
        error = {"code": code, "message": message}
        self.push(orjson.dumps({"id": request_id, "error": error}).decode())

    # -- methods -----------------------------------------------------------------------------

    async def _connect(self, request_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
        token = params.get("token")
        if token is not None:
            if not isinstance(token, str):
                raise _Refused(400, "token is a string")
            principal = await self.rt.authenticate_token(token)
            if principal is None:
                self._reply_error(request_id, 401, "the token was not accepted")
                self.close(CLOSE["policy"], "authentication failed")  # after the reply
                return None
            self.principal = principal
            set_principal(principal)  # the connection's log lines name it from here on
        return {"client": self.id, "user": self.principal.id if self.principal else None}

    async def _subscribe(self, request_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
        channel = check_channel(params.get("channel"))  # type: ignore[arg-type]
        if channel in self.subscriptions:
            raise _Refused(409, f"already subscribed to {channel}")
        if not await self.rt.allowed("subscribe", self.principal, channel):
            raise _Refused(403, f"not allowed to subscribe to {channel}")
        since = _position(params) if params.get("recover") else None
        hub = self.rt.hub
        subscriber, recovery = await hub.subscribe(channel, self, since)
        self.subscriptions[channel] = subscriber
        result: dict[str, Any] = {
            "channel": channel,
            "epoch": recovery.top.epoch,
            "offset": recovery.top.offset,
            "recovered": since is not None and not recovery.resync,
            "resync": recovery.resync,
        }
        if recovery.publications:
            result["pubs"] = [
                {"offset": p.offset, "data": orjson.Fragment(p.data)} for p in recovery.publications
            ]
        # Joined before the reply, so a client that has its reply is in the presence (on
        # Redis, a query racing the join would miss it); publications arriving meanwhile
        # wait in the subscriber's buffer.
        try:
            await self.rt.presence.join(channel, self.id, self.info)
        except TenfoldError as exc:  # the subscription stands; the heartbeat joins it later
            _log.warning("realtime_presence_join_failed", channel=channel, error=repr(exc))
        # The reply is queued before go_live pushes what arrived meanwhile: the client
        # learns its position first.
        self.push(orjson.dumps({"id": request_id, "result": result}).decode())
        hub.go_live(subscriber)
        return None

    async def _unsubscribe(self, request_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
        channel = params.get("channel")
        subscriber = self.subscriptions.pop(channel, None) if isinstance(channel, str) else None
        if subscriber is None:
            raise _Refused(404, f"not subscribed to {channel}")
        self.rt.hub.unsubscribe(subscriber)
        await self._presence_leave(channel)
        return {"channel": channel}

    async def _publish(self, request_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
        channel = check_channel(params.get("channel"))  # type: ignore[arg-type]
        if "data" not in params:
            raise _Refused(400, "publish needs data")
        if not await self.rt.allowed("publish", self.principal, channel):
            raise _Refused(403, f"not allowed to publish to {channel}")
        publication = await self.rt.publish(channel, params["data"])
        return {"offset": publication.offset, "epoch": publication.epoch}

    async def _ping(self, request_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
        return {}

    async def _presence(self, request_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
        channel = await self._presence_channel(params)
        return {"channel": channel, "members": await self.rt.presence.members(channel)}

    async def _presence_count(
        self, request_id: int, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        channel = await self._presence_channel(params)
        return {"channel": channel, "count": await self.rt.presence.count(channel)}

    async def _presence_channel(self, params: dict[str, Any]) -> str:
        channel = check_channel(params.get("channel"))  # type: ignore[arg-type]
        if not await self.rt.allowed("subscribe", self.principal, channel):
            raise _Refused(403, f"not allowed to see who is in {channel}")
        return channel

    @property
    def info(self) -> dict[str, Any]:
        """What presence shows of this connection: its id and its user's."""
        return {"client": self.id, "user": self.principal.id if self.principal else None}

    async def _presence_leave(self, channel: str) -> None:
        try:
            await self.rt.presence.leave(channel, self.id)
        except TenfoldError as exc:  # the entry expires after the TTL instead
            _log.warning("realtime_presence_leave_failed", channel=channel, error=repr(exc))

    async def leave(self) -> None:
        """Drop every subscription and presence entry (the connection is gone)."""
        subscriptions, self.subscriptions = self.subscriptions, {}
        for channel, subscriber in subscriptions.items():
            self.rt.hub.unsubscribe(subscriber)
            await self._presence_leave(channel)

    async def finish(self, writer: asyncio.Task[None]) -> None:
        """Let the writer send what is queued and the close, for a bounded time."""
        if self.closing is None:
            self.closing = (CLOSE["normal"], "")
        self._notify()
        try:
            await asyncio.wait_for(asyncio.shield(writer), _CLOSE_GRACE)
        except (TimeoutError, OSError):
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await writer
        except Exception as exc:  # the client is gone: nothing left to tell it
            _log.debug("realtime_close_failed", connection=self.id, error=repr(exc))


def _position(params: dict[str, Any]) -> StreamPosition | None:
    offset, epoch = params.get("offset"), params.get("epoch")
    if offset is None and epoch is None:
        return None
    if not isinstance(offset, int) or offset < 0 or not isinstance(epoch, str):
        raise _Refused(400, "recover needs an integer offset and a string epoch")
    return StreamPosition(offset, epoch)


_METHODS = {
    "connect": Connection._connect,
    "subscribe": Connection._subscribe,
    "unsubscribe": Connection._unsubscribe,
    "publish": Connection._publish,
    "ping": Connection._ping,
    "presence": Connection._presence,
    "presence_count": Connection._presence_count,
}
