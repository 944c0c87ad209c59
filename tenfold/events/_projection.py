"""Projections: read models built from the global log, exactly once.

A projection's handler writes its read model in the same transaction that
moves its checkpoint: a batch of events either applies completely, with the
checkpoint after its last event, or not at all. After a crash, a handler
error or a lost race with another runner, the next batch starts where the
last commit left off, so each event's effect is in the read model once.

    class Leaderboard(Projection):
        name = "leaderboard"
        tables = (points,)
        types = {"MatchCompleted"}

        async def handle(self, event, session, tables):
            t = tables["leaderboard_points"]
            await session.execute(...)

    projections = platform.get(Projections)
    appended = await store.append(...)
    await projections.wait_for("leaderboard", appended.position)  # read your writes
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sqlalchemy as sa

from tenfold._errors import TenfoldError
from tenfold.events._checkpoint import load_checkpoint, save_checkpoint
from tenfold.events._model import START, Position, RecordedEvent
from tenfold.events._tables import checkpoints, events
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold.db import TenfoldSession
    from tenfold.events._store import EventStore

__all__ = ["Projection", "ProjectionError", "ProjectionStatus", "Projections"]

_log = get_logger("tenfold.events")

#: Seconds before ``wait_for`` looks again for an event held back by an older
#: transaction; doubled up to the store's poll interval.
_FIRST_RETRY = 0.002

#: A projection's tables by their live names: the live tables, or a rebuild's fresh ones.
Tables = Mapping[str, sa.Table]


class ProjectionError(TenfoldError):
    """A projection's handler failed on an event: its batch was rolled back.

    Nothing of the batch is applied and the checkpoint has not moved; the
    next catch-up starts with the same events. ``__cause__`` is the
    handler's exception.
    """

    def __init__(self, projection: str, event: RecordedEvent) -> None:
        super().__init__(
            f"projection {projection!r} failed on {event.type} {event.stream_id!r} "
            f"version {event.version} at position {event.position}",
            projection=projection,
            stream_id=event.stream_id,
            version=event.version,
            position=str(event.position),
            event_type=event.type,
        )
        self.projection = projection
        self.event = event


class Projection:
    """A read model built from the global log; subclass it and write ``handle``.

    ``name`` names its checkpoint (keep it when the code changes; a new name
    starts from the beginning of the log). ``tables`` are the tables it owns
    (a rebuild recreates them). ``types`` are the event types it handles
    (None: every event; the others still move its checkpoint).
    """

    name: ClassVar[str] = ""
    tables: ClassVar[tuple[sa.Table, ...]] = ()
    types: ClassVar[frozenset[str] | set[str] | None] = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    async def handle(self, event: RecordedEvent, session: TenfoldSession, tables: Tables) -> None:
        """Apply ``event`` to the read model in ``session``, through ``tables`` only.

        ``tables["<table name>"]`` is the table to write: the live one, or the
        fresh copy a rebuild is filling. Raise to refuse the event: the batch
        rolls back.
        """
        raise NotImplementedError

    def wants(self, event: RecordedEvent) -> bool:
        return self.types is None or event.type in self.types


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """Where a projection stands: its checkpoint and how many committed events follow it."""

    name: str
    checkpoint: Position
    behind: int
    updated_at: float | None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "checkpoint": str(self.checkpoint),
            "behind": self.behind,
            "updated_at": self.updated_at,
        }


class Projections:
    """Runs registered projections over ``store``'s log (``platform.get(Projections)``).

    ``catch_up(name)`` applies every committed event after the checkpoint,
    ``batch_size`` events per write transaction. Runners of one projection
    in several processes take turns on its checkpoint row; each event is
    applied once.
    """

    def __init__(
        self,
        store: EventStore,
        projections: Iterable[Projection] = (),
        *,
        batch_size: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.batch_size = batch_size or store.page_size
        self.clock = clock
        self._projections: dict[str, Projection] = {}
        #: The furthest checkpoint each projection is known to have reached in this process.
        self._reached: dict[str, Position] = {}
        #: Set (and replaced) whenever a checkpoint in ``_reached`` moves.
        self._moved = asyncio.Event()
        #: Projections a running ``ProjectionRunner`` in this process keeps caught up.
        self._followed: collections.Counter[str] = collections.Counter()
        #: Followed projections whose runner is waiting out a failure.
        self._failing: set[str] = set()
        #: The catch-up ``wait_for`` callers share, per projection.
        self._catching_up: dict[str, asyncio.Future[Position]] = {}
        for projection in projections:
            self.register(projection)

    def __repr__(self) -> str:
        return f"<Projections {sorted(self._projections)}>"

    def register(self, projection: Projection) -> Projection:
        """Add ``projection``; ``ValueError`` if it has no name or its name is taken."""
        name = projection.name
        if not name or name in self._projections:
            raise ValueError(f"a projection needs a unique name, got {name!r}")
        self._projections[name] = projection
        return projection

    @property
    def names(self) -> list[str]:
        return list(self._projections)

    def get(self, name: str) -> Projection:
        """The projection named ``name``; ``LookupError`` naming the known ones."""
        try:
            return self._projections[name]
        except KeyError:
            known = ", ".join(self._projections) or "none"
            raise LookupError(f"no projection {name!r} (registered: {known})") from None

    # -- catching up -----------------------------------------------------------------------

    async def catch_up(self, name: str) -> Position:
        """Apply every committed event after ``name``'s checkpoint; the new checkpoint.

        Raises ``ProjectionError`` when a handler fails: that batch is rolled
        back, earlier batches stay committed.
        """
        projection = self.get(name)
        tables = {t.name: t for t in projection.tables}
        while True:
            position, full = await self.apply_batch(projection, tables, name)
            if not full:
                return position

    async def apply_batch(
        self, projection: Projection, tables: Tables, checkpoint: str
    ) -> tuple[Position, bool]:
        """One write transaction: the next batch after ``checkpoint``, applied through
        ``tables``; (the checkpoint, whether the batch was full)."""
        async with self.store.db.session() as session:
            position, count = await self.apply_in(session, projection, tables, checkpoint)
        self._note(checkpoint, position)  # committed (or nothing to apply): known reached
        return position, count >= self.batch_size

    def _note(self, name: str, position: Position) -> None:
        if name in self._projections and position > self._reached.get(name, START):
            self._reached[name] = position
            self._wake()

    def following(self, names: Iterable[str], on: bool) -> None:
        """Mark ``names`` as kept caught up by a runner in this process (``on``), or no
        longer: ``wait_for`` then watches the runner's progress instead of catching up."""
        for name in names:
            self._followed[name] += 1 if on else -1
            if self._followed[name] <= 0:
                del self._followed[name]
                self._failing.discard(name)
        self._wake()

    def failing(self, name: str, failed: bool) -> None:
        """The runner here failed to catch ``name`` up (``failed``), or has again."""
        if failed != (name in self._failing):
            if failed:
                self._failing.add(name)
            else:
                self._failing.discard(name)
            self._wake()

    def _wake(self) -> None:
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def apply_in(
        self, session: TenfoldSession, projection: Projection, tables: Tables, checkpoint: str
    ) -> tuple[Position, int]:
        """The next batch applied in ``session`` (the checkpoint row locked first)."""
        after = await load_checkpoint(session, checkpoint)
        batch = await self.store.read_all(after, limit=self.batch_size, session=session)
        for event in batch:
            if not projection.wants(event):
                continue
            try:
                await projection.handle(event, session, tables)
            except Exception as exc:
                _log.warning(
                    "projection_failed",
                    projection=projection.name,
                    stream_id=event.stream_id,
                    version=event.version,
                    position=str(event.position),
                    error=repr(exc),
                )
                raise ProjectionError(projection.name, event) from exc
        if not batch:
            return after, 0
        position = batch[-1].position
        await save_checkpoint(session, checkpoint, position, now=self.clock())
        return position, len(batch)

    async def wait_for(
        self,
        name: str,
        position: Position,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the caller's read
    ) -> Position:
        """Return once ``name`` has applied ``position``; ``TimeoutError`` after
        ``timeout`` seconds.

        For reading your own writes: ``appended = await store.append(...)``,
        then ``await projections.wait_for(name, appended.position)``. Where a
        healthy runner in this process follows ``name`` (the same append woke
        it), this waits for the runner's pass and costs no query: a thousand
        waiters are one catch-up, not a thousand taking turns on the
        checkpoint's lock. Otherwise (no runner here, or one waiting out a
        handler failure) it catches ``name`` up itself, and the failure
        reaches the caller. The event may be held back while an older
        transaction is still running; this keeps catching up until it is
        applied.
        """
        retry = 0.0
        async with asyncio.timeout(timeout):
            while True:
                reached = self._reached.get(name, START)
                if reached >= position:
                    return reached
                if self._followed.get(name) and name not in self._failing:
                    await self._moved.wait()  # a checkpoint moved, or the runner's health
                    continue
                reached = await self._shared_catch_up(name)
                if reached >= position:
                    return reached
                # Held back by an older transaction still running: usually a moment.
                retry = min(max(retry * 2, _FIRST_RETRY), self.store.poll_interval)
                await self.store.wait_for_appends(retry)

    async def _shared_catch_up(self, name: str) -> Position:
        """``catch_up(name)``, or the one already running in this process: concurrent
        readers of their own writes share one catch-up (then look again if it started
        before their append) instead of queueing on the checkpoint's lock one by one."""
        running = self._catching_up.get(name)
        if running is None:
            running = asyncio.ensure_future(self.catch_up(name))
            self._catching_up[name] = running
            running.add_done_callback(lambda done: self._done_catching_up(name, done))
        return await asyncio.shield(running)

    def _done_catching_up(self, name: str, done: asyncio.Future[Position]) -> None:
        if self._catching_up.get(name) is done:
            del self._catching_up[name]
        if not done.cancelled():
            done.exception()  # retrieved: its waiters (if any are left) raise it

    async def rebuild(self, name: str) -> Position:
        """Build ``name``'s read model again from the start of the log into fresh tables,
        then swap them in by one transaction; the new checkpoint (see ``_rebuild``)."""
        from tenfold.events._rebuild import rebuild

        return await rebuild(self, name)

    # -- status ----------------------------------------------------------------------------

    async def status(self, name: str) -> ProjectionStatus:
        """``name``'s checkpoint and the number of events after it (read, not locked)."""
        self.get(name)
        async with self.store.db.session(readonly=True) as session:
            row = (
                await session.execute(
                    sa.select(checkpoints.c.tx, checkpoints.c.seq, checkpoints.c.updated_at).where(
                        checkpoints.c.name == name
                    )
                )
            ).first()
            checkpoint = START if row is None else Position(row.tx, row.seq)
            behind = await session.scalar(sa.select(sa.func.count()).where(self._after(checkpoint)))
        updated = None if row is None or not row.updated_at else row.updated_at
        return ProjectionStatus(name, checkpoint, int(behind or 0), updated)

    def _after(self, position: Position) -> sa.ColumnElement[bool]:
        """The log's rows after ``position``, in the order ``read_all`` reads them."""
        if self.store.db.is_sqlite:
            return events.c.position > position.seq
        return sa.tuple_(events.c.tx, events.c.position) > sa.tuple_(
            sa.literal(position.tx), sa.literal(position.seq)
        )
