"""BatchLoader: the load() calls of one tick become one query."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenfold.db import BatchLoader, Database

from .conftest import MakeDatabase


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    rank: Mapped[int]


class Tag(Base):
    __tablename__ = "item_tags"
    item_id: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(primary_key=True)


class StatementLog:
    """Every statement the engines send, seen through before_cursor_execute."""

    def __init__(self, engines: list[AsyncEngine]) -> None:
        self.statements: list[str] = []
        self._engines = [e.sync_engine for e in engines]

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def __enter__(self) -> StatementLog:
        for engine in self._engines:
            event.listen(engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        for engine in self._engines:
            event.remove(engine, "before_cursor_execute", self._record)


@pytest.fixture
async def db(make_database: MakeDatabase) -> Database:
    return await make_database()


@pytest.fixture
def statements(db: Database) -> Iterator[StatementLog]:
    with StatementLog(db.engines) as log:
        yield log


async def test_hundred_loads_in_one_tick_issue_one_query(
    db: Database, statements: StatementLog
) -> None:
    """100 load() calls gathered in one tick send exactly one query, with ANY(:ids)."""
    keys = [(i * 37) % 60 + 1 for i in range(100)]  # 100 calls over 60 distinct ids
    async with db.session(readonly=True) as read:
        loader = BatchLoader.for_column(read, Item.id)
        items = await asyncio.gather(*(loader.load(k) for k in keys))
    assert len(statements.statements) == 1
    assert "= ANY" in statements.statements[0]
    assert [item.id for item in items] == keys


async def test_results_come_in_key_order_with_none_for_missing(
    db: Database, statements: StatementLog
) -> None:
    """load_many answers in the order asked, None where no row exists, one query for dupes."""
    async with db.session(readonly=True) as read:
        loader = BatchLoader.for_column(read, Item.id)
        items = await loader.load_many([5, 100000, 3, 5, -1])
        again = await loader.load(3)  # cached for the request: no second query
    assert [i.id if i else None for i in items] == [5, None, 3, 5, None]
    assert again is items[2]
    assert len(statements.statements) == 1


async def test_many_loads_lists_per_key(db: Database) -> None:
    """With many=True a key gets the list of its rows, and [] when it has none."""
    async with db.session() as write:
        write.add_all(
            [Tag(item_id=10, tag="a"), Tag(item_id=10, tag="b"), Tag(item_id=11, tag="c")]
        )
    async with db.session(readonly=True) as read:
        loader = BatchLoader.for_column(read, Tag.item_id, many=True)
        tags = await loader.load_many([10, 11, 12])
    assert [sorted(t.tag for t in ts) for ts in tags] == [["a", "b"], ["c"], []]
    async with db.session() as write:
        await write.execute(sa.delete(Tag).where(Tag.item_id.in_([10, 11])))


async def test_a_failed_batch_fails_its_callers_and_is_not_cached() -> None:
    """When the fetch raises, every waiting load() raises it, and a later load() asks again."""
    calls: list[list[int]] = []

    async def fetch(keys: list[int]) -> dict[int, str]:
        calls.append(keys)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return {k: str(k) for k in keys}

    loader: BatchLoader[int, str] = BatchLoader(fetch)
    results = await asyncio.gather(loader.load(1), loader.load(2), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await loader.load(1) == "1"
    assert calls == [[1, 2], [1]]


async def test_max_batch_splits_large_batches() -> None:
    """More distinct keys than max_batch in one tick go out as several fetches."""
    sizes: list[int] = []

    async def fetch(keys: list[int]) -> dict[int, int]:
        sizes.append(len(keys))
        return {k: k for k in keys}

    loader: BatchLoader[int, int] = BatchLoader(fetch, max_batch=40)
    assert await loader.load_many(range(100)) == list(range(100))
    assert sizes == [40, 40, 20]
