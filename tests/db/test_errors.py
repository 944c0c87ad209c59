"""Driver errors reach callers as tenfold errors, never as asyncpg or SQLAlchemy ones."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
import sqlalchemy as sa

from tenfold._errors import DatabaseError, IntegrityConflict, InvalidData, QueryTimeout
from tenfold.testing import PgCluster
from tenfold.web import problem_for_exception

from .conftest import MakeDatabase, wait_for


async def test_unique_violation_is_an_integrity_conflict(make_database: MakeDatabase) -> None:
    """A duplicate key raises IntegrityConflict (409) with the asyncpg error as its cause chain."""
    db = await make_database(replicas=False)
    with pytest.raises(IntegrityConflict) as raised:
        async with db.session() as write:
            await write.execute(sa.text("INSERT INTO items VALUES (1, 'dup', 0)"))
    assert problem_for_exception(raised.value).status_code == 409
    assert "items_pkey" not in str(raised.value)  # constraint names stay out of the client's view
    cause = raised.value.__cause__
    assert isinstance(cause, sa.exc.IntegrityError)
    assert isinstance(cause.orig.__cause__, asyncpg.UniqueViolationError)  # type: ignore[union-attr]


async def test_foreign_key_violation_is_an_integrity_conflict(make_database: MakeDatabase) -> None:
    """A foreign-key violation, caught inside the block, is already an IntegrityConflict."""
    db = await make_database(replicas=False)
    async with db.session() as write:
        with pytest.raises(IntegrityConflict):
            async with write.begin_nested():
                await write.execute(sa.text("INSERT INTO item_tags VALUES (999999, 'x')"))
        await write.execute(sa.text("INSERT INTO item_tags VALUES (1, 'ok')"))


async def test_statement_timeout_is_a_query_timeout(make_database: MakeDatabase) -> None:
    """A statement cancelled by statement_timeout raises QueryTimeout (503)."""
    db = await make_database(replicas=False, statement_timeout_ms=50)
    with pytest.raises(QueryTimeout) as raised:
        async with db.session(readonly=True) as read:
            await read.execute(sa.text("SELECT pg_sleep(5)"))
    assert problem_for_exception(raised.value).status_code == 503


async def test_pool_timeout_is_a_query_timeout(make_database: MakeDatabase) -> None:
    """With the pool exhausted, waiting past pool_timeout raises QueryTimeout."""
    db = await make_database(replicas=False, pool_size=1, max_overflow=0, pool_timeout=0.2)
    async with db.session():
        with pytest.raises(QueryTimeout):
            async with db.session():
                pass
        assert db.pool_stats()["primary"].in_use == 1


async def test_other_database_errors_are_database_errors(make_database: MakeDatabase) -> None:
    """A statement PostgreSQL refuses (syntax) raises a plain DatabaseError (500)."""
    db = await make_database(replicas=False)
    with pytest.raises(DatabaseError) as raised:
        async with db.session(readonly=True) as read:
            await read.execute(sa.text("SELEC 1"))
    assert type(raised.value) is DatabaseError
    assert problem_for_exception(raised.value).status_code == 500


@pytest.mark.parametrize(
    ("statement", "value", "sqlstate"),
    [
        ("SELECT name FROM items WHERE id = :v", 2**31, "22000"),  # refused by asyncpg
        ("SELECT CAST(CAST(:v AS text) AS int)", "12abc34", "22P02"),  # by the server
        ("INSERT INTO notes (body) VALUES (:v)", "a\x00b12abc34", "22021"),
    ],
)
async def test_refused_values_are_invalid_data_without_the_value(
    make_database: MakeDatabase, statement: str, value: object, sqlstate: str
) -> None:
    """A value the column cannot hold is InvalidData (422); its context never quotes it."""
    db = await make_database(replicas=False)
    with pytest.raises(InvalidData) as raised:
        async with db.session() as write:
            await write.execute(sa.text(statement), {"v": value})
    assert problem_for_exception(raised.value).status_code == 422
    context = raised.value.context
    assert context.get("sqlstate") == sqlstate
    assert context["statement"] == statement.replace(":v", "$1")
    for text in (str(raised.value), *map(str, context.values())):
        assert str(value) not in text
        assert "12abc34" not in text
    assert "[SQL parameters hidden" in str(raised.value.__cause__)


async def test_application_errors_pass_through_and_roll_back(make_database: MakeDatabase) -> None:
    """An application's own exception leaves the block unchanged, and the write is rolled back."""
    db = await make_database(replicas=False)

    async def write_then_fail() -> None:
        async with db.session() as write:
            await write.execute(sa.text("INSERT INTO notes (body) VALUES ('rolled back')"))
            raise LookupError("not a database error")

    with pytest.raises(LookupError):
        await write_then_fail()
    async with db.session() as read:
        count = await read.scalar(sa.text("SELECT count(*) FROM notes WHERE body = 'rolled back'"))
    assert count == 0


async def test_cancelled_session_returns_its_connection(
    make_database: MakeDatabase, pg_cluster: PgCluster, pg_db: str
) -> None:
    """A task cancelled mid-statement gives its pooled connection back."""
    db = await make_database(replicas=False, pool_size=1, max_overflow=0)
    marker = f"cancel-{uuid.uuid4().hex}"

    async def slow() -> None:
        async with db.session(readonly=True) as read:
            await read.execute(sa.text(f"SELECT pg_sleep(10) /* {marker} */"))

    def running() -> bool:
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            f"AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()"
        )
        return pg_cluster.primary.psql(sql, db=pg_db) == "1"

    async def statement_running() -> bool:
        return await asyncio.to_thread(running)

    task = asyncio.create_task(slow())
    await wait_for(statement_running)  # the server is running it: cancel mid-statement
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.session(readonly=True) as read:
        assert await read.scalar(sa.text("SELECT 1")) == 1


async def test_a_read_session_cannot_write_even_on_the_primary(make_database: MakeDatabase) -> None:
    """Read sessions are READ ONLY transactions, so a stray write fails without replicas too."""
    db = await make_database(replicas=False, pool_size=1, max_overflow=0)
    with pytest.raises(DatabaseError, match="read-only"):
        async with db.session(readonly=True) as read:
            await read.execute(sa.text("INSERT INTO notes (body) VALUES ('nope')"))
    async with db.session() as write:  # the same pooled connection writes again afterwards
        await write.execute(sa.text("INSERT INTO notes (body) VALUES ('yes')"))
