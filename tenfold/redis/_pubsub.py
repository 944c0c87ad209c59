"""``PubSub``: every channel a process listens to, on one Redis connection.

One reader task owns one connection (made by ``connect``, with no retries of
its own: redis-py would otherwise reconnect and resubscribe silently, and the
messages published in between would be lost without anyone knowing). It
subscribes to every channel with a listener, dispatches messages to the
channel's listeners, and proves the connection alive: after
``health_interval`` seconds of silence it sends a PING, and a PING
unanswered for as long again counts as a lost connection (a blackholed
socket never errors).

When the connection is lost, every listener gets ``on_lost``; the task waits
(``Backoff``, full jitter) and connects again, subscribes to every channel
again, and each listener gets ``on_live`` as its channel is confirmed: the
read-back hook for what was missed. A channel whose last listener closes is
unsubscribed; with no listener left the connection is closed, and the next
``listen`` opens one again.

SUBSCRIBE and UNSUBSCRIBE for channels added while connected are written by
the caller's task while the reader task reads: the reply arrives through the
reader. On a Redis Cluster the connection goes to one primary; a classic
PUBLISH reaches every node, so the subscriber sees every channel's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from tenfold._backoff import Backoff
from tenfold._bus import Listener, ListenerSlot, Subscription
from tenfold.observability import get_logger
from tenfold.redis._clients import REDIS_ERRORS

__all__ = ["PubSub"]

_log = get_logger("tenfold.redis")

#: Reconnect waits: quick at first, at most a second apart.
RECONNECT = Backoff(base=0.05, multiplier=2.0, max=1.0)


class _Lost(Exception):
    """The connection stopped answering."""


class _Channel(ListenerSlot):
    """One listener on one channel of a ``PubSub``."""

    __slots__ = ("_mux",)

    def __init__(self, mux: PubSub, channel: str, listener: Listener) -> None:
        super().__init__(channel, listener)
        self._mux = mux

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.live_event.clear()
            self._mux._remove(self)


class PubSub:
    """One multiplexed pub/sub connection with reconnect, resubscribe and read-back."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[aioredis.Redis]],
        *,
        health_interval: float = 1.0,
        backoff: Backoff = RECONNECT,
        rng: random.Random | None = None,
    ) -> None:
        """``connect()`` returns a new client for the connection (never retrying by itself)."""
        self._connect = connect
        self.health_interval = health_interval
        self.backoff = backoff
        self._rng = rng or random.Random()
        self._channels: dict[str, list[_Channel]] = {}
        self._confirmed: set[str] = set()
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._closed = False
        self._was_up = True
        #: Connections made, and lost, since this object was made.
        self.connections = 0
        self.losses = 0

    def __repr__(self) -> str:
        state = "live" if self._pubsub is not None else "down"
        return f"<PubSub {state} channels={sorted(self._channels)}>"

    @property
    def connected(self) -> bool:
        return self._pubsub is not None

    def listen(self, channel: str, listener: Listener) -> Subscription:
        """Deliver ``channel``'s messages to ``listener`` from its ``on_live`` on."""
        if self._closed:
            raise RuntimeError("this PubSub is closing")
        subscription = _Channel(self, channel, listener)
        known = channel in self._channels
        self._channels.setdefault(channel, []).append(subscription)
        if channel in self._confirmed:
            asyncio.get_running_loop().call_soon(self._went_live, subscription)
        elif not known and self._pubsub is not None:
            self._send("subscribe", channel)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="tenfold.redis pubsub")
        return subscription

    async def aclose(self) -> None:
        """Close the connection; every listener gets ``on_lost`` and is dropped.

        A later ``listen`` connects again (a platform may be started again)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for subscriptions in list(self._channels.values()):
            for subscription in list(subscriptions):
                subscription.live_event.clear()
                subscription.closed = True
                subscription.listener.on_lost(subscription.channel, "closed")
        self._channels.clear()
        self._closed = False

    # -- the caller's side ----------------------------------------------------

    def _remove(self, subscription: _Channel) -> None:
        subscriptions = self._channels.get(subscription.channel)
        if subscriptions is None or subscription not in subscriptions:
            return
        subscriptions.remove(subscription)
        if subscriptions:
            return
        del self._channels[subscription.channel]
        self._confirmed.discard(subscription.channel)
        if self._pubsub is not None:
            self._send("unsubscribe", subscription.channel)

    def _send(self, command: str, channel: str) -> None:
        """SUBSCRIBE/UNSUBSCRIBE on the live connection; a failure is the reader's to see."""
        pubsub = self._pubsub

        async def send() -> None:
            connection = getattr(pubsub, "connection", None)
            if connection is None or not connection.is_connected:
                return  # the reader will reconnect and subscribe to what is listened to then
            # A connection closing under the send (redis-py then meets a writer already
            # gone: AttributeError) is the reader's to see, like any failure here.
            with contextlib.suppress(*REDIS_ERRORS, AttributeError):
                await getattr(pubsub, command)(channel)

        task = asyncio.get_running_loop().create_task(send())
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    # -- the reader task ------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while self._channels and not self._closed:
            client = pubsub = None
            try:
                client = await self._connect()
                pubsub = client.pubsub()
                await pubsub.subscribe(*self._channels)
                self._pubsub = pubsub
                self.connections += 1
                if not self._was_up:
                    self._was_up = True
                    if self.losses:
                        _log.info("redis_pubsub_reconnected", channels=len(self._channels))
                await self._read(pubsub)
                failures = 0  # no listener left: a clean end
            except (*REDIS_ERRORS, _Lost) as exc:
                failures += 1
                self._went_down(exc)
            finally:
                self._pubsub = None
                self._confirmed.clear()
                await _close(pubsub, client)
            if failures:
                # Backoff between reconnects (not a poll for data: nothing is read meanwhile).
                await asyncio.sleep(self.backoff.delay(failures, self._rng))

    async def _read(self, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        ping_sent: float | None = None
        while self._channels:
            message = await pubsub.get_message(timeout=self.health_interval)
            if message is None:
                if ping_sent is None:
                    ping_sent = loop.time()
                    await pubsub.ping()
                elif loop.time() - ping_sent >= self.health_interval:
                    raise _Lost(f"no answer to PING within {self.health_interval} s")
                continue
            kind = message["type"]
            if kind == "message":
                self._dispatch(_text(message["channel"]), message["data"])
            elif kind == "pong":
                ping_sent = None
            elif kind == "subscribe":
                channel = _text(message["channel"])
                if channel in self._channels:
                    self._confirm(channel)
            elif kind == "unsubscribe":
                channel = _text(message["channel"])
                if channel not in self._channels:
                    self._confirmed.discard(channel)

    def _dispatch(self, channel: str, data: bytes) -> None:
        for subscription in tuple(self._channels.get(channel, ())):
            if subscription.live:
                subscription.listener.on_message(channel, data)

    def _confirm(self, channel: str) -> None:
        self._confirmed.add(channel)
        for subscription in tuple(self._channels.get(channel, ())):
            self._went_live(subscription)

    def _went_live(self, subscription: _Channel) -> None:
        if not subscription.closed and not subscription.live:
            subscription.live_event.set()
            subscription.listener.on_live(subscription.channel)

    def _went_down(self, exc: BaseException) -> None:
        self.losses += 1
        reason = f"{type(exc).__name__}: {exc}"
        if self._was_up:  # once per outage, not once per reconnect attempt
            self._was_up = False
            _log.warning("redis_pubsub_lost", error=reason, channels=len(self._channels))
        for subscriptions in list(self._channels.values()):
            for subscription in list(subscriptions):
                subscription.live_event.clear()
                subscription.listener.on_lost(subscription.channel, reason)


async def _close(pubsub: Any, client: Any) -> None:
    # Closing a dead connection can only fail in ways nobody can act on.
    with contextlib.suppress(*REDIS_ERRORS):
        if pubsub is not None:
            await pubsub.aclose()
    with contextlib.suppress(*REDIS_ERRORS):
        if client is not None:
            await client.aclose()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
