"""``ChannelHub``: one process's side of the channels: publish, subscribe, gap-free fan-out.

    await hub.publish("tournament:42", {"leader": "Red"})     from any process
    sub = await hub.subscribe("tournament:42", sink, since)   a connection joins

The hub listens to a channel on the backplane while at least one local
subscriber wants it, and delivers each publication to the local subscribers
exactly once and in offset order:

- a publication at or below the channel's last offset is a duplicate and is
  dropped; one beyond ``last + 1`` reveals a gap (a pub/sub message lost
  while Redis reconnected), which the hub fills from history before going on,
  or, if history no longer has it, tells the subscribers to resync;
- after the pub/sub connection comes back (``on_live``), the hub reads history
  from its last offset the same way;
- a subscriber joins in two steps: it is registered first (publications
  arriving meanwhile are buffered for it), then its recovery (or the
  channel's top) is read; the buffered publications beyond that position
  follow the reply. So nothing published between the two steps is lost or
  sent twice.

With a batch window (``batch_window`` seconds, per hub), a channel's
publications are collected until the hub's next tick (every window on the
loop's clock, at a random phase per hub so that instances do not all fan out
at the same moment) and each subscriber gets them as one batch, so no
publication waits more than a window; 0 sends each publication at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from tenfold._errors import DependencyUnavailable
from tenfold.observability import get_logger
from tenfold.realtime._backplane import Backplane
from tenfold.realtime._model import Publication, Recovery, StreamPosition, check_channel

__all__ = ["ChannelHub", "Sink", "Subscriber", "push_frame", "resync_frame"]

_log = get_logger("tenfold.realtime")


class Sink(Protocol):
    """Where a subscriber's frames go: one connection's send side."""

    def push(self, frame: str) -> None:
        """Queue one text frame for sending; must not block."""
        ...


def push_frame(channel: str, epoch: str, publications: list[Publication]) -> str:
    """The protocol's push of a batch: each publication's JSON embedded as it was published."""
    pubs = [{"offset": p.offset, "data": orjson.Fragment(p.data)} for p in publications]
    return orjson.dumps({"push": {"channel": channel, "epoch": epoch, "pubs": pubs}}).decode()


def resync_frame(channel: str, epoch: str, offset: int) -> str:
    """The protocol's push telling a client its position in ``channel`` is lost: reload the
    state the channel carries; the client is at ``(offset, epoch)`` from now on."""
    push = {"channel": channel, "epoch": epoch, "offset": offset, "resync": True}
    return orjson.dumps({"push": push}).decode()


class Subscriber:
    """One sink's subscription to one channel, and the last offset it was sent."""

    __slots__ = ("buffer", "channel", "offset", "sink")

    def __init__(self, channel: str, sink: Sink) -> None:
        self.channel = channel
        self.sink = sink
        self.offset = 0
        #: Publications that arrived while the subscription was being set up (None: live).
        self.buffer: list[Publication] | None = []

    def __repr__(self) -> str:
        return f"<Subscriber {self.channel!r} at {self.offset}>"


class _Channel:
    """A channel this process listens to: its subscribers, last position and batch."""

    __slots__ = (
        "batch",
        "filling",
        "flush",
        "hub",
        "last",
        "name",
        "subscribers",
        "subscription",
        "was_live",
    )

    def __init__(self, hub: ChannelHub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.subscribers: set[Subscriber] = set()
        self.last: StreamPosition | None = None
        self.batch: list[Publication] = []
        self.flush: asyncio.TimerHandle | None = None
        #: Live publications held while a gap is filled from history (None: not filling).
        self.filling: list[Publication] | None = None
        self.subscription: Any = None
        self.was_live = False

    # -- ChannelListener ---------------------------------------------------------------------

    def on_live(self, channel: str) -> None:
        if self.was_live and self.last is not None:  # a reconnection: read back the missed
            self._fill()
        self.was_live = True

    def on_lost(self, channel: str, reason: str) -> None:
        _log.warning("realtime_channel_lost", channel=self.name, reason=reason)

    def on_publication(self, publication: Publication) -> None:
        if self.filling is not None:
            self.filling.append(publication)
            return
        self._accept(publication)

    # -- ordering ----------------------------------------------------------------------------

    def _accept(self, publication: Publication) -> None:
        last = self.last
        if last is None or publication.epoch != last.epoch:
            if last is not None:  # the channel's history was lost: positions mean nothing now
                self.hub.stats.resyncs += len(self.subscribers)
                frame = resync_frame(self.name, publication.epoch, publication.offset - 1)
                for subscriber in self.subscribers:
                    subscriber.offset = publication.offset - 1
                    subscriber.sink.push(frame)
            self.last = publication.position
            self._emit(publication)
            return
        if publication.offset <= last.offset:
            return  # already delivered (a recovery and the live message overlapped)
        if publication.offset > last.offset + 1:
            self.filling = [publication]
            self._fill()
            return
        self.last = publication.position
        self._emit(publication)

    def _fill(self) -> None:
        if self.filling is None:
            self.filling = []
        self.hub._spawn(self._fill_gap())

    async def _fill_gap(self) -> None:
        """Read the publications after ``last`` from history, then release the held ones."""
        since = self.last
        try:
            recovery = await self.hub.backplane.recover(self.name, since)
        except Exception as exc:  # the backplane is down: the next on_live tries again
            _log.warning("realtime_gap_unfilled", channel=self.name, error=repr(exc))
            recovery = None
        held, self.filling = self.filling or [], None
        if recovery is not None and recovery.resync:
            self.hub.stats.resyncs += len(self.subscribers)
            frame = resync_frame(self.name, recovery.top.epoch, recovery.top.offset)
            for subscriber in self.subscribers:
                subscriber.sink.push(frame)
                subscriber.offset = recovery.top.offset
            self.last = recovery.top
        elif recovery is not None:
            self.hub.stats.history_hits += 1
            for publication in recovery.publications:
                self._accept(publication)
        for publication in held:
            self.on_publication(publication)

    # -- fan-out -----------------------------------------------------------------------------

    def _emit(self, publication: Publication) -> None:
        for subscriber in self.subscribers:
            if subscriber.buffer is not None:
                subscriber.buffer.append(publication)
        window = self.hub.batch_window
        if window <= 0:
            self._send([publication])
            return
        self.batch.append(publication)
        if self.flush is None:
            # On the window's ticks, not a window after this publication: one that waited in
            # the socket while the last batch went out is not held a whole window more.
            loop = asyncio.get_running_loop()
            phase = self.hub.batch_phase
            due = ((loop.time() - phase) // window + 1) * window + phase
            self.flush = loop.call_at(due, self._flush)

    def _flush(self) -> None:
        self.flush = None
        batch, self.batch = self.batch, []
        if batch:
            self._send(batch)

    def _send(self, publications: list[Publication]) -> None:
        self.hub.stats.batches += 1
        self.hub.stats.batched += len(publications)
        epoch = publications[-1].epoch
        first, top = publications[0].offset, publications[-1].offset
        whole: str | None = None  # encoded once, sent to every subscriber that needs it all
        for subscriber in self.subscribers:
            if subscriber.buffer is not None or subscriber.offset >= top:
                continue
            if subscriber.offset < first:
                if whole is None:
                    whole = push_frame(self.name, epoch, publications)
                frame = whole
            else:
                fresh = [p for p in publications if p.offset > subscriber.offset]
                frame = push_frame(self.name, epoch, fresh)
            subscriber.offset = top
            subscriber.sink.push(frame)


class HubStats:
    """Counts the metrics read: batches sent, publications in them, history hits, resyncs."""

    __slots__ = ("batched", "batches", "history_hits", "published", "resyncs")

    def __init__(self) -> None:
        self.published = 0
        self.batches = 0
        self.batched = 0
        self.history_hits = 0
        self.resyncs = 0


class ChannelHub:
    """This process's channels over a ``Backplane`` (see the module docstring)."""

    def __init__(
        self,
        backplane: Backplane,
        *,
        batch_window: float = 0.0,
        live_timeout: float = 5.0,
        dumps: Callable[[Any], bytes] = orjson.dumps,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.backplane = backplane
        self.batch_window = batch_window
        #: Where in the window this hub's ticks fall: instances that share a channel fan
        #: each batch out at different moments, not all at once on the same cores.
        self.batch_phase = random() * batch_window
        self.live_timeout = live_timeout
        self._dumps = dumps
        self._channels: dict[str, _Channel] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats = HubStats()

    def __repr__(self) -> str:
        return f"<ChannelHub {self.backplane!r} channels={len(self._channels)}>"

    @property
    def channels(self) -> list[str]:
        """The channels this process listens to (those with local subscribers)."""
        return list(self._channels)

    def subscriber_count(self, channel: str) -> int:
        state = self._channels.get(channel)
        return len(state.subscribers) if state is not None else 0

    async def publish(self, channel: str, data: Any) -> Publication:
        """Publish ``data`` (JSON-serialisable; ``bytes`` are sent as they are, and must be
        JSON) to every subscriber of ``channel`` on every instance."""
        check_channel(channel)
        raw = data if isinstance(data, bytes) else self._dumps(data)
        publication = await self.backplane.publish(channel, raw)
        self.stats.published += 1
        return publication

    async def subscribe(
        self, channel: str, sink: Sink, since: StreamPosition | None = None
    ) -> tuple[Subscriber, Recovery]:
        """Join ``channel``; the recovery from ``since`` (or the channel's top).

        The caller sends the reply with the recovery's publications, then calls
        ``go_live(subscriber)``, which sends what arrived in between.
        """
        check_channel(channel)
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel(self, channel)
            state.subscription = self.backplane.listen(channel, state)
        subscriber = Subscriber(channel, sink)
        state.subscribers.add(subscriber)
        try:
            if not await state.subscription.wait_live(self.live_timeout):
                raise DependencyUnavailable(
                    f"channel {channel!r} is not reachable now", dependency="realtime"
                )
            recovery = self._known(state, since)
            if recovery is None:
                recovery = await self.backplane.recover(channel, since)
        except BaseException:
            self.unsubscribe(subscriber)
            raise
        if recovery.publications:
            self.stats.history_hits += 1
        if recovery.resync:
            self.stats.resyncs += 1
        subscriber.offset = recovery.top.offset
        if state.last is None or (
            state.last.epoch == recovery.top.epoch and state.last.offset < recovery.top.offset
        ):
            state.last = recovery.top
        return subscriber, recovery

    @staticmethod
    def _known(state: _Channel, since: StreamPosition | None) -> Recovery | None:
        """The recovery the hub can answer without reading history, or None.

        While the channel is live and has no gap being filled, every
        publication after ``state.last`` reaches this process through the live
        feed: a subscriber starting from the top (or already at it) needs no
        read. In a storm of subscribers to one channel, only the first reads.
        """
        last = state.last
        if last is None or state.filling is not None or not state.subscription.live:
            return None
        if since is None or since == last:
            return Recovery(last)
        return None

    def go_live(self, subscriber: Subscriber) -> None:
        """Send the publications that arrived while ``subscriber`` was joining, then live."""
        buffered, subscriber.buffer = subscriber.buffer or [], None
        fresh = [p for p in buffered if p.offset > subscriber.offset]
        if fresh:
            subscriber.offset = fresh[-1].offset
            subscriber.sink.push(push_frame(subscriber.channel, fresh[-1].epoch, fresh))

    def unsubscribe(self, subscriber: Subscriber) -> None:
        state = self._channels.get(subscriber.channel)
        if state is None:
            return
        state.subscribers.discard(subscriber)
        if not state.subscribers:
            del self._channels[subscriber.channel]
            if state.flush is not None:
                state.flush.cancel()
            state.subscription.close()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for state in list(self._channels.values()):
            for subscriber in list(state.subscribers):
                self.unsubscribe(subscriber)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
