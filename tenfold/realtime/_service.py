"""``Realtime``: publish from anywhere, and the WebSocket endpoint (a component).

    await platform.get(Realtime).publish("tournament:42", {"leader": "Red"})

The endpoint checks the ``Origin`` before the handshake, caps connections per
client address (through the rate limiter's ``ConnectionLimiter``: across
instances when it is on Redis), then serves the protocol (``_connection``).
When the process starts draining (``/ready`` turns 503), every connection
is closed with 4000, "reconnect elsewhere".
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tenfold._context import Principal, current_principal
from tenfold._errors import TenfoldError
from tenfold._tasks import cancel_and_wait
from tenfold.observability import get_logger
from tenfold.ratelimit import MemoryBackend, RateLimiterUnavailable, Rule, by_ip
from tenfold.realtime._connection import CLOSE, Connection
from tenfold.realtime._presence import MemoryPresence, Presence

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from tenfold.ratelimit import ConnectionLimiter
    from tenfold.realtime._hub import ChannelHub
    from tenfold.realtime._model import Publication
    from tenfold.realtime._settings import RealtimeSettings
    from tenfold.realtime._sse import EventStreams

__all__ = ["Permission", "Realtime", "RealtimeStats", "TokenAuth", "TokenVerifier"]

_log = get_logger("tenfold.realtime")

#: ``(principal, channel) -> bool`` (or awaitable): may this principal subscribe/publish.
Permission = Callable[[Principal | None, str], "bool | Awaitable[bool]"]
#: ``token -> Principal | id | None`` (or awaitable): a ``connect`` frame's token.
TokenAuth = Callable[[str], "Principal | str | Awaitable[Principal | str | None] | None"]


@runtime_checkable
class TokenVerifier(Protocol):
    """What an identity extension provides (tenfold.auth's ``Authenticator``) so that a
    ``connect`` frame's token is verified by the same rules as a request's header."""

    async def verify_token(self, token: str) -> Principal | None: ...


def _anyone(principal: Principal | None, channel: str) -> bool:
    return True


def _nobody(principal: Principal | None, channel: str) -> bool:
    return False


class RealtimeStats:
    """The counters the metrics collector reads."""

    __slots__ = ("messages_in", "messages_out", "slow_consumers")

    def __init__(self) -> None:
        self.messages_in = 0
        self.messages_out = 0
        self.slow_consumers = 0


class Realtime:
    """Channels for this process: ``publish``, and the WebSocket endpoint (ASGI)."""

    name = "realtime"

    def __init__(
        self,
        settings: RealtimeSettings,
        hub: ChannelHub,
        *,
        connection_limiter: ConnectionLimiter | None = None,
        presence: Presence | None = None,
        can_subscribe: Permission | None = None,
        can_publish: Permission | None = None,
        authenticate_token: TokenAuth | None = None,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.connection_limiter = connection_limiter
        self.presence: Presence = presence or MemoryPresence(ttl=settings.presence_ttl)
        self._heartbeat: asyncio.Task[None] | None = None
        self._can = {
            "subscribe": can_subscribe or _anyone,
            "publish": can_publish or _nobody,
        }
        self._token_auth = authenticate_token
        self._rates = MemoryBackend()
        self._rate = (
            Rule(f"{settings.messages_per_minute}/minute") if settings.messages_per_minute else None
        )
        self._ip = by_ip()
        self.open: set[Connection] = set()
        self.stats = RealtimeStats()
        self.draining = False

    def __repr__(self) -> str:
        return f"<Realtime {self.settings.path} connections={len(self.open)}>"

    # -- publishing ----------------------------------------------------------------------------

    async def publish(self, channel: str, data: Any) -> Publication:
        """Publish ``data`` (JSON-serialisable) to ``channel``'s subscribers on every instance."""
        return await self.hub.publish(channel, data)

    # -- hooks ---------------------------------------------------------------------------------

    async def allowed(self, action: str, principal: Principal | None, channel: str) -> bool:
        verdict = self._can[action](principal, channel)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)

    async def authenticate_token(self, token: str) -> Principal | None:
        if self._token_auth is None:
            return None
        found = self._token_auth(token)
        if inspect.isawaitable(found):
            found = await found
        return Principal.of(found)

    async def message_allowed(self, connection: Connection) -> bool:
        if self._rate is None:
            return True
        return (await self._rates.hit(connection.id, self._rate)).allowed

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self.draining = False
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(), name="tenfold-realtime-presence")

    async def _beat(self) -> None:
        """Refresh this instance's presence entries every third of their TTL; re-join
        those that expired meanwhile (Redis was away longer than the TTL)."""
        while True:
            await asyncio.sleep(self.presence.ttl / 3)
            entries = [(ch, c.id) for c in list(self.open) for ch in c.subscriptions]
            try:
                gone = await self.presence.touch(entries)
                for channel, client_id in gone:
                    connection = self._by_id(client_id)
                    if connection is not None and channel in connection.subscriptions:
                        await self.presence.join(channel, client_id, connection.info)
            except TenfoldError as exc:  # the next beat tries again; entries may lapse
                _log.warning("realtime_presence_heartbeat_failed", error=repr(exc))

    def _by_id(self, client_id: str) -> Connection | None:
        return next((c for c in self.open if c.id == client_id), None)

    def begin_drain(self) -> None:
        """Tell every client to reconnect elsewhere (4000); refuse new connections."""
        self.draining = True
        for connection in list(self.open):
            connection.close(CLOSE["draining"], "reconnect elsewhere")

    async def stop(self) -> None:
        self.begin_drain()
        task, self._heartbeat = self._heartbeat, None
        await cancel_and_wait(task)
        await self.hub.aclose()

    # -- the endpoint --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        if self.draining or not self._origin_allowed(scope):
            # Refused before the handshake: the client sees an HTTP 403.
            await send({"type": "websocket.close", "code": CLOSE["policy"]})
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        ip = self._ip(scope)
        async with self._slot(ip) as admitted:
            await send({"type": "websocket.accept"})
            if not admitted:
                reason = "too many connections from this address"
                await send({"type": "websocket.close", "code": CLOSE["policy"], "reason": reason})
                return
            await self._serve(scope, receive, send, ip)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, ip: str) -> None:
        user = scope.get("user")
        principal = user if isinstance(user, Principal) else current_principal()
        connection = Connection(self, send, id=secrets.token_hex(8), ip=ip, principal=principal)
        self.open.add(connection)
        writer = asyncio.create_task(connection.writer(), name="tenfold-realtime-writer")
        try:
            await connection.serve(receive)
        except OSError as exc:  # the client went away mid-frame
            _log.debug("realtime_connection_lost", connection=connection.id, error=repr(exc))
        finally:
            self.open.discard(connection)
            await connection.leave()
            await connection.finish(writer)

    def _origin_allowed(self, scope: Scope) -> bool:
        allowed = self.settings.allowed_origins
        if not allowed:
            return True
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                return value.decode("latin-1") in allowed
        return True  # not a browser: no Origin to check

    @contextlib.asynccontextmanager
    async def _slot(self, ip: str) -> Any:
        limiter = self.connection_limiter
        if limiter is None:
            yield True
            return
        try:
            slot = limiter.slot(ip)
            admitted = await slot.__aenter__()
        except RateLimiterUnavailable:
            # The cap cannot be checked: serve the connection rather than refuse everyone.
            _log.warning("realtime_connection_cap_unchecked", ip=ip)
            yield True
            return
        try:
            yield admitted
        finally:
            await slot.__aexit__(None, None, None)


class RealtimeCollector(Collector):
    """``<ns>_realtime_*``: connections, SSE streams, subscriptions, messages, batches,
    recoveries."""

    def __init__(
        self, realtime: Realtime, namespace: str = "tenfold", streams: EventStreams | None = None
    ) -> None:
        self.realtime = realtime
        self.streams = streams
        self._prefix = f"{namespace}_realtime_" if namespace else "realtime_"

    def collect(self) -> Iterator[Metric]:
        rt, p = self.realtime, self._prefix
        hub = rt.hub.stats
        yield _gauge(p + "connections", "Open WebSocket connections.", len(rt.open))
        if self.streams is not None:
            yield _gauge(
                p + "sse_streams", "Open Server-Sent Events streams.", len(self.streams.open)
            )
        yield _gauge(
            p + "subscriptions",
            "Channel subscriptions of the open connections.",
            sum(len(c.subscriptions) for c in rt.open),
        )
        for name, doc, value in (
            ("messages_in", "Frames received from clients.", rt.stats.messages_in),
            ("messages_out", "Frames sent to clients (SSE: batches).", rt.stats.messages_out),
            ("published", "Publications made from this process.", hub.published),
            ("batches", "Batches sent (one frame per subscriber each).", hub.batches),
            ("batched_publications", "Publications in those batches.", hub.batched),
            ("history_hits", "Recoveries served from history.", hub.history_hits),
            ("resyncs", "Clients told to resync.", hub.resyncs),
            (
                "slow_consumers",
                "Connections and streams closed as slow consumers.",
                rt.stats.slow_consumers,
            ),
        ):
            counter = CounterMetricFamily(p + name, doc)
            counter.add_metric([], value)
            yield counter


def _gauge(name: str, doc: str, value: float) -> Metric:
    gauge = GaugeMetricFamily(name, doc)
    gauge.add_metric([], value)
    return gauge
