"""Alembic through tenfold: init, revision, upgrade, current, downgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tenfold import DatabaseSettings, Settings, ShardSettings
from tenfold._errors import ConfigurationError, DatabaseUnavailable
from tenfold.db import migrations
from tenfold.testing import PgCluster, allocate_port, release_port

from .conftest import CURSOR_SECRET

BODY = """
def upgrade() -> None:
    op.create_table("widgets", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("widgets")
"""


def _write_revision(settings: DatabaseSettings, directory: Path) -> str:
    path = migrations.revision(settings, "add widgets", directory=directory)
    text = path.read_text()
    head, _, _ = text.partition("\ndef upgrade()")
    path.write_text(head + BODY)
    return path.name.split("_", 1)[0]


def test_sqlite_migrations_round_trip(tmp_path: Path) -> None:
    """init, revision, upgrade, current and downgrade work on the embedded database."""
    directory = tmp_path / "migrations"
    settings = Settings(db=DatabaseSettings(url=SecretStr(f"sqlite:///{tmp_path}/app.db")))
    assert migrations.init(settings, directory) == directory
    assert (directory / "env.py").is_file()
    assert (directory / "versions").is_dir()
    with pytest.raises(ConfigurationError):
        migrations.init(settings, directory)  # never overwrite an existing directory
    rev = _write_revision(settings.db, directory)
    assert migrations.current(settings) is None
    migrations.upgrade(settings, directory=directory)
    assert migrations.current(settings) == rev
    migrations.downgrade(settings, "base", directory=directory)
    assert migrations.current(settings) is None


def test_missing_directory_says_to_run_init(tmp_path: Path) -> None:
    """Upgrading without a migrations directory names the command and the setting."""
    settings = DatabaseSettings(url=SecretStr(f"sqlite:///{tmp_path}/app.db"))
    with pytest.raises(ConfigurationError, match="tenfold db init") as raised:
        migrations.upgrade(settings, directory=tmp_path / "nowhere")
    assert raised.value.setting == "TENFOLD_DB__MIGRATIONS_DIR"


def test_unreachable_database_is_database_unavailable(tmp_path: Path) -> None:
    """current() against a closed port raises DatabaseUnavailable, which the CLI prints."""
    port = allocate_port()
    try:
        settings = DatabaseSettings(
            url=SecretStr(f"postgresql://app@127.0.0.1:{port}/app"),
            connect_timeout=1.0,
            cursor_secret=CURSOR_SECRET,
        )
        with pytest.raises(DatabaseUnavailable):
            migrations.current(settings)
    finally:
        release_port(port)


async def test_postgres_upgrade_migrates_main_database_and_every_shard(
    pg_cluster: PgCluster, fresh_pg_database: str, tmp_path: Path
) -> None:
    """upgrade_async runs online on the async engine for the main database and each shard."""
    shard_db = pg_cluster.create_database()
    try:
        settings = DatabaseSettings(
            url=SecretStr(pg_cluster.primary.url(fresh_pg_database)),
            shards=[ShardSettings(url=SecretStr(pg_cluster.primary.url(shard_db)))],
            cursor_secret=CURSOR_SECRET,
        )
        directory = migrations.init(settings, tmp_path / "migrations")
        rev = _write_revision(settings, directory)
        with pytest.raises(RuntimeError, match="upgrade_async"):
            migrations.upgrade(settings, directory=directory)  # would block the event loop
        await migrations.upgrade_async(settings, directory=directory)
        assert await migrations.current_async(settings) == rev
        for name in (fresh_pg_database, shard_db):
            assert (
                pg_cluster.primary.psql("SELECT to_regclass('widgets') IS NOT NULL", db=name) == "t"
            )
        await migrations.downgrade_async(settings, "base", directory=directory)
        assert pg_cluster.primary.psql("SELECT to_regclass('widgets')", db=shard_db) == ""
    finally:
        pg_cluster.drop_database(shard_db)
