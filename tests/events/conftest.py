"""Event stores on the embedded SQLite file and on an emptied database of the harness primary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tenfold import DatabaseSettings
from tenfold.db import Database
from tenfold.events import EventStore, create_tables
from tenfold.testing import PgCluster
from tests._databases import (
    CURSOR_SECRET,
    empty_database,
    module_database,
    pg_settings,
    sqlite_settings,
)

__all__ = ["CURSOR_SECRET", "pg_settings", "sqlite_settings"]

MakeStore = Callable[..., Awaitable[EventStore]]


@pytest.fixture(scope="module")
def pg_events_module_db(pg_cluster: PgCluster) -> Iterator[str]:
    """The module's database on the harness primary (and replica); dropped at its end."""
    yield from module_database(pg_cluster)


@pytest.fixture
def pg_events_db(pg_cluster: PgCluster, pg_events_module_db: str) -> str:
    """The module's database, emptied for this test as if just created."""
    return empty_database(pg_cluster, pg_events_module_db)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseSettings:
    """The embedded profile's SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_settings(tmp_path, "events.db")
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return pg_settings(cluster, request.getfixturevalue("pg_events_db"))


@pytest.fixture
async def make_store(db_settings: DatabaseSettings) -> AsyncIterator[MakeStore]:
    """Factory for stores on one started database with the event tables; stopped after."""
    db = Database(db_settings)
    await db.start()
    await create_tables(db)

    async def make(**kw: Any) -> EventStore:
        return EventStore(db, **kw)

    yield make
    await db.stop()


@pytest.fixture
async def store(make_store: MakeStore) -> EventStore:
    return await make_store()


@pytest.fixture
async def pg_store(pg_cluster: PgCluster, pg_events_db: str) -> AsyncIterator[EventStore]:
    """A store on PostgreSQL only, with a pool big enough for the concurrency tests."""
    db = Database(pg_settings(pg_cluster, pg_events_db, pool_size=40, max_overflow=10))
    await db.start()
    await create_tables(db)
    yield EventStore(db, poll_interval=0.02)
    await db.stop()
