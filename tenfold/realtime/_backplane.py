"""The backplane: channels' history and live delivery, shared by every instance.

    publish(channel, data) -> Publication     appended to history, delivered live
    recover(channel, since) -> Recovery       what a client missed since a position
    top(channel) -> StreamPosition            where the channel stands
    listen(channel, listener) -> Subscription live publications, on the event loop

``MemoryBackplane`` is the embedded profile's (one process, same semantics);
``tenfold.realtime._redis.RedisBackplane`` shares channels between instances.
A ``ChannelListener`` gets the ``tenfold._bus`` callbacks with publications:
``on_live`` after every (re)connection, since publications may have been missed
while it was down; the channel hub reads history to fill such gaps.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from typing import Protocol, runtime_checkable

from tenfold._bus import ListenerSlot, Subscription
from tenfold.realtime._model import Publication, Recovery, StreamPosition

__all__ = ["Backplane", "ChannelListener", "MemoryBackplane", "new_epoch", "recover_from"]


def new_epoch() -> str:
    """A fresh epoch: 8 random hex characters."""
    return secrets.token_hex(4)


@runtime_checkable
class ChannelListener(Protocol):
    """Receives one channel's live publications and the state of the connection carrying them."""

    def on_live(self, channel: str) -> None: ...

    def on_publication(self, publication: Publication) -> None: ...

    def on_lost(self, channel: str, reason: str) -> None: ...


@runtime_checkable
class Backplane(Protocol):
    """History and live delivery of channels (memory, Redis)."""

    history_size: int

    async def publish(self, channel: str, data: bytes) -> Publication: ...

    async def recover(self, channel: str, since: StreamPosition | None) -> Recovery: ...

    async def top(self, channel: str) -> StreamPosition: ...

    def listen(self, channel: str, listener: ChannelListener) -> Subscription: ...

    async def forget(self, channel: str) -> None:
        """Drop the channel's history (its next publication starts a new epoch)."""
        ...


def recover_from(
    top: StreamPosition, history: list[Publication], since: StreamPosition | None, size: int
) -> Recovery:
    """The recovery of a client at ``since`` from a channel at ``top`` whose history (oldest
    first, at most ``size`` publications) is ``history``: shared by every backplane."""
    if since is None:
        return Recovery(top)
    if since.epoch != top.epoch or since.offset > top.offset:
        return Recovery(top, resync=True)
    missed = top.offset - since.offset
    if missed == 0:
        return Recovery(top)
    if missed > len(history) or missed > size:
        return Recovery(top, resync=True)
    tail = history[len(history) - missed :]
    if tail[0].offset != since.offset + 1:  # history trimmed or torn: never guess
        return Recovery(top, resync=True)
    return Recovery(top, tail)


class _Channel:
    __slots__ = ("epoch", "history", "listeners", "offset")

    def __init__(self, size: int) -> None:
        self.epoch = new_epoch()
        self.offset = 0
        self.history: deque[Publication] = deque(maxlen=size)
        self.listeners: list[_MemorySubscription] = []


class _MemorySubscription(ListenerSlot):
    __slots__ = ("_backplane",)

    def __init__(self, backplane: MemoryBackplane, channel: str, listener: ChannelListener):
        super().__init__(channel, listener)  # type: ignore[arg-type]
        self._backplane = backplane

    async def wait_live(self, timeout: float) -> bool:  # noqa: ASYNC109 - answers, never raises
        return self.live

    def close(self) -> None:
        self.closed = True
        self._backplane._remove(self)


class MemoryBackplane:
    """Channels in this process: the embedded profile's backplane, and the tests'.

    Publications are delivered to listeners on the next loop iteration (like
    the Redis backplane, ``publish`` returns before listeners run), in order.
    """

    def __init__(self, *, history_size: int = 100) -> None:
        self.history_size = history_size
        self._channels: dict[str, _Channel] = {}

    def __repr__(self) -> str:
        return f"<MemoryBackplane channels={len(self._channels)}>"

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(self.history_size)
        return channel

    async def publish(self, channel: str, data: bytes) -> Publication:
        state = self._channel(channel)
        state.offset += 1
        publication = Publication(channel, state.offset, state.epoch, data)
        state.history.append(publication)
        loop = asyncio.get_running_loop()
        for slot in list(state.listeners):
            loop.call_soon(_deliver, slot, publication)
        return publication

    async def recover(self, channel: str, since: StreamPosition | None) -> Recovery:
        state = self._channel(channel)
        top = StreamPosition(state.offset, state.epoch)
        return recover_from(top, list(state.history), since, self.history_size)

    async def top(self, channel: str) -> StreamPosition:
        state = self._channel(channel)
        return StreamPosition(state.offset, state.epoch)

    async def forget(self, channel: str) -> None:
        state = self._channels.pop(channel, None)
        if state is not None and state.listeners:
            fresh = self._channel(channel)
            fresh.listeners = state.listeners

    def listen(self, channel: str, listener: ChannelListener) -> Subscription:
        slot = _MemorySubscription(self, channel, listener)
        self._channel(channel).listeners.append(slot)
        slot.live_event.set()
        asyncio.get_running_loop().call_soon(_went_live, slot)
        return slot

    def _remove(self, slot: _MemorySubscription) -> None:
        state = self._channels.get(slot.channel)
        if state is not None and slot in state.listeners:
            state.listeners.remove(slot)


def _deliver(slot: ListenerSlot, publication: Publication) -> None:
    if not slot.closed:
        slot.listener.on_publication(publication)  # type: ignore[attr-defined]


def _went_live(slot: ListenerSlot) -> None:
    if not slot.closed:
        slot.listener.on_live(slot.channel)
