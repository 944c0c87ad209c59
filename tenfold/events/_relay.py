"""``EventRelay``: publishes committed events to another system, at least once, in log order.

The event table is the outbox: an event is written by the transaction that
appends it, so a rolled-back append leaves nothing to publish. The relay is
a consumer of the global log with a checkpoint (``relay:<target name>``).
Each batch is one transaction:

1. lock the checkpoint row (two relays of one target take turns);
2. read the events after it (``EventStore.read_all``: none can be skipped);
3. publish them to the target, in log order;
4. move the checkpoint to the last one and commit.

If the process dies (or the commit fails) after 3, the next batch publishes
the same events again: duplicates, never a loss, and never out of order.
Consumers deduplicate by (stream, version): see ``tenfold.events._inbox``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tenfold._tasks import cancel_and_wait
from tenfold.events._checkpoint import load_checkpoint, save_checkpoint
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold.events._store import EventStore
    from tenfold.events._streams import EventTarget

__all__ = ["EventRelay", "RelayStats"]

_log = get_logger("tenfold.events")


class RelayStats(Collector):
    """``<ns>_events_relayed_total{target}`` and ``<ns>_events_relay_lag_seconds{target}``.

    The lag is the age of the oldest event the last batch published (0 once a
    pass finds nothing new): how far behind the log the target was.
    """

    def __init__(self, target: str, namespace: str = "tenfold") -> None:
        self.target = target
        self._prefix = f"{namespace}_events_" if namespace else "events_"
        self.relayed = 0
        self.lag = 0.0

    def __repr__(self) -> str:
        return f"<RelayStats {self.target!r} relayed={self.relayed}>"

    def collect(self) -> Iterator[Metric]:
        relayed = CounterMetricFamily(
            f"{self._prefix}relayed", "Events the relay published.", labels=["target"]
        )
        relayed.add_metric([self.target], self.relayed)
        lag = GaugeMetricFamily(
            f"{self._prefix}relay_lag_seconds",
            "Age of the oldest event the relay's last batch published.",
            labels=["target"],
        )
        lag.add_metric([self.target], self.lag)
        yield relayed
        yield lag


class EventRelay:
    """Publishes the global log to ``target`` in batches of ``batch_size`` (a Component).

    ``start()`` runs it in the background: a pass after each append in this
    process, or every ``interval`` seconds. ``drain()`` is one pass, for
    scripts and tests.
    """

    name = "events-relay"

    def __init__(
        self,
        store: EventStore,
        target: EventTarget,
        *,
        interval: float = 0.5,
        batch_size: int = 500,
        clock: Callable[[], float] = time.time,
        stats: RelayStats | None = None,
    ) -> None:
        self.store = store
        self.target = target
        self.interval = interval
        self.batch_size = batch_size
        self._clock = clock
        self.stats = stats if stats is not None else RelayStats(target.name)
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<EventRelay {self.target!r} interval={self.interval}>"

    @property
    def checkpoint(self) -> str:
        """The name of the relay's checkpoint: ``relay:<target name>``."""
        return f"relay:{self.target.name}"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def relay_batch(self) -> int:
        """Publish the next batch after the checkpoint and move it, in one transaction."""
        async with self.store.db.session() as session:
            after = await load_checkpoint(session, self.checkpoint)
            events = await self.store.read_all(after, limit=self.batch_size, session=session)
            if not events:
                self.stats.lag = 0.0
                return 0
            await self.target.publish(events)
            # A crash from here to the commit republishes this batch: consumers dedupe.
            await save_checkpoint(session, self.checkpoint, events[-1].position, now=self._clock())
        self.stats.relayed += len(events)
        self.stats.lag = max(0.0, self._clock() - events[0].recorded_at)
        _log.debug("events_relayed", target=self.target.name, count=len(events))
        return len(events)

    async def drain(self) -> int:
        """Batches until the log is published to its end; how many events."""
        total = 0
        while True:
            count = await self.relay_batch()
            total += count
            if count < self.batch_size:
                return total

    async def start(self) -> None:
        """Run in the background (a no-op if running already)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tenfold-events-relay")
            _log.info("events_relay_started", target=self.target.name, checkpoint=self.checkpoint)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            # Wait first: on SQLite the platform creates the tables after components start.
            await self.store.wait_for_appends(self.interval)
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Nothing moved: the next pass publishes the batch again.
                _log.warning("events_relay_failed", target=self.target.name, exc_info=exc)
