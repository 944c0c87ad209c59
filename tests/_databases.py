"""Database settings for tests: the embedded SQLite file, or a database of the harness primary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from tenfold import DatabaseSettings
from tenfold.testing import PgCluster

__all__ = ["CURSOR_SECRET", "pg_settings", "sqlite_settings"]

#: Signs pagination cursors; PostgreSQL requires one.
CURSOR_SECRET = SecretStr("tests-cursor-secret")


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
