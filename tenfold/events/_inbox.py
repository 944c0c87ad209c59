"""``EventConsumer``: applies published events once each, whatever the relay repeats.

The relay publishes at least once: after a crash it publishes a batch again,
as new stream entries. A consumer applies each event in a database
transaction together with its inbox row (``tenfold_event_inbox``: consumer,
stream id, last applied version). An event whose version is not above the
stored one was applied already: it is skipped (counted, logged at debug), so
the handler's database effect happens once per event.

The consumer's place in the stream (the last entry id it read) is a
checkpoint, ``inbox:<name>``, moved in the same transaction, so a restart
resumes after the last committed batch. It reads with plain ``XREAD`` from
that id rather than with a consumer group: a group hands a stream's entries
to several readers, which could apply two versions of one event stream
concurrently and out of order, and its pending list would duplicate the
position the database already keeps atomically with the effects. Two
processes running the same consumer take turns on the checkpoint's row lock;
run more consumers (distinct names) to do more kinds of work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from tenfold._tasks import cancel_and_wait
from tenfold.events._checkpoint import load_checkpoint, save_checkpoint
from tenfold.events._tables import inbox
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold.db import Database, TenfoldSession
    from tenfold.events._model import Position, RecordedEvent
    from tenfold.events._streams import EventSource

__all__ = ["ConsumedBatch", "EventConsumer", "EventHandler"]

_log = get_logger("tenfold.events")

#: Applies one event inside the consumer's transaction (``session``).
EventHandler = Callable[["RecordedEvent", "TenfoldSession"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConsumedBatch:
    """What one ``poll`` did: events applied, and duplicates skipped."""

    applied: int
    duplicates: int

    @property
    def read(self) -> int:
        return self.applied + self.duplicates


class EventConsumer:
    """Reads ``source`` from where consumer ``name`` stopped and applies each event once.

    ``handler(event, session)`` runs in the transaction that records the
    event in the inbox and moves the consumer's checkpoint; if it raises,
    the whole batch rolls back and is read again on the next poll.
    ``applied`` and ``duplicates`` count what committed in this process.
    """

    def __init__(
        self,
        db: Database,
        source: EventSource,
        name: str,
        handler: EventHandler,
        *,
        batch_size: int = 100,
        interval: float = 0.5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.db = db
        self.source = source
        self.consumer = name
        self.name = f"events-consumer-{name}"
        self.handler = handler
        self.batch_size = batch_size
        self.interval = interval
        self._clock = clock or time.time
        self.applied = 0
        self.duplicates = 0
        self._position: Position | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<EventConsumer {self.consumer!r} of {self.source.name!r}>"

    @property
    def checkpoint(self) -> str:
        """The name of the consumer's place in the stream: ``inbox:<name>``."""
        return f"inbox:{self.consumer}"

    async def poll(self) -> ConsumedBatch:
        """Read the next entries and apply them in one transaction."""
        if self._position is None:
            async with self.db.session() as session:
                self._position = await load_checkpoint(session, self.checkpoint, lock=False)
        entries = await self.source.read(self._position, self.batch_size)
        if not entries:
            return ConsumedBatch(0, 0)
        applied = duplicates = 0
        async with self.db.session() as session:
            stored = await load_checkpoint(session, self.checkpoint)
            # Another process running this consumer may have moved on meanwhile.
            entries = [(entry, event) for entry, event in entries if entry > stored]
            versions: dict[str, int] = {}
            for _, event in entries:
                if await self._apply(session, event, versions):
                    applied += 1
                else:
                    duplicates += 1
            last = entries[-1][0] if entries else stored
            await save_checkpoint(session, self.checkpoint, last, now=self._clock())
        self._position = last
        self.applied += applied
        self.duplicates += duplicates
        return ConsumedBatch(applied, duplicates)

    async def _apply(
        self, session: TenfoldSession, event: RecordedEvent, versions: dict[str, int]
    ) -> bool:
        """Run the handler unless the inbox has this version; whether it ran."""
        seen = versions.get(event.stream_id)
        if seen is None:
            seen = await self._inbox_version(session, event.stream_id)
        if event.version <= seen:
            _log.debug(
                "event_duplicate_skipped",
                consumer=self.consumer,
                stream_id=event.stream_id,
                version=event.version,
            )
            versions[event.stream_id] = seen
            return False
        if event.version > seen + 1:
            # Trimmed from the stream before this consumer read them, or it started late.
            _log.warning(
                "event_versions_missed",
                consumer=self.consumer,
                stream_id=event.stream_id,
                after=seen,
                version=event.version,
            )
        await self.handler(event, session)
        await self._store_version(session, event.stream_id, event.version)
        versions[event.stream_id] = event.version
        return True

    async def _inbox_version(self, session: TenfoldSession, stream_id: str) -> int:
        query = sa.select(inbox.c.version).where(
            inbox.c.consumer == self.consumer, inbox.c.stream_id == stream_id
        )
        return int(await session.scalar(query) or 0)

    async def _store_version(self, session: TenfoldSession, stream_id: str, version: int) -> None:
        if session.bind.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        statement = insert(inbox).values(
            consumer=self.consumer, stream_id=stream_id, version=version
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["consumer", "stream_id"], set_={"version": version}
            )
        )

    async def run_until_idle(self) -> ConsumedBatch:
        """Poll until a poll reads nothing; the totals."""
        applied = duplicates = 0
        while True:
            batch = await self.poll()
            if not batch.read:
                return ConsumedBatch(applied, duplicates)
            applied += batch.applied
            duplicates += batch.duplicates

    async def start(self) -> None:
        """Consume in the background (a no-op if running already)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            try:
                batch = await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Nothing committed: the batch is read again on the next poll.
                _log.warning("events_consumer_failed", consumer=self.consumer, exc_info=exc)
                batch = ConsumedBatch(0, 0)
            if batch.read < self.batch_size:
                await self.source.wait(self.interval)
