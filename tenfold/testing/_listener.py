"""``RecordingListener``: a bus listener for tests, recording what it is told, in order."""

from __future__ import annotations

import asyncio

__all__ = ["RecordingListener"]


class RecordingListener:
    """Records ``on_live``/``on_message``/``on_lost`` as events; await the next with ``next()``.

    Events are ``("live", channel)``, ``("message", channel, data)`` and
    ``("lost", channel, reason)``.
    """

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []
        self._queue: asyncio.Queue[tuple[object, ...]] = asyncio.Queue()

    def __repr__(self) -> str:
        return f"<RecordingListener {len(self.events)} events>"

    def _record(self, event: tuple[object, ...]) -> None:
        self.events.append(event)
        self._queue.put_nowait(event)

    def on_live(self, channel: str) -> None:
        self._record(("live", channel))

    def on_message(self, channel: str, data: bytes) -> None:
        self._record(("message", channel, data))

    def on_lost(self, channel: str, reason: str) -> None:
        self._record(("lost", channel, reason))

    async def next(self, timeout: float = 10.0) -> tuple[object, ...]:  # noqa: ASYNC109
        """The next event, waiting at most ``timeout`` seconds (``TimeoutError`` after)."""
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def next_kind(self, kind: str, timeout: float = 10.0) -> tuple[object, ...]:  # noqa: ASYNC109
        """The next event of ``kind`` (``live``, ``message``, ``lost``), skipping others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.next(max(0.0, deadline - loop.time()))
            if event[0] == kind:
                return event

    def messages(self) -> list[bytes]:
        """The data of every message so far."""
        return [e[2] for e in self.events if e[0] == "message"]  # type: ignore[misc]
