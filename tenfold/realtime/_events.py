"""Committed events into channels: the event relay's target for realtime.

    RealtimeExtension(events_to_channels=lambda e: f"tournament:{e.data['tournament']}")

With the events extension installed, the realtime extension then runs an
``EventRelay`` (checkpoint ``relay:realtime``) that publishes every committed
event whose function returns a channel (or several) as
``{"type", "stream_id", "version", "position", "data"}``. The relay is at
least once: after a crash between its publish and its checkpoint, an event is
published again (with a new offset), so clients that apply events should
skip a ``(stream_id, version)`` they have applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from tenfold.realtime._service import Realtime

if TYPE_CHECKING:
    from tenfold.events import RecordedEvent

__all__ = ["ChannelOf", "ChannelTarget"]

#: The channel(s) an event goes to, or None for none.
ChannelOf = Callable[["RecordedEvent"], "str | Iterable[str] | None"]


class ChannelTarget:
    """An ``EventTarget`` (tenfold.events) that publishes events into realtime channels."""

    name = "realtime"

    def __init__(self, realtime: Realtime, channel_of: ChannelOf) -> None:
        self.realtime = realtime
        self.channel_of = channel_of

    def __repr__(self) -> str:
        return f"<ChannelTarget {self.realtime!r}>"

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            channels = self.channel_of(event)
            if channels is None:
                continue
            message = {
                "type": event.type,
                "stream_id": event.stream_id,
                "version": event.version,
                "position": str(event.position),
                "data": event.data,
            }
            for channel in [channels] if isinstance(channels, str) else channels:
                await self.realtime.publish(channel, message)
