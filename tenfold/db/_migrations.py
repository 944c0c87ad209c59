"""Alembic, driven by tenfold's settings.

The verbs (``init``, ``upgrade``, ``downgrade``, ``revision``, ``current``)
are what ``tenfold db ...`` calls. They are synchronous, because Alembic is:
from async code use the ``*_async`` variants, which run them in a thread.
The migrations directory is ``TENFOLD_DB__MIGRATIONS_DIR`` (``./migrations``)
unless ``directory=`` says otherwise. ``upgrade``/``downgrade`` migrate the
main database and then every shard, which share one schema.

Migrations run online on the async engine (``run_sync``), with no
``statement_timeout``: building an index may take longer than a request may.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncConnection

from tenfold._errors import ConfigurationError, TenfoldError
from tenfold._settings import CoreSettings
from tenfold.db._engine import build_engine
from tenfold.db._errors import map_error, translate
from tenfold.db._settings import DatabaseSettings

__all__ = [
    "current",
    "current_async",
    "downgrade",
    "downgrade_async",
    "init",
    "revision",
    "revision_async",
    "run_env",
    "upgrade",
    "upgrade_async",
]

TEMPLATE = Path(__file__).parent / "_alembic_template"
T = TypeVar("T")
AnySettings = CoreSettings | DatabaseSettings


def _db(settings: AnySettings) -> DatabaseSettings:
    return settings.section("db") if isinstance(settings, CoreSettings) else settings


def _directory(settings: AnySettings, directory: str | Path | None) -> Path:
    return Path(directory) if directory is not None else Path(_db(settings).migrations_dir)


def _urls(db: DatabaseSettings) -> list[SecretStr]:
    urls: dict[str, SecretStr] = {}
    for url in [db.url, *(s.url for s in db.shards)]:
        urls.setdefault(url.get_secret_value(), url)
    return list(urls.values())


def _config(db: DatabaseSettings, url: SecretStr, directory: Path) -> Config:
    if not (directory / "env.py").is_file():
        raise ConfigurationError(
            f"no migrations in {directory}/: run `tenfold db init` first",
            setting="TENFOLD_DB__MIGRATIONS_DIR",
        )
    config = Config()
    config.set_main_option("script_location", str(directory))
    # Passed as objects, not ini options: nothing is written to disk, and a
    # password with a '%' in it needs no escaping.
    config.attributes["tenfold_db"] = db
    config.attributes["tenfold_url"] = url
    return config


def _blocking(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"migrations.{name}() blocks the event loop; use `await migrations.{name}_async(...)`"
    )


def _mapped(call: Callable[[], T]) -> T:
    try:
        return call()
    except TenfoldError:
        raise
    except ImportError as exc:  # env.py imports the app's models
        raise ConfigurationError(
            f"the migrations' env.py could not import {exc.name or 'a module'}: {exc}. "
            "Run tenfold from your project's root (or pass --app-dir) so your package imports"
        ) from exc
    except CommandError as exc:  # alembic's own refusals: an unknown revision, not up to date
        raise ConfigurationError(f"alembic: {exc}") from exc
    except Exception as exc:
        mapped = map_error(exc, driver_only=True)
        if mapped is None:
            raise
        raise mapped from exc


def init(settings: AnySettings, directory: str | Path | None = None) -> Path:
    """Create the migrations directory from tenfold's template; returns its path."""
    target = _directory(settings, directory)
    if target.exists() and any(target.iterdir()):
        raise ConfigurationError(
            f"{target}/ already exists and is not empty", setting="TENFOLD_DB__MIGRATIONS_DIR"
        )
    target.mkdir(parents=True, exist_ok=True)
    for item in ("env.py", "script.py.mako", "README"):
        shutil.copyfile(TEMPLATE / item, target / item)
    (target / "versions").mkdir(exist_ok=True)
    return target


def upgrade(
    settings: AnySettings, revision: str = "head", *, directory: str | Path | None = None
) -> None:
    """Upgrade the main database and every shard to ``revision``."""
    _blocking("upgrade")
    db, where = _db(settings), _directory(settings, directory)
    for url in _urls(db):
        config = _config(db, url, where)
        _mapped(lambda c=config: command.upgrade(c, revision))


def downgrade(settings: AnySettings, revision: str, *, directory: str | Path | None = None) -> None:
    """Downgrade the main database and every shard to ``revision`` (``-1``, ``base``...)."""
    _blocking("downgrade")
    db, where = _db(settings), _directory(settings, directory)
    for url in _urls(db):
        config = _config(db, url, where)
        _mapped(lambda c=config: command.downgrade(c, revision))


def revision(
    settings: AnySettings,
    message: str,
    *,
    autogenerate: bool = False,
    directory: str | Path | None = None,
) -> Path:
    """Write a new migration script (compared with the main database if ``autogenerate``)."""
    if autogenerate:  # only autogenerate talks to the database
        _blocking("revision")
    db = _db(settings)
    config = _config(db, db.url, _directory(settings, directory))
    script = _mapped(lambda: command.revision(config, message=message, autogenerate=autogenerate))
    if script is None or isinstance(script, list):  # only with branches, which we never make
        raise ConfigurationError("alembic did not create exactly one revision")
    return Path(script.path)


def current(settings: AnySettings) -> str | None:
    """The main database's revision (``a,b`` with several heads; ``None`` if unversioned)."""
    _blocking("current")
    return asyncio.run(_current(_db(settings)))


async def _current(db: DatabaseSettings) -> str | None:
    engine = build_engine(db.url, db)
    try:
        async with translate("primary", connecting=True):
            conn = await engine.connect()
        try:
            async with translate("primary", driver_only=True):
                heads = await conn.run_sync(
                    lambda c: MigrationContext.configure(c).get_current_heads()
                )
        finally:
            await conn.close()
    finally:
        await engine.dispose()
    return ",".join(heads) if heads else None


async def upgrade_async(settings: AnySettings, revision: str = "head", **kw: Any) -> None:
    await asyncio.to_thread(upgrade, settings, revision, **kw)


async def downgrade_async(settings: AnySettings, revision: str, **kw: Any) -> None:
    await asyncio.to_thread(downgrade, settings, revision, **kw)


async def revision_async(settings: AnySettings, message: str, **kw: Any) -> Path:
    return await asyncio.to_thread(revision, settings, message, **kw)


async def current_async(settings: AnySettings) -> str | None:
    return await asyncio.to_thread(current, settings)


def run_env(context: Any, target_metadata: Any) -> None:
    """The body of a migrations directory's ``env.py``."""
    config = context.config
    db: DatabaseSettings = config.attributes.get("tenfold_db") or _load_db()
    url: SecretStr = config.attributes.get("tenfold_url") or db.url
    if context.is_offline_mode():
        context.configure(
            url=url.get_secret_value(),
            target_metadata=target_metadata,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(context, target_metadata, db, url))


async def _run_online(
    context: Any, target_metadata: Any, db: DatabaseSettings, url: SecretStr
) -> None:
    engine = build_engine(url, db.model_copy(update={"statement_timeout_ms": 0}))
    try:
        async with translate("primary", connecting=True):
            conn = await engine.connect()
        try:
            await conn.run_sync(_migrate, context, target_metadata)
            await _commit(conn)
        finally:
            await conn.close()
    finally:
        await engine.dispose()


async def _commit(conn: AsyncConnection) -> None:
    if conn.in_transaction():
        await conn.commit()


def _migrate(connection: Any, context: Any, target_metadata: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _load_db() -> DatabaseSettings:
    from tenfold._builtins import Settings

    return Settings.load().db  # type: ignore[attr-defined,no-any-return]
