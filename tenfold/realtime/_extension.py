"""The ``realtime`` extension: channels over a backplane, and the WebSocket endpoint."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.routing import Route, WebSocketRoute

from tenfold._extension import Build, Extension
from tenfold.ratelimit import ConnectionLimiter, LimiterBackend, MemoryBackend
from tenfold.realtime._backplane import Backplane, MemoryBackplane
from tenfold.realtime._events import ChannelOf, ChannelTarget
from tenfold.realtime._hub import ChannelHub
from tenfold.realtime._presence import MemoryPresence, Presence, RedisPresence
from tenfold.realtime._problems import PROBLEMS
from tenfold.realtime._redis import RedisBackplane
from tenfold.realtime._service import (
    Permission,
    Realtime,
    RealtimeCollector,
    TokenAuth,
    TokenVerifier,
)
from tenfold.realtime._settings import RealtimeSettings
from tenfold.realtime._sse import EventStreams

__all__ = ["RealtimeExtension"]


class RealtimeExtension(Extension):
    """``platform.get(Realtime)`` (also ``platform.realtime``), the endpoint at
    ``TENFOLD_REALTIME__PATH`` and the SSE one at ``TENFOLD_REALTIME__SSE_PATH``.

    Opt-in: ``create_app(extensions=[RealtimeExtension(can_subscribe=...)])``.
    ``can_subscribe(principal, channel)`` and ``can_publish(principal,
    channel)`` decide per channel (sync or async); by default anyone may
    subscribe and no client may publish (the server publishes).
    ``authenticate_token(token)`` resolves a ``connect`` frame's token when
    the connection's handshake carried no credentials. ``batch_window``
    overrides ``TENFOLD_REALTIME__BATCH_WINDOW`` (an app's preset).
    ``events_to_channels(event)`` relays committed events of the event store
    into the channels it names (see ``tenfold.realtime._events``).
    """

    name = "realtime"
    settings_model = RealtimeSettings
    # events: with ``events_to_channels``, committed events are relayed into channels.
    # auth: a connect frame's token is verified by the app's authenticator when it has one.
    after = ("ratelimit", "events", "auth")

    def __init__(
        self,
        *,
        can_subscribe: Permission | None = None,
        can_publish: Permission | None = None,
        authenticate_token: TokenAuth | None = None,
        batch_window: float | None = None,
        events_to_channels: ChannelOf | None = None,
    ) -> None:
        self.can_subscribe = can_subscribe
        self.can_publish = can_publish
        self.authenticate_token = authenticate_token
        self.batch_window = batch_window
        self.events_to_channels = events_to_channels

    def _token_auth(self, build: Build) -> TokenAuth | None:
        """The hook given, else the verifier an identity extension provides (tenfold.auth)."""
        if self.authenticate_token is not None:
            return self.authenticate_token
        verifier = build.find(TokenVerifier)
        return verifier.verify_token if verifier is not None else None

    def build(self, build: Build) -> None:
        settings: RealtimeSettings = build.section
        window = self.batch_window if self.batch_window is not None else settings.batch_window
        hub = ChannelHub(_backplane(build, settings), batch_window=window)
        presence = _presence(build, settings)
        limiter = None
        if settings.max_connections_per_ip:
            backend = build.find(LimiterBackend) or MemoryBackend()
            limiter = ConnectionLimiter(backend, cap=settings.max_connections_per_ip)
        realtime = Realtime(
            settings,
            hub,
            connection_limiter=limiter,
            presence=presence,
            can_subscribe=self.can_subscribe,
            can_publish=self.can_publish,
            authenticate_token=self._token_auth(build),
        )
        build.problems(PROBLEMS)
        build.provide(hub)
        build.provide(presence, kind=Presence)
        build.provide(realtime, name="realtime")
        build.component(realtime)
        # /ready turns 503 and, at the same moment, clients are told to go elsewhere.
        build.lifecycle.on_drain(realtime.begin_drain)
        router = APIRouter()
        router.routes.append(WebSocketRoute(settings.path, realtime, name="realtime"))
        build.websocket(settings.path, realtime)
        streams = None
        if settings.sse_path:
            streams = EventStreams(realtime)
            build.lifecycle.on_drain(streams.begin_drain)
            route = Route(settings.sse_path, streams, methods=["GET"], name="realtime_sse")
            router.routes.append(route)
        build.router(router)
        if build.metrics is not None:
            build.collector(RealtimeCollector(realtime, build.metrics.namespace, streams))
        if self.events_to_channels is not None:
            _relay_events(build, realtime, self.events_to_channels)


def _relay_events(build: Build, realtime: Realtime, channel_of: ChannelOf) -> None:
    """An event relay into channels, run by the started platform (see ``_events``)."""
    from tenfold._errors import ConfigurationError
    from tenfold.events import EventRelay, EventStore

    store = build.find(EventStore)
    if store is None:
        raise ConfigurationError(
            "RealtimeExtension(events_to_channels=...) needs the events extension: "
            "add EventsExtension() to the app's extensions"
        )
    relay = EventRelay(store, ChannelTarget(realtime, channel_of))
    relay.name = "realtime-events-relay"  # beside the events extension's own relay
    build.component(relay)


def _prefix(build: Build, settings: RealtimeSettings) -> str:
    return settings.key_prefix or f"{build.settings.app.name}:rt:"


def _presence(build: Build, settings: RealtimeSettings) -> Presence:
    if build.redis is None:
        return MemoryPresence(ttl=settings.presence_ttl)
    return RedisPresence(build.redis, prefix=_prefix(build, settings), ttl=settings.presence_ttl)


def _backplane(build: Build, settings: RealtimeSettings) -> Backplane:
    if build.redis is None:
        return MemoryBackplane(history_size=settings.history_size)
    return RedisBackplane(
        build.redis,
        prefix=_prefix(build, settings),
        history_size=settings.history_size,
        history_ttl=settings.history_ttl,
    )
