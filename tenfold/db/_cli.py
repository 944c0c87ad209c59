"""``tenfold db ...``: Alembic migrations, a command of the database extension."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from tenfold._errors import TenfoldError
from tenfold._settings import CoreSettings
from tenfold.cli import fail, pass_settings

__all__ = ["db"]


@click.group()
def db() -> None:
    """Database migrations (Alembic)."""


@db.command("init")
@pass_settings
def db_init(settings: CoreSettings) -> None:
    """Create the migrations directory from tenfold's template."""
    from tenfold.db import migrations

    _run(lambda: migrations.init(settings))


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_settings
def db_upgrade(settings: CoreSettings, revision: str) -> None:
    """Upgrade the database to REVISION (default: head)."""
    from tenfold.db import migrations

    _run(lambda: migrations.upgrade(settings, revision))


@db.command("downgrade")
@click.argument("revision")
@pass_settings
def db_downgrade(settings: CoreSettings, revision: str) -> None:
    """Downgrade the database to REVISION (e.g. -1 or base)."""
    from tenfold.db import migrations

    _run(lambda: migrations.downgrade(settings, revision))


@db.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate", is_flag=True)
@pass_settings
def db_revision(settings: CoreSettings, message: str, autogenerate: bool) -> None:
    """Create a new migration script."""
    from tenfold.db import migrations

    _run(lambda: migrations.revision(settings, message, autogenerate=autogenerate))


@db.command("current")
@pass_settings
def db_current(settings: CoreSettings) -> None:
    """Show the database's current revision."""
    from tenfold.db import migrations

    _run(lambda: click.echo(migrations.current(settings) or "(none)"))


def _run(action: Callable[[], Any]) -> None:
    try:
        action()
    except TenfoldError as exc:
        fail(str(exc))
