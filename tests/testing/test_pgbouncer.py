"""pgbouncer in transaction pooling mode in front of the harness primary."""

from __future__ import annotations

import asyncpg
import pytest

from tenfold.testing import PgBouncer

pytestmark = pytest.mark.postgres


def test_pgbouncer_runs_in_transaction_mode(pgbouncer: PgBouncer) -> None:
    """The admin console reports pool_mode=transaction."""
    config = dict(line.split("|")[:2] for line in pgbouncer.admin("SHOW CONFIG").splitlines())
    assert config["pool_mode"] == "transaction"


async def test_queries_pass_through_pgbouncer(pgbouncer: PgBouncer, fresh_pg_database: str) -> None:
    """asyncpg without a statement cache queries the primary's database through pgbouncer."""
    conn = await asyncpg.connect(pgbouncer.dsn(fresh_pg_database), statement_cache_size=0)
    try:
        assert await conn.fetchval("SELECT current_database()") == fresh_pg_database
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
    finally:
        await conn.close()
