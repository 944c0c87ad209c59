"""A message bus's listening side, one shape for every process layout.

    bus.listen(channel, listener) -> Subscription      messages from now on
    await bus.publish(channel, data)

A ``Listener`` gets three callbacks, always on the event loop, never
concurrently, and must not block:

``on_live(channel)``
    the subscription is confirmed. Called again after every reconnection:
    messages published in between were missed, so a listener that keeps
    state from messages reads it back here (a cache clears its L1, shared
    breaker state re-reads the open breakers).
``on_message(channel, data)``
    one message, in publication order per channel.
``on_lost(channel, reason)``
    the connection is gone: messages from now on are missed until the next
    ``on_live``. The bus reconnects by itself (with backoff); the listener
    only decides what "missed messages" means for it.

``LocalBus`` is the in-process bus of the embedded profile (and of tests);
``tenfold.redis.PubSub`` the Redis one, one connection per process for every
channel. Both deliver asynchronously: ``publish`` returns before listeners run.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

__all__ = ["Listener", "LocalBus", "Subscription"]


@runtime_checkable
class Listener(Protocol):
    """Receives one channel's messages and the state of the connection carrying them."""

    def on_live(self, channel: str) -> None: ...

    def on_message(self, channel: str, data: bytes) -> None: ...

    def on_lost(self, channel: str, reason: str) -> None: ...


@runtime_checkable
class Subscription(Protocol):
    """One listener on one channel; ``close()`` stops delivery."""

    channel: str

    @property
    def live(self) -> bool: ...

    async def wait_live(self, timeout: float) -> bool:  # noqa: ASYNC109 - answers, never raises
        """Wait until the subscription is live; False if ``timeout`` ran out first."""
        ...

    def close(self) -> None: ...


class ListenerSlot:
    """One listener on one channel, and whether it is live: what every bus hands out.

    A bus sets and clears ``live_event``; ``close()`` is the bus's to define.
    """

    __slots__ = ("channel", "closed", "listener", "live_event")

    def __init__(self, channel: str, listener: Listener) -> None:
        self.channel = channel
        self.listener = listener
        self.live_event = asyncio.Event()
        self.closed = False

    def __repr__(self) -> str:
        return f"<Subscription {self.channel!r} {'live' if self.live else 'down'}>"

    @property
    def live(self) -> bool:
        return self.live_event.is_set()

    async def wait_live(self, timeout: float) -> bool:  # noqa: ASYNC109 - answers, never raises
        """Wait until live; False if ``timeout`` ran out first."""
        try:
            async with asyncio.timeout(timeout):
                await self.live_event.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        raise NotImplementedError


class _LocalSubscription(ListenerSlot):
    __slots__ = ("_bus",)

    def __init__(self, bus: LocalBus, channel: str, listener: Listener) -> None:
        super().__init__(channel, listener)
        self._bus = bus

    def close(self) -> None:
        self.closed = True
        self._bus._remove(self)


class LocalBus:
    """An in-process bus: every listener of a channel gets each message, in order."""

    def __init__(self) -> None:
        self._channels: dict[str, list[_LocalSubscription]] = {}
        self.closed = False

    def __repr__(self) -> str:
        return f"<LocalBus channels={sorted(self._channels)}>"

    def listen(self, channel: str, listener: Listener) -> Subscription:
        subscription = _LocalSubscription(self, channel, listener)
        self._channels.setdefault(channel, []).append(subscription)
        loop = asyncio.get_running_loop()
        if self.closed:
            loop.call_soon(self._lost, subscription, "the bus is closed")
        else:
            loop.call_soon(self._live, subscription)
        return subscription

    async def publish(self, channel: str, data: bytes) -> None:
        """Deliver ``data`` to the channel's listeners (after this returns)."""
        subscriptions = self._channels.get(channel)
        if not subscriptions:
            return
        loop = asyncio.get_running_loop()
        for subscription in tuple(subscriptions):
            loop.call_soon(self._deliver, subscription, data)

    def close(self, reason: str = "the bus is closed") -> None:
        """Every listener loses its subscription (as if the connection went away)."""
        self.closed = True
        for subscriptions in list(self._channels.values()):
            for subscription in list(subscriptions):
                self._lost(subscription, reason)

    def _remove(self, subscription: _LocalSubscription) -> None:
        subscriptions = self._channels.get(subscription.channel)
        if subscriptions is not None and subscription in subscriptions:
            subscriptions.remove(subscription)
            if not subscriptions:
                del self._channels[subscription.channel]
        subscription.live_event.clear()

    def _live(self, subscription: _LocalSubscription) -> None:
        if subscription in self._channels.get(subscription.channel, ()):
            subscription.live_event.set()
            subscription.listener.on_live(subscription.channel)

    def _deliver(self, subscription: _LocalSubscription, data: bytes) -> None:
        if subscription.live:
            subscription.listener.on_message(subscription.channel, data)

    def _lost(self, subscription: _LocalSubscription, reason: str) -> None:
        subscription.live_event.clear()
        subscription.listener.on_lost(subscription.channel, reason)
