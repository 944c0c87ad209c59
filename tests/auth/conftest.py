"""Auth stores on the embedded SQLite file and on a fresh database of the harness primary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tenfold import DatabaseSettings
from tenfold.auth._tables import create_tables
from tenfold.db import Database
from tenfold.testing import PgCluster
from tests._databases import pg_settings, sqlite_settings


@pytest.fixture
def pg_auth_db(fresh_pg_database: str) -> str:
    """A fresh database on the harness primary, dropped after the test."""
    return fresh_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseSettings:
    """The embedded profile's SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_settings(tmp_path, "auth.db")
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
