"""``EventStore``: append with optimistic concurrency, read a stream, follow the global log.

    store = platform.get(EventStore)            # or EventStore(db) in a script
    appended = await store.append("match-7", [NewEvent("MatchStarted", {...})], 0)
    events = await store.read_stream("match-7")
    async for event in store.subscribe(after=checkpoint):
        ...

On PostgreSQL an append without ``session=`` is one statement in its own
transaction, sent on the primary's raw asyncpg connection (one round trip, no
SQLAlchemy compilation); with ``session=`` it joins the caller's
transaction, so read models and outbox rows written there commit with it.
On SQLite every append runs in a write session. See docs/events.md.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from tenfold._context import (
    current_causation_id,
    current_correlation_id,
    current_principal,
    current_request_id,
)
from tenfold._errors import IntegrityConflict
from tenfold.events import _sql
from tenfold.events._errors import ConcurrencyError
from tenfold.events._model import START, Appended, NewEvent, Position, RecordedEvent
from tenfold.events._upcast import Upcasters

if TYPE_CHECKING:
    from tenfold.db import Database, TenfoldSession

__all__ = ["EventStore", "context_metadata"]

#: Events one read of the global log returns at most, unless told otherwise.
_PAGE = 500
_MAX_VERSION = 2**31 - 1
#: asyncpg's form ($1, $2...) of the statements the raw path sends, and their parameter names.
_RAW = {name: _sql.numbered(getattr(_sql, name)) for name in ("PG_APPEND", "PG_APPEND_ONE")}
_PG_VERSION, _ = _sql.numbered(_sql.PG_VERSION)
_PG_READ_STREAM, _PG_READ_STREAM_ARGS = _sql.numbered(_sql.PG_READ_STREAM)
_PG_READ_ALL, _PG_READ_ALL_ARGS = _sql.numbered(_sql.PG_READ_ALL)
_TEXT = {
    name: sa.text(getattr(_sql, name))
    for name in (
        "PG_APPEND",
        "PG_APPEND_ONE",
        "PG_VERSION",
        "PG_READ_STREAM",
        "PG_READ_ALL",
        "SQLITE_APPEND",
        "SQLITE_READ_STREAM",
        "SQLITE_READ_ALL",
    )
}
_SQLITE_VERSION = sa.text(_sql.SQLITE_VERSION)
_SQLITE_APPEND = sa.text(_sql.SQLITE_APPEND + " RETURNING position")


def context_metadata() -> dict[str, Any]:
    """The metadata every appended event carries from the context it was appended in."""
    meta: dict[str, Any] = {}
    request_id = current_request_id()
    if request_id is not None:
        meta["request_id"] = request_id
    correlation = current_correlation_id()
    if correlation is not None:
        meta["correlation_id"] = correlation
    causation = current_causation_id() or request_id
    if causation is not None:
        meta["causation_id"] = causation
    principal = current_principal()
    if principal is not None:
        meta["principal"] = {"id": principal.id, "kind": principal.kind}
    return meta


class EventStore:
    """Streams of events in the main database, and one global log over all of them.

    ``upcasters`` migrate old schema versions as events are read; ``clock``
    stamps ``recorded_at``; ``ids`` makes event ids (``uuid4`` strings).
    ``poll_interval`` is how often a subscription that has caught up looks
    for events appended by other processes (appends in this process wake it
    at once).
    """

    def __init__(
        self,
        db: Database,
        *,
        upcasters: Upcasters | None = None,
        clock: Callable[[], float] = time.time,
        ids: Callable[[], str] | None = None,
        poll_interval: float = 0.1,
        page_size: int = _PAGE,
    ) -> None:
        self.db = db
        self.upcasters = upcasters if upcasters is not None else Upcasters()
        self.upcasters.check()
        self.clock = clock
        self._ids = ids or new_event_id
        self.poll_interval = poll_interval
        self.page_size = page_size
        self._appended = asyncio.Event()
        #: The furthest position an append made by this process has committed at.
        self.appended_up_to = START
        #: Tells other processes' subscriptions about appends (set by the extension when
        #: the platform has Redis; see tenfold.events._hints).
        self.hints: Any = None

    def __repr__(self) -> str:
        return f"<EventStore {self.db!r}>"

    @property
    def _pg(self) -> bool:
        return not self.db.is_sqlite

    # -- appending -------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        session: TenfoldSession | None = None,
    ) -> Appended:
        """Append ``events`` to ``stream_id`` as versions ``expected_version + 1, ...``.

        ``expected_version`` is the version the caller last saw (0 for a new
        stream). If the stream is at another version, or a concurrent append
        of the same version wins, nothing is written and ``ConcurrencyError``
        (a 409) is raised. With ``session`` the events commit (or roll back)
        with the caller's transaction.
        """
        if not events:
            raise ValueError("append needs at least one event")
        if not 0 <= expected_version <= _MAX_VERSION - len(events):
            raise ValueError(f"expected_version out of range: {expected_version}")
        rows = self._rows(events)
        if self._pg:
            appended = await self._append_pg(stream_id, rows, expected_version, session)
        else:
            appended = await self._append_sqlite(stream_id, rows, expected_version, session)
        if session is None:
            self._announce(appended.position)
        else:
            session.after_commit(lambda: self._announce(appended.position))
        return appended

    def _rows(self, events: Sequence[NewEvent]) -> list[tuple[str, int, str, str, str]]:
        """(type, schema version, data JSON, metadata JSON, id) per event."""
        base = context_metadata()
        rows = []
        for event in events:
            meta = base if not event.metadata else {**base, **event.metadata}
            version = event.schema_version or self.upcasters.current(event.type)
            rows.append(
                (
                    event.type,
                    version,
                    _dumps(event.data),
                    _dumps(meta),
                    self._ids(),
                )
            )
        return rows

    async def _append_pg(
        self,
        stream_id: str,
        rows: list[tuple[str, int, str, str, str]],
        expected: int,
        session: TenfoldSession | None,
    ) -> Appended:
        name, params = _pg_append_params(stream_id, rows, expected, self.clock())
        try:
            if session is None:
                raw_sql, raw_args = _RAW[name]
                async with self.db.router.driver() as conn:
                    written = await conn.fetch(raw_sql, *[params[n] for n in raw_args])
            else:
                written = (await session.execute(_TEXT[name], params)).all()
        except IntegrityConflict as exc:
            raise ConcurrencyError(stream_id, expected, None, reason="raced") from exc
        if len(written) != len(rows):
            actual = await self.stream_version(stream_id, session=session)
            reason = "version" if actual != expected else "older transaction"
            raise ConcurrencyError(stream_id, expected, actual, reason=reason)
        tx, seq = written[-1]
        return Appended(stream_id, expected + len(rows), Position(tx, seq))

    async def _append_sqlite(
        self,
        stream_id: str,
        rows: list[tuple[str, int, str, str, str]],
        expected: int,
        session: TenfoldSession | None,
    ) -> Appended:
        if session is None:
            async with self.db.session() as own:
                return await self._append_sqlite(stream_id, rows, expected, own)
        # BEGIN IMMEDIATE: this transaction holds the write lock, so nobody appends between
        # the version read and the inserts.
        actual = await self.stream_version(stream_id, session=session)
        if actual != expected:
            raise ConcurrencyError(stream_id, expected, actual, reason="version")
        recorded_at = self.clock()
        seq = 0
        try:
            for offset, (type_, schema_version, data, meta, id_) in enumerate(rows, 1):
                result = await session.execute(
                    _SQLITE_APPEND,
                    {
                        "stream_id": stream_id,
                        "version": expected + offset,
                        "type": type_,
                        "schema_version": schema_version,
                        "data": data,
                        "metadata": meta,
                        "id": id_,
                        "recorded_at": recorded_at,
                    },
                )
                seq = result.scalar_one()
        except IntegrityConflict as exc:
            raise ConcurrencyError(stream_id, expected, None, reason="raced") from exc
        return Appended(stream_id, expected + len(rows), Position(0, seq))

    # -- reading ---------------------------------------------------------------------------

    async def stream_version(self, stream_id: str, *, session: TenfoldSession | None = None) -> int:
        """The stream's current version (0: no events)."""
        if session is not None:
            query = _TEXT["PG_VERSION"] if self._pg else _SQLITE_VERSION
            return int(await session.scalar(query, {"stream_id": stream_id}) or 0)
        if self._pg:
            async with self.db.router.driver() as conn:
                return int(await conn.fetchval(_PG_VERSION, stream_id) or 0)
        async with self.db.session(readonly=True) as own:
            return await self.stream_version(stream_id, session=own)

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        *,
        to_version: int | None = None,
        limit: int | None = None,
        session: TenfoldSession | None = None,
    ) -> list[RecordedEvent]:
        """The stream's events from ``from_version`` (to ``to_version``), oldest first."""
        params = {
            "stream_id": stream_id,
            "from_version": max(from_version, 1),
            "to_version": _MAX_VERSION if to_version is None else to_version,
            "limit": limit if limit is not None else _MAX_VERSION,
        }
        name = "PG_READ_STREAM" if self._pg else "SQLITE_READ_STREAM"
        return await self._select(name, _PG_READ_STREAM, _PG_READ_STREAM_ARGS, params, session)

    async def read_all(
        self,
        after: Position = START,
        *,
        limit: int | None = None,
        session: TenfoldSession | None = None,
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events of the global log after ``after``, in log order.

        Only events that no still-running transaction can precede are
        returned: reading on from the last one returned never skips an event
        and never returns one twice.
        """
        params = {"tx": after.tx, "seq": after.seq, "limit": limit or self.page_size}
        name = "PG_READ_ALL" if self._pg else "SQLITE_READ_ALL"
        return await self._select(name, _PG_READ_ALL, _PG_READ_ALL_ARGS, params, session)

    async def _select(
        self,
        name: str,
        raw_sql: str,
        raw_args: tuple[str, ...],
        params: Mapping[str, Any],
        session: TenfoldSession | None,
    ) -> list[RecordedEvent]:
        if session is not None:
            rows = (await session.execute(_TEXT[name], params)).all()
        elif self._pg:
            async with self.db.router.driver() as conn:
                rows = await conn.fetch(raw_sql, *(params[n] for n in raw_args))
        else:
            # The primary: an aggregate loaded to append to must see the latest version.
            async with self.db.session() as own:
                rows = (await own.execute(_TEXT[name], params)).all()
        return [self._event(row) for row in rows]

    def _event(self, row: Any) -> RecordedEvent:
        id_, stream_id, version, tx, seq, type_, schema_version, data, meta, recorded_at = row
        schema_version, data = self.upcasters.upcast(type_, schema_version, orjson.loads(data))
        return RecordedEvent(
            id=str(id_),
            stream_id=stream_id,
            version=version,
            position=Position(tx, seq),
            type=type_,
            schema_version=schema_version,
            data=data,
            metadata=orjson.loads(meta),
            recorded_at=recorded_at,
        )

    # -- following -------------------------------------------------------------------------

    async def subscribe(
        self,
        after: Position = START,
        *,
        page_size: int | None = None,
        until_caught_up: bool = False,
    ) -> AsyncIterator[RecordedEvent]:
        """Every event after ``after``, in log order, then each new one as it commits.

        Never skips an event and never yields one twice. With
        ``until_caught_up`` the iteration ends once the log is read to its end.
        """
        position = after
        size = page_size or self.page_size
        while True:
            woken = self._appended
            page = await self.read_all(position, limit=size)
            for event in page:
                yield event
            if page:
                position = page[-1].position
            if len(page) < size:
                if until_caught_up:
                    return
                await self.wait_for_appends(self.poll_interval, woken)

    async def wait_for_appends(self, timeout: float, woken: asyncio.Event | None = None) -> None:  # noqa: ASYNC109 - a poll, not a deadline
        """Return after an append in this process, or after ``timeout`` seconds."""
        event = woken or self._appended
        if event.is_set():
            return
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    def _announce(self, position: Position) -> None:
        if position > self.appended_up_to:
            self.appended_up_to = position
        self._wake()
        if self.hints is not None:
            self.hints.poke()

    def _wake(self) -> None:
        woken, self._appended = self._appended, asyncio.Event()
        woken.set()


def _pg_append_params(
    stream_id: str, rows: list[tuple[str, int, str, str, str]], expected: int, now: float
) -> tuple[str, dict[str, Any]]:
    """The append statement for ``rows`` (one event: scalars; more: arrays) and its values."""
    params: dict[str, Any] = {"stream_id": stream_id, "expected": expected, "recorded_at": now}
    if len(rows) == 1:
        (type_, schema_version, data, meta, id_) = rows[0]
        params.update(type=type_, schema_version=schema_version, data=data, metadata=meta, id=id_)
        return "PG_APPEND_ONE", params
    params.update(
        types=[r[0] for r in rows],
        schema_versions=[r[1] for r in rows],
        datas=[r[2] for r in rows],
        metas=[r[3] for r in rows],
        ids=[r[4] for r in rows],
    )
    return "PG_APPEND", params


def new_event_id() -> str:
    """A random (version 4) UUID as text, without building a ``uuid.UUID`` (a fifth of the
    cost of ``str(uuid.uuid4())``, which an append pays per event)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _dumps(value: Any) -> str:
    """JSON text (orjson: datetimes, UUIDs and dataclasses too); TypeError if it cannot be."""
    return orjson.dumps(value).decode()
