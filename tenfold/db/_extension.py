"""The ``db`` extension: the ``Database`` component, read-your-writes, ``tenfold db``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tenfold._errors import ConfigurationError
from tenfold._extension import Build, Extension
from tenfold.db._consistency import ConsistencyMiddleware
from tenfold.db._database import Database
from tenfold.db._settings import DatabaseSettings
from tenfold.web import Slot

if TYPE_CHECKING:
    import click

__all__ = ["DatabaseExtension"]


class DatabaseExtension(Extension):
    """Pools, replica routing and shards from ``TENFOLD_DB__*``: ``platform.get(Database)``.

    Registers a readiness check per server and the pool metrics, puts
    ``ConsistencyMiddleware`` in ``Slot.CONSISTENCY`` and adds ``tenfold db``.
    """

    name = "db"
    settings_model = DatabaseSettings

    def build(self, build: Build) -> None:
        settings: DatabaseSettings = build.section
        if build.settings.app.environment == "production" and settings.cursor_secret is None:
            # The section alone cannot know the environment; SQLite in production lands here.
            raise ConfigurationError(
                "TENFOLD_DB__CURSOR_SECRET must be set in production: the development key "
                "that signs cursors otherwise is public, so cursors could be forged",
                setting="TENFOLD_DB__CURSOR_SECRET",
            )
        database = Database(settings, metrics=build.metrics, health=build.health)
        for engine in database.engines:
            build.tracing.instrument_engine(engine)
        build.provide(database, name="db")
        build.component(database)
        build.middleware(
            Slot.CONSISTENCY,
            ConsistencyMiddleware,
            header=settings.consistency_header,
            cookie=settings.consistency_cookie,
        )

    def commands(self) -> Sequence[click.Command]:
        from tenfold.db._cli import db

        return [db]
