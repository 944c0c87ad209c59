"""The embedded profile: SQLite under ./var with no servers at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from tenfold import ContextSnapshot, DatabaseSettings, current_consistency_token
from tenfold._errors import IntegrityConflict
from tenfold.db import BatchLoader, Database


@pytest.fixture
async def sqlite_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Database]:
    """A started Database on the default URL, in a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    db = Database(DatabaseSettings())
    await db.start()
    async with db.session() as write:
        await write.execute(sa.text("CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)"))
        await write.execute(sa.text("INSERT INTO counters VALUES (1, 0), (2, 0)"))
    yield db
    await db.stop()


async def test_embedded_sqlite_reads_and_writes_with_no_servers(
    sqlite_db: Database, tmp_path: Path, request_context: ContextSnapshot
) -> None:
    """The default settings give a working SQLite database in ./var, in WAL mode."""
    assert (tmp_path / "var" / "tenfold.db").is_file()
    async with sqlite_db.session() as write:
        await write.execute(sa.text("UPDATE counters SET n = 5 WHERE id = 1"))
    async with sqlite_db.session(readonly=True) as read:
        assert await read.scalar(sa.text("SELECT n FROM counters WHERE id = 1")) == 5
        assert await read.scalar(sa.text("PRAGMA journal_mode")) == "wal"
    assert current_consistency_token() is None  # no WAL positions to carry on SQLite


async def test_concurrent_writers_wait_for_the_lock_instead_of_failing(
    sqlite_db: Database,
) -> None:
    """Read-then-write transactions in parallel all succeed (BEGIN IMMEDIATE + busy timeout)."""

    async def increment() -> None:
        async with sqlite_db.session() as write:
            n = await write.scalar(sa.text("SELECT n FROM counters WHERE id = 2"))
            await asyncio.sleep(0)
            await write.execute(sa.text("UPDATE counters SET n = :n WHERE id = 2"), {"n": n + 1})

    await asyncio.gather(*(increment() for _ in range(12)))
    async with sqlite_db.session(readonly=True) as read:
        assert await read.scalar(sa.text("SELECT n FROM counters WHERE id = 2")) == 12


async def test_sqlite_constraint_errors_are_mapped(sqlite_db: Database) -> None:
    """A duplicate key on SQLite raises IntegrityConflict too."""
    with pytest.raises(IntegrityConflict):
        async with sqlite_db.session() as write:
            await write.execute(sa.text("INSERT INTO counters VALUES (1, 1)"))


async def test_batch_loader_falls_back_to_in_on_sqlite(sqlite_db: Database) -> None:
    """On SQLite the loader batches with IN (...) and still answers in key order."""
    counters = sa.table("counters", sa.column("id", sa.Integer), sa.column("n", sa.Integer))
    async with sqlite_db.session(readonly=True) as read:
        loader = BatchLoader.for_column(read, counters.c.id)
        rows = await loader.load_many([2, 3, 1, 2])
    assert [r.id if r else None for r in rows] == [2, None, 1, 2]
    assert loader.batches == 1


async def test_in_memory_sqlite_shares_one_database() -> None:
    """sqlite+aiosqlite:// is one shared in-memory database, not one per connection."""
    db = Database(DatabaseSettings(url=SecretStr("sqlite+aiosqlite://")))
    await db.start()
    try:
        async with db.session() as write:
            await write.execute(sa.text("CREATE TABLE t (x int)"))
            await write.execute(sa.text("INSERT INTO t VALUES (1)"))
        async with db.session(readonly=True) as read:
            assert await read.scalar(sa.text("SELECT count(*) FROM t")) == 1
    finally:
        await db.stop()
