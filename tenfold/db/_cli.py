"""``tenfold db ...``: Alembic migrations, a command of the database extension."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from tenfold._errors import TenfoldError
from tenfold._settings import CoreSettings
from tenfold.cli import fail, pass_settings

__all__ = ["db"]

T = TypeVar("T")


@click.group()
def db() -> None:
    """Database migrations (Alembic)."""


@db.command("init")
@pass_settings
def db_init(settings: CoreSettings) -> None:
    """Create the migrations directory from tenfold's template."""
    from tenfold.db import migrations

    path = _run(lambda: migrations.init(settings))
    click.echo(f"created {path}/")
    click.echo(
        f"next: point target_metadata in {path}/env.py at your models' MetaData, then "
        '`tenfold db revision --autogenerate -m "create tables"` and `tenfold db upgrade`'
    )


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_settings
def db_upgrade(settings: CoreSettings, revision: str) -> None:
    """Upgrade the database to REVISION (default: head)."""
    from tenfold.db import migrations

    _run(lambda: migrations.upgrade(settings, revision))
    _report_current(settings, "upgraded")


@db.command("downgrade")
@click.argument("revision")
@pass_settings
def db_downgrade(settings: CoreSettings, revision: str) -> None:
    """Downgrade the database to REVISION (e.g. -1 or base)."""
    from tenfold.db import migrations

    _run(lambda: migrations.downgrade(settings, revision))
    _report_current(settings, "downgraded")


@db.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate", is_flag=True)
@pass_settings
def db_revision(settings: CoreSettings, message: str, autogenerate: bool) -> None:
    """Create a new migration script."""
    from tenfold.db import migrations

    path = _run(lambda: migrations.revision(settings, message, autogenerate=autogenerate))
    click.echo(f"created {path}")


@db.command("current")
@pass_settings
def db_current(settings: CoreSettings) -> None:
    """Show the database's current revision."""
    from tenfold.db import migrations

    _run(lambda: click.echo(migrations.current(settings) or "(none)"))


def _report_current(settings: CoreSettings, done: str) -> None:
    from tenfold.db import migrations

    now = _run(lambda: migrations.current(settings))
    click.echo(f"{done}: the database is at {now or '(no revision)'}")


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except TenfoldError as exc:
        fail(str(exc))
