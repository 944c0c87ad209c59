"""Behind PgBouncer in transaction pooling mode."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from pydantic import SecretStr

from tenfold import DatabaseSettings
from tenfold._context import current_consistency_token
from tenfold._errors import IntegrityConflict
from tenfold.db import Database
from tenfold.testing import PgBouncer

from .conftest import CURSOR_SECRET, MakeDatabase


async def test_concurrent_parameterized_queries_through_pgbouncer(
    pgbouncer: PgBouncer, pg_db: str, make_database: MakeDatabase, request_context: object
) -> None:
    """Many sessions running parameterized statements at once share pgbouncer's servers."""
    settings = DatabaseSettings(
        url=SecretStr(pgbouncer.url(pg_db)),
        # The primary again, through pgbouncer, as a "replica": with one configured, a write
        # reads its WAL position for the consistency token, which must work behind pgbouncer.
        replicas=[SecretStr(pgbouncer.url(pg_db))],
        pgbouncer=True,
        pool_size=20,
        max_overflow=0,
        cursor_secret=CURSOR_SECRET,
    )
    db = Database(settings)
    await db.start()
    try:

        async def worker(n: int) -> int:
            total = 0
            for i in range(10):
                async with db.session(readonly=True) as read:
                    name = await read.scalar(
                        sa.text("SELECT name FROM items WHERE id = :id"), {"id": n * 10 + i + 1}
                    )
                    assert name == f"item{n * 10 + i + 1}"
                    total += await read.scalar(
                        sa.text("SELECT count(*) FROM items WHERE rank = :r"), {"r": i % 7}
                    )
            async with db.session() as write:
                await write.execute(
                    sa.text("INSERT INTO notes (body) VALUES (:b)"), {"b": f"bouncer-{n}"}
                )
            return total

        totals = await asyncio.gather(*(worker(n) for n in range(30)))
        assert len(set(totals)) == 1
        assert current_consistency_token() is not None  # the LSN read works through pgbouncer
        # Errors still map behind pgbouncer.
        try:
            async with db.session() as write:
                await write.execute(sa.text("INSERT INTO items VALUES (:i, 'x', 0)"), {"i": 1})
        except IntegrityConflict:
            pass
        else:
            raise AssertionError("expected IntegrityConflict")
    finally:
        await db.stop()
