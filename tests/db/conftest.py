"""Fixtures for the data layer: a database on the harness cluster and Database factories."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import SecretStr

from tenfold import ContextSnapshot, DatabaseSettings, Platform, Settings, create_app, restore
from tenfold.db import Database
from tenfold.testing import PgCluster

MakeDatabase = Callable[..., Awaitable[Database]]
#: Signs pagination cursors in the PostgreSQL tests (a server needs a real secret).
CURSOR_SECRET = SecretStr("test-cursor-secret-for-postgres")


@pytest.fixture(scope="session")
def pg_db(pg_cluster: PgCluster) -> Iterator[str]:
    """One database on the harness primary (and replica) shared by the db tests."""
    name = pg_cluster.create_database()
    pg_cluster.primary.psql(
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, rank int NOT NULL);"
        "INSERT INTO items SELECT g, 'item' || g, g % 7 FROM generate_series(1, 500) g;"
        "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);"
        "CREATE TABLE item_tags (item_id int NOT NULL REFERENCES items(id), tag text NOT NULL);",
        db=name,
    )
    pg_cluster.wait_caught_up()
    yield name
    pg_cluster.heal()
    pg_cluster.drop_database(name)


def pg_settings(
    pg_cluster: PgCluster, db: str, *, replicas: bool | list[str] = True, **kw: Any
) -> DatabaseSettings:
    """Settings for ``db`` on the harness primary (and replica), with fast test timings.

    ``replicas`` is True (the harness replica), False (none) or a list of URLs.
    """
    if replicas is True:
        replicas = [pg_cluster.replica.url(db)] if pg_cluster.replica is not None else []
    base: dict[str, Any] = {
        "url": SecretStr(pg_cluster.primary.url(db)),
        "replicas": [SecretStr(u) for u in replicas or []],
        "cursor_secret": CURSOR_SECRET,
        "connect_timeout": 2.0,
        "connect_retries": 2,
        "connect_backoff": 0.05,
        "connect_backoff_max": 0.2,
        "pool_timeout": 2.0,
        # Tests drive check_replicas() themselves; the background loop stays out of the way.
        "replica_check_interval": 3600.0,
    }
    base.update(kw)
    return DatabaseSettings(**base)


@pytest.fixture
async def make_database(pg_cluster: PgCluster, pg_db: str) -> AsyncIterator[MakeDatabase]:
    """Factory for started Databases on ``pg_db``; all stopped after the test."""
    made: list[Database] = []

    async def make(
        *, replicas: bool | list[str] = True, metrics: Any = None, health: Any = None, **kw: Any
    ) -> Database:
        database = Database(
            pg_settings(pg_cluster, pg_db, replicas=replicas, **kw), metrics=metrics, health=health
        )
        await database.start()
        made.append(database)
        return database

    yield make
    for database in made:
        await database.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def app_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for one profile: embedded SQLite, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_app_settings(tmp_path)
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = cluster.create_database()
    try:
        yield pg_app_settings(cluster, name)
    finally:
        cluster.drop_database(name)


def sqlite_app_settings(tmp_path: Path) -> Settings:
    return Settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"})  # type: ignore[arg-type]


def pg_app_settings(cluster: PgCluster, db: str) -> Settings:
    return Settings(db={"url": cluster.primary.url(db), "cursor_secret": CURSOR_SECRET})  # type: ignore[arg-type]


@asynccontextmanager
async def serving(
    settings: Settings, routers: Sequence[APIRouter], metadata: sa.MetaData
) -> AsyncIterator[httpx.AsyncClient]:
    """A started app with ``routers`` and ``metadata``'s tables, and a client for it."""

    async def create_tables(platform: Platform) -> None:
        async with platform.db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    app = create_app(
        settings, routers=list(routers), on_startup=[create_tables], configure_logs=False
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


@pytest.fixture
def request_context() -> Iterator[ContextSnapshot]:
    """A bound request context, as the middleware would give a request."""
    with restore(ContextSnapshot(request_id="test")) as ctx:
        yield ctx


async def in_recovery(session: Any) -> bool:
    """Whether the session's server is a replica (``pg_is_in_recovery()``)."""
    return bool(await session.scalar(sa.text("SELECT pg_is_in_recovery()")))


async def wait_for(predicate: Callable[[], Awaitable[bool]], *, within: float = 20.0) -> None:
    """Poll ``predicate`` until true; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        # Polling on purpose: the state lives in other processes, no event can announce it.
        while not await predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
