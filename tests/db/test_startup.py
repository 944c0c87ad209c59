"""Startup: bounded exponential backoff, and a clear error when it gives up."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from tenfold import Backoff, DatabaseSettings
from tenfold._errors import DatabaseUnavailable
from tenfold.db import Database
from tenfold.db._engine import Endpoint, connect_with_backoff, startup_backoff
from tenfold.testing import PgCluster, allocate_port, release_port
from tenfold.web import problem_for_exception

from .conftest import CURSOR_SECRET


def _closed_port_settings(port: int, **kw: object) -> DatabaseSettings:
    return DatabaseSettings(
        url=SecretStr(f"postgresql+asyncpg://app:s3cret-pw@127.0.0.1:{port}/app"),
        cursor_secret=CURSOR_SECRET,
        connect_timeout=1.0,
        connect_retries=2,
        connect_backoff=0.01,
        connect_backoff_max=0.02,
        **kw,  # type: ignore[arg-type]
    )


async def test_startup_gives_up_with_a_clear_error_against_a_closed_port() -> None:
    """Against a closed port start() retries, then names host:port and setting, not password."""
    port = allocate_port()
    try:
        db = Database(_closed_port_settings(port))
        with pytest.raises(DatabaseUnavailable) as raised:
            await db.start()
    finally:
        release_port(port)
    message = str(raised.value)
    assert f"127.0.0.1:{port}/app" in message
    assert "TENFOLD_DB__URL" in message
    assert "after 3 attempt(s)" in message
    assert "s3cret-pw" not in message
    assert problem_for_exception(raised.value).status_code == 503


async def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    """Waits between attempts double from connect_backoff, jittered, and stop at the max."""
    port = allocate_port()
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    settings = _closed_port_settings(port).model_copy(
        update={"connect_retries": 5, "connect_backoff": 1.0, "connect_backoff_max": 4.0}
    )
    endpoint = Endpoint("primary", "primary", settings.url, settings, setting="TENFOLD_DB__URL")
    try:
        with pytest.raises(DatabaseUnavailable):
            await connect_with_backoff(endpoint, settings, sleep=record)
    finally:
        await endpoint.dispose()
        release_port(port)
    caps = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(waits) == len(caps)
    for wait, cap in zip(waits, caps, strict=True):
        assert cap / 2 <= wait <= cap


def test_startup_backoff_comes_from_the_settings() -> None:
    """CONNECT_BACKOFF and CONNECT_BACKOFF_MAX become a doubling Backoff with equal jitter."""
    settings = DatabaseSettings(connect_backoff=0.3, connect_backoff_max=2.0)
    assert startup_backoff(settings) == Backoff(base=0.3, multiplier=2.0, max=2.0, jitter="equal")


async def test_a_missing_database_is_not_retried(pg_cluster: PgCluster) -> None:
    """An error that waiting cannot fix (no such database) gives up after one attempt."""
    settings = DatabaseSettings(
        url=SecretStr(pg_cluster.primary.url("no_such_database")),
        cursor_secret=CURSOR_SECRET,
        connect_retries=5,
        connect_backoff=5.0,
    )
    db = Database(settings)
    with pytest.raises(DatabaseUnavailable) as raised:
        await db.start()
    assert "after 1 attempt(s)" in str(raised.value)
    assert "no_such_database" in str(raised.value)
