"""``session.after_commit(fn)``: work that must wait until the writes are durable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from tenfold import DatabaseSettings
from tenfold._errors import IntegrityConflict
from tenfold.db import Database

from .conftest import MakeDatabase


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest,
    make_database: MakeDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Database]:
    """A started Database with an empty ``ac_items`` table, on each profile."""
    if request.param == "sqlite":
        monkeypatch.chdir(tmp_path)
        db = Database(DatabaseSettings())
        await db.start()
    else:
        db = await make_database(replicas=False)
    async with db.session() as write:
        await write.execute(sa.text("DROP TABLE IF EXISTS ac_items"))
        await write.execute(sa.text("CREATE TABLE ac_items (id int PRIMARY KEY)"))
    yield db
    if request.param == "sqlite":
        await db.stop()


async def _visible(db: Database, item: int) -> bool:
    """Whether another session sees the row (it does only once it has committed)."""
    async with db.session() as other:
        query = sa.text("SELECT count(*) FROM ac_items WHERE id = :id")
        found = await other.scalar(query, {"id": item})
    return bool(found)


async def test_callbacks_run_in_order_once_the_block_has_committed(database: Database) -> None:
    """Sync and async callbacks run after the commit, in order, and see the committed row."""
    seen: list[tuple[str, bool]] = []

    async def check(name: str) -> None:
        seen.append((name, await _visible(database, 1)))

    async with database.session() as session:
        await session.execute(sa.text("INSERT INTO ac_items VALUES (1)"))
        session.after_commit(lambda: check("first"))
        session.after_commit(lambda: seen.append(("second", True)))
        assert seen == []
    assert seen == [("first", True), ("second", True)]


async def test_a_failed_block_runs_no_callback(database: Database) -> None:
    """A block that raises rolls back, and its callbacks are dropped."""
    ran: list[str] = []

    async def write_twice() -> None:
        async with database.session() as session:
            await session.execute(sa.text("INSERT INTO ac_items VALUES (1)"))
            session.after_commit(lambda: ran.append("invalidate"))
            await session.execute(sa.text("INSERT INTO ac_items VALUES (1)"))

    with pytest.raises(IntegrityConflict):
        await write_twice()
    assert ran == []
    assert not await _visible(database, 1)


async def test_an_explicit_commit_runs_what_was_registered_before_it(database: Database) -> None:
    """commit() runs the callbacks so far; a later rollback drops only the later ones."""
    ran: list[str] = []
    async with database.session() as session:
        await session.execute(sa.text("INSERT INTO ac_items VALUES (1)"))
        session.after_commit(lambda: ran.append("one"))
        await session.commit()
        assert ran == ["one"]
        await session.execute(sa.text("INSERT INTO ac_items VALUES (2)"))
        session.after_commit(lambda: ran.append("two"))
        await session.rollback()
    assert ran == ["one"]
    assert not await _visible(database, 2)


async def test_a_failing_callback_is_logged_and_the_others_still_run(database: Database) -> None:
    """The transaction has committed: a raising callback is logged, not raised."""
    ran: list[str] = []

    def broken() -> Any:
        raise RuntimeError("cache is down")

    with capture_logs() as logs:
        async with database.session() as session:
            await session.execute(sa.text("INSERT INTO ac_items VALUES (1)"))
            session.after_commit(broken)
            session.after_commit(lambda: ran.append("after"))
    assert ran == ["after"]
    assert await _visible(database, 1)
    failed = [e for e in logs if e["event"] == "after_commit_failed"]
    assert len(failed) == 1
    assert "broken" in failed[0]["callback"]


async def test_a_block_with_nothing_to_commit_still_runs_its_callbacks(database: Database) -> None:
    """No statement means nothing can fail to commit: the callbacks run on leaving."""
    ran: list[str] = []
    async with database.session() as session:
        session.after_commit(lambda: ran.append("ran"))
    assert ran == ["ran"]
