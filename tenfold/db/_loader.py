"""``BatchLoader``: coalesce the ``load(key)`` calls of one tick into one query.

The N+1 pattern is a loop (or a ``gather``) that fetches related rows one at a
time. A loader collects every key asked for before the event loop runs its
next round of callbacks, fetches them with one ``WHERE id = ANY(:ids)``
(``IN`` on SQLite), and answers each caller. Keys are deduplicated and results
cached for the loader's life, so make one loader per request: it shares the
request's session, and a session is not safe for concurrent use, so don't use
the session for anything else while a batch is in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

__all__ = ["BatchLoader"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Fetch = Callable[[list[K]], Awaitable[Mapping[K, V]]]
_ABSENT = object()


class BatchLoader(Generic[K, V]):
    """Per-request loader: ``await loader.load(key)`` -> value or ``None``.

    ``fetch`` receives a list of distinct keys and returns a mapping; keys it
    leaves out load as ``None`` (or ``missing()``). Failed batches are not cached,
    so a later ``load`` asks again.
    """

    def __init__(
        self,
        fetch: Fetch[K, V],
        *,
        max_batch: int = 1000,
        missing: Callable[[], Any] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._fetch = fetch
        self._max_batch = max_batch
        self._missing = missing
        self._cache: dict[K, asyncio.Future[Any]] = {}
        self._pending: list[K] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # how many fetches ran: handy in tests and logs

    async def load(self, key: K) -> V | None:
        future = self._cache.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._cache[key] = future
            self._pending.append(key)
            if not self._scheduled:
                self._scheduled = True
                # call_soon runs after every callback already queued for this
                # loop iteration: the other tasks of a gather() add their keys first.
                loop.call_soon(self._dispatch)
        # shield: one caller being cancelled must not cancel the others' result.
        return await asyncio.shield(future)

    async def load_many(self, keys: Iterable[K]) -> list[V | None]:
        """Values in the order of ``keys`` (``None`` where missing)."""
        return list(await asyncio.gather(*(self.load(k) for k in keys)))

    def prime(self, key: K, value: V) -> None:
        """Seed the cache, e.g. with rows the request already has."""
        if key not in self._cache:
            future = asyncio.get_running_loop().create_future()
            future.set_result(value)
            self._cache[key] = future

    def clear(self, key: K | None = None) -> None:
        """Forget one key (after writing it), or everything."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)

    def _dispatch(self) -> None:
        self._scheduled = False
        keys, self._pending = self._pending, []
        for start in range(0, len(keys), self._max_batch):
            task = asyncio.ensure_future(self._run(keys[start : start + self._max_batch]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, keys: list[K]) -> None:
        self.batches += 1
        try:
            found = await self._fetch(keys)
        except BaseException as exc:
            cancelled = isinstance(exc, asyncio.CancelledError)
            for key in keys:
                future = self._cache.pop(key, None)
                if future is None or future.done():
                    continue
                if cancelled:
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # the waiters read it; don't log it as unretrieved
            if cancelled:
                raise
            return
        for key in keys:
            future = self._cache.get(key)
            if future is not None and not future.done():
                value = found.get(key, _ABSENT)
                if value is _ABSENT:
                    value = self._missing() if self._missing is not None else None
                future.set_result(value)

    @classmethod
    def for_column(
        cls,
        session: AsyncSession,
        column: InstrumentedAttribute[Any] | ColumnElement[Any],
        *,
        many: bool = False,
        max_batch: int = 1000,
    ) -> BatchLoader[Any, Any]:
        """Load ORM objects (or Core rows) by ``column`` with one query per batch.

        ``BatchLoader.for_column(session, User.id)`` loads users by id;
        ``many=True`` (``for_column(session, Post.author_id, many=True)``)
        loads lists, with ``[]`` for a key nothing matches.
        """
        entity = getattr(column, "class_", None)
        target = entity if entity is not None else column.table  # type: ignore[union-attr]
        key_name = column.key

        def key_of(row: Any) -> Any:
            return getattr(row, key_name) if entity is not None else row._mapping[column]

        async def fetch(keys: list[Any]) -> Mapping[Any, Any]:
            stmt = select(target).where(_matches_any(session, column, keys))
            result = await session.execute(stmt)
            rows: Sequence[Any] = result.scalars().all() if entity is not None else result.all()
            if not many:
                return {key_of(row): row for row in rows}
            grouped: dict[Any, list[Any]] = {}
            for row in rows:
                grouped.setdefault(key_of(row), []).append(row)
            return grouped

        return cls(fetch, max_batch=max_batch, missing=list if many else None)


def _matches_any(session: AsyncSession, column: Any, keys: list[Any]) -> ColumnElement[bool]:
    bind = session.bind
    dialect = getattr(bind, "dialect", None)
    if dialect is not None and dialect.name == "postgresql":
        # One array parameter: the SQL text is the same for any number of keys,
        # so PostgreSQL and asyncpg reuse one prepared statement.
        ids = bindparam("tenfold_ids", value=keys, type_=ARRAY(column.type))
        return column == any_(ids)
    return column.in_(keys)
