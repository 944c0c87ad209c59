"""``Notifier``: wakes ``wait_for`` callers when their entry's name is published.

One listener on the wake-up channel per backend (on the process's one pub/sub
connection), subscribed on first use: a thousand waiters cost one channel,
not a thousand polls. When the channel is lost every waiter fails with
``CacheUnavailable`` (it then loads or reads for itself); waiters that
arrive while the channel is down wait up to ``live_timeout`` for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from tenfold._bus import Listener, Subscription
from tenfold.cache._errors import CacheUnavailable

__all__ = ["Notifier"]


class Notifier:
    """A future per waiting caller, resolved when its name arrives on ``channel``."""

    def __init__(
        self,
        listen: Callable[[str, Listener], Subscription],
        channel: str,
        *,
        live_timeout: float = 1.0,
    ) -> None:
        self._listen = listen
        self.channel = channel
        self.live_timeout = live_timeout
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._subscription: Subscription | None = None

    def __repr__(self) -> str:
        live = self._subscription is not None and self._subscription.live
        return (
            f"<Notifier {self.channel!r} {'live' if live else 'down'} waiters={len(self._waiters)}>"
        )

    @contextlib.asynccontextmanager
    async def waiter(self, name: str) -> AsyncIterator[asyncio.Future[None]]:
        """A future resolved when ``name`` is published (or failed if the channel is lost)."""
        await self._live()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, set()).add(future)
        try:
            yield future
        finally:
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a loss the caller did not wait for is not news
            waiters = self._waiters.get(name)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[name]

    async def _live(self) -> None:
        if self._subscription is None:
            self._subscription = self._listen(self.channel, self)
        if not self._subscription.live and not await self._subscription.wait_live(
            self.live_timeout
        ):
            raise CacheUnavailable(f"the wake-up channel {self.channel!r} is not live")

    # -- Listener --------------------------------------------------------------

    def on_live(self, channel: str) -> None:
        return None  # waiters register once live; nothing was waiting on a lost channel

    def on_message(self, channel: str, data: bytes) -> None:
        name = data.decode("utf-8", "replace")
        for future in self._waiters.pop(name, ()):
            if not future.done():
                future.set_result(None)

    def on_lost(self, channel: str, reason: str) -> None:
        self._fail_waiters(f"the wake-up channel {channel!r} was lost")

    def _fail_waiters(self, reason: str) -> None:
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(CacheUnavailable(reason))

    async def aclose(self) -> None:
        """Stop listening; anyone still waiting gets CacheUnavailable."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()
        self._fail_waiters("the cache backend was closed")
