"""Event stores on the embedded SQLite file and on a fresh database of the harness primary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tenfold import DatabaseSettings
from tenfold.db import Database
from tenfold.events import EventStore, create_tables
from tenfold.testing import PgCluster

#: Signs pagination cursors; PostgreSQL requires one.
CURSOR_SECRET = SecretStr("events-tests-cursor-secret")

MakeStore = Callable[..., Awaitable[EventStore]]


def sqlite_settings(tmp_path: Path, **kw: Any) -> DatabaseSettings:
    return DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/events.db"), **kw)


def pg_settings(cluster: PgCluster, name: str, **kw: Any) -> DatabaseSettings:
    base: dict[str, Any] = {
        "url": SecretStr(cluster.primary.url(name)),
        "cursor_secret": CURSOR_SECRET,
        "pool_size": 20,
        "connect_timeout": 2.0,
        "connect_retries": 2,
        "connect_backoff": 0.05,
    }
    base.update(kw)
    return DatabaseSettings(**base)


@pytest.fixture
def pg_events_db(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh database on the harness primary, dropped after the test."""
    name = pg_cluster.create_database()
    yield name
    pg_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseSettings:
    """The embedded profile's SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_settings(tmp_path)
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
