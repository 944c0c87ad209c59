"""Auth stores on the embedded SQLite file and on an emptied database of the harness primary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tenfold import DatabaseSettings
from tenfold.auth._tables import create_tables
from tenfold.db import Database
from tenfold.testing import PgCluster
from tests._databases import empty_database, module_database, pg_settings, sqlite_settings


@pytest.fixture(scope="module")
def pg_auth_module_db(pg_cluster: PgCluster) -> Iterator[str]:
    """The module's database on the harness primary (and replica); dropped at its end."""
    yield from module_database(pg_cluster)


@pytest.fixture
def pg_auth_db(pg_cluster: PgCluster, pg_auth_module_db: str) -> str:
    """The module's database, emptied for this test as if just created."""
    return empty_database(pg_cluster, pg_auth_module_db)


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
