"""``Aggregates``: load an aggregate from its latest snapshot and the events after it; save it.

    aggregates = platform.get(Aggregates)       # or Aggregates(store) in a script
    match = await aggregates.load(Match, "match-7")
    match.update_score(2, 1)
    await aggregates.save(match)

A snapshot is a cache of one aggregate's state at one version, one row per
stream in ``tenfold_event_snapshots``. It is written when a save moves the
stream across a multiple of ``snapshot_every``, and it is only ever replaced
by a newer one. Loading never depends on it: a missing, foreign or outdated
snapshot (another class, another ``snapshot_version``) means the aggregate
is rebuilt from the whole stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import sqlalchemy as sa

from tenfold.events._aggregate import Aggregate
from tenfold.events._errors import AggregateNotFound
from tenfold.events._model import Appended
from tenfold.events._tables import snapshots

if TYPE_CHECKING:
    from tenfold.db import TenfoldSession
    from tenfold.events._store import EventStore

__all__ = ["Aggregates", "Snapshot"]

logger = logging.getLogger("tenfold.events")

A = TypeVar("A", bound=Aggregate)

# CAST to text on both databases: the state is decoded once, by orjson, on either path.
_SELECT = (
    "SELECT version, type, schema_version, CAST(state AS TEXT), taken_at "
    "FROM tenfold_event_snapshots WHERE stream_id = {}"
)
_SELECT_TEXT = sa.text(_SELECT.format(":stream_id"))
_SELECT_PG = _SELECT.format("$1")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A stream's snapshot row: the state of aggregate ``type`` at ``version``."""

    stream_id: str
    version: int
    type: str
    schema_version: int
    state: dict[str, Any]
    taken_at: float


class Aggregates:
    """Loads aggregates (snapshot, then the events after it) and saves their new events.

    ``snapshot_every``: a snapshot is written when a save moves the stream
    across a multiple of it; 0 turns snapshots off (none read, none written).
    ``clock`` stamps ``taken_at``.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        snapshot_every: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if snapshot_every < 0:
            raise ValueError(f"snapshot_every must be 0 or more, not {snapshot_every}")
        self.store = store
        self.snapshot_every = snapshot_every
        self.clock = clock

    def __repr__(self) -> str:
        return f"<Aggregates snapshot_every={self.snapshot_every} {self.store!r}>"

    # -- loading ---------------------------------------------------------------------------

    async def load(
        self,
        cls: type[A],
        stream_id: str,
        *,
        new_if_missing: bool = False,
        session: TenfoldSession | None = None,
    ) -> A:
        """The aggregate of ``stream_id``, at the stream's current version.

        A stream without events raises ``AggregateNotFound`` (a 404), or with
        ``new_if_missing`` returns ``cls(stream_id)`` at version 0. With
        ``session`` the snapshot and events are read in that transaction.
        """
        aggregate = cls(stream_id)
        snapshot = await self._usable_snapshot(cls, stream_id, session)
        if snapshot is not None:
            aggregate._restored(snapshot.state, snapshot.version)
        events = await self.store.read_stream(stream_id, aggregate.version + 1, session=session)
        for event in events:
            aggregate._replay(event)
        if aggregate.version == 0 and not new_if_missing:
            raise AggregateNotFound(cls.__name__, stream_id)
        return aggregate

    async def _usable_snapshot(
        self, cls: type[Aggregate], stream_id: str, session: TenfoldSession | None
    ) -> Snapshot | None:
        if not self.snapshot_every:
            return None
        snapshot = await self.snapshot(stream_id, session=session)
        if snapshot is None:
            return None
        if snapshot.type != cls.__name__ or snapshot.schema_version != cls.snapshot_version:
            return None
        return snapshot

    async def snapshot(
        self, stream_id: str, *, session: TenfoldSession | None = None
    ) -> Snapshot | None:
        """``stream_id``'s snapshot row as stored, whatever its class and version, or None."""
        if session is not None:
            row = (await session.execute(_SELECT_TEXT, {"stream_id": stream_id})).first()
        elif not self.store.db.is_sqlite:
            async with self.store.db.router.driver() as conn:
                row = await conn.fetchrow(_SELECT_PG, stream_id)
        else:
            async with self.store.db.session() as own:
                row = (await own.execute(_SELECT_TEXT, {"stream_id": stream_id})).first()
        if row is None:
            return None
        version, type_, schema_version, state, taken_at = row
        return Snapshot(stream_id, version, type_, schema_version, orjson.loads(state), taken_at)

    # -- saving ----------------------------------------------------------------------------

    async def save(
        self, aggregate: Aggregate, *, session: TenfoldSession | None = None
    ) -> Appended | None:
        """Append the aggregate's pending events; None when it has none.

        The append expects the stream at the version the aggregate was loaded
        (or last saved) at: if another save came first it raises
        ``ConcurrencyError`` and the aggregate keeps its pending events. With
        ``session`` the events and the snapshot commit with the caller's
        transaction; after a rollback, load the aggregate again.
        """
        pending = aggregate.pending
        if not pending:
            return None
        before = aggregate.saved_version
        appended = await self.store.append(aggregate.id, pending, before, session=session)
        aggregate._saved()
        if self._crossed(before, appended.version):
            await self._write_snapshot(aggregate, session)
        return appended

    def _crossed(self, before: int, after: int) -> bool:
        every = self.snapshot_every
        return every > 0 and before // every < after // every

    async def _write_snapshot(self, aggregate: Aggregate, session: TenfoldSession | None) -> None:
        """Upsert the aggregate's snapshot; outside a session, a failure is only logged.

        The events are committed by then, and a snapshot is a cache: losing
        one costs a longer load, failing the save would tell the caller a
        committed change did not happen.
        """
        try:
            values = self._snapshot_values(aggregate)
        except Exception:
            logger.warning(
                "snapshot of %r not taken: its state is not JSON", aggregate, exc_info=True
            )
            return
        if session is not None:
            await session.execute(_upsert(session, values))
            return
        try:
            async with self.store.db.session() as own:
                await own.execute(_upsert(own, values))
        except Exception:
            logger.warning("snapshot of %r not written", aggregate, exc_info=True)

    def _snapshot_values(self, aggregate: Aggregate) -> dict[str, Any]:
        cls = type(aggregate)
        # Dumped here, not by the driver: a state that is not JSON fails before any statement.
        state = orjson.loads(orjson.dumps(aggregate.snapshot_state()))
        return {
            "stream_id": aggregate.id,
            "version": aggregate.version,
            "type": cls.__name__,
            "schema_version": cls.snapshot_version,
            "state": state,
            "taken_at": self.clock(),
        }


def _upsert(session: TenfoldSession, values: dict[str, Any]) -> Any:
    """Insert or replace the stream's snapshot, never with an older one."""
    if session.bind.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    statement = insert(snapshots).values(values)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[snapshots.c.stream_id],
        set_={
            name: excluded[name]
            for name in ("version", "type", "schema_version", "state", "taken_at")
        },
        where=snapshots.c.version < excluded.version,
    )
