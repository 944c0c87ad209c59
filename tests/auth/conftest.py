"""Auth stores on the embedded SQLite file and on a fresh database of the harness primary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tenfold import DatabaseSettings
from tenfold.auth._tables import create_tables
from tenfold.db import Database
from tenfold.testing import PgCluster

#: Signs pagination cursors; PostgreSQL requires one.
CURSOR_SECRET = SecretStr("auth-tests-cursor-secret")


def sqlite_settings(tmp_path: Path, **kw: Any) -> DatabaseSettings:
    return DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/auth.db"), **kw)


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
def pg_auth_db(pg_cluster: PgCluster) -> Iterator[str]:
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
    return pg_settings(cluster, request.getfixturevalue("pg_auth_db"))


@pytest.fixture
async def db(db_settings: DatabaseSettings) -> AsyncIterator[Database]:
    """A started database with every auth table defined so far (import your module first)."""
    database = Database(db_settings)
    await database.start()
    await create_tables(database)
    yield database
    await database.stop()
