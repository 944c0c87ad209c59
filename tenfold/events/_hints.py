"""Append hints: a subscription in another process hears of an append at once, not at its
next poll.

After an append, the store pokes ``AppendHints``, which publishes an empty
message on the platform's Redis pub/sub channel ``<app>:events:appended``.
Every process's hints listener wakes its store's caught-up subscriptions,
which then read the log. A hint carries nothing: the log is the truth, and a
hint that is lost (Redis down, a reconnect) only means the subscription
finds the events at its next poll (``TENFOLD_EVENTS__POLL_INTERVAL``).

Hints are coalesced: while one publish is in flight, further pokes make one
more publish after it, so a burst of appends costs a couple of messages,
not one per append.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tenfold._errors import TenfoldError
from tenfold._tasks import cancel_and_wait
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold._bus import Subscription
    from tenfold.redis import RedisHub

__all__ = ["AppendHints"]

_log = get_logger("tenfold.events")


class AppendHints:
    """Publishes and hears "the log grew" hints over the hub's pub/sub (a component)."""

    name = "events-hints"

    def __init__(self, hub: RedisHub, channel: str, wake: Any) -> None:
        self.hub = hub
        self.channel = channel
        self._wake = wake
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self.sent = 0

    def __repr__(self) -> str:
        return f"<AppendHints {self.channel!r}>"

    async def start(self) -> None:
        self._subscription = self.hub.pubsub.listen(self.channel, self)

    async def stop(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()
        task, self._task = self._task, None
        if task is not None and not task.done():  # a finished publish has nothing to stop
            await cancel_and_wait(task)

    def poke(self) -> None:
        """Tell the other processes the log grew (soon; never blocks the caller)."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._publish(), name="tenfold-events-hint")

    async def _publish(self) -> None:
        while True:
            self._again = False
            try:
                await self.hub.publish(self.channel, b"")
                self.sent += 1
            except TenfoldError as exc:  # a lost hint costs one poll interval, never an event
                _log.debug("events_hint_failed", error=repr(exc))
                return
            if not self._again:
                return

    # -- Listener: every message, and every (re)connection, wakes the subscriptions -----------

    def on_live(self, channel: str) -> None:
        self._wake()

    def on_message(self, channel: str, data: bytes) -> None:
        self._wake()

    def on_lost(self, channel: str, reason: str) -> None:
        return None
