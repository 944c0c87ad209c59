"""Database settings for tests: the embedded SQLite file, or a database of the harness primary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from tenfold import DatabaseSettings
from tenfold.testing import PgCluster

__all__ = ["CURSOR_SECRET", "empty_database", "pg_settings", "sqlite_settings"]

#: Signs pagination cursors; PostgreSQL requires one.
CURSOR_SECRET = SecretStr("tests-cursor-secret")

#: What CREATE DATABASE gives: no other session on the database, and of the schemas only an
#: empty ``public`` (every table, type, sequence and function of a test goes with its schema).
_EMPTY = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    """DO $$
DECLARE s name;
BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname <> 'information_schema'
      AND nspname NOT LIKE 'pg\\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
  END LOOP;
  CREATE SCHEMA public;
END $$""",
)


def module_database(cluster: PgCluster) -> Iterator[str]:
    """For a module-scoped fixture: a database on the harness primary (and replica),
    dropped at the module's end (``yield from module_database(pg_cluster)``)."""
    name = cluster.create_database()
    yield name
    cluster.heal()  # a test may have left the primary stopped
    cluster.drop_database(name)


def empty_database(cluster: PgCluster, name: str) -> str:
    """Database ``name`` of the harness primary emptied as if just created; its name.

    A test's own database for a few milliseconds: creating one (and waiting for the
    replica to have it) takes tenths of a second, which a module's PostgreSQL tests
    paid each.
    """
    cluster.primary.psql(*_EMPTY, db=name)
    return name


def sqlite_settings(tmp_path: Path, file: str = "app.db", **kw: Any) -> DatabaseSettings:
    return DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/{file}"), **kw)


def pg_settings(cluster: PgCluster, name: str, **kw: Any) -> DatabaseSettings:
    """Database ``name`` of the harness primary, failing fast when it is down."""
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
