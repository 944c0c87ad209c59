"""Command-line entry point.

Settings are loaded before anything else so a misconfiguration ends the
command with the variable's name and exit status 2, not a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from tenfold._errors import ConfigurationError, TenfoldError
from tenfold._settings import Settings

__all__ = ["cli", "main"]


def _load_settings() -> Settings:
    try:
        return Settings.load()
    except ConfigurationError as exc:
        _fail(str(exc), code=2)


def _fail(message: str, *, code: int = 1) -> NoReturn:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


@click.group()
@click.version_option(package_name="tenfold")
def cli() -> None:
    """tenfold: run, check and migrate a tenfold application."""


@cli.command()
@click.option(
    "--app",
    "app_path",
    default="apps.hello.main:app",
    show_default=True,
    help="module:attribute of the ASGI app, or module:factory() for a factory.",
)
@click.option("--host", default=None, help="Bind address [default: TENFOLD_HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: TENFOLD_PORT or 8000].")
@click.option(
    "--app-dir",
    default=".",
    show_default=True,
    help="Directory put first on the import path to find --app.",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--reload", is_flag=True, help="Restart on code changes (development only).")
def run(
    app_path: str, host: str | None, port: int | None, app_dir: str, workers: int, reload: bool
) -> None:
    """Serve the application with uvicorn (uvloop + httptools)."""
    from tenfold.cli._serve import serve

    settings = _load_settings()
    serve(
        app_path,
        settings,
        host=host or settings.host,
        port=settings.port if port is None else port,
        app_dir=app_dir,
        workers=workers,
        reload=reload,
    )


@cli.command()
@click.option(
    "--timeout",
    type=float,
    default=3.0,
    show_default=True,
    help="Seconds to wait for each dependency.",
)
def check(timeout: float) -> None:
    """Validate settings and test connectivity to every configured dependency."""
    import asyncio

    from tenfold.cli._check import run_checks

    settings = _load_settings()
    ok = asyncio.run(run_checks(settings, check_timeout=timeout, echo=click.echo))
    sys.exit(0 if ok else 1)


@cli.command("config-docs")
def config_docs() -> None:
    """Print the settings reference (docs/configuration.md) generated from the model."""
    from tenfold._settings_doc import settings_reference

    click.echo(settings_reference(), nl=False)


@cli.group()
def db() -> None:
    """Database migrations (Alembic)."""


@db.command("init")
def db_init() -> None:
    """Create the migrations directory from tenfold's template."""
    from tenfold.db import migrations

    _run_db(lambda s: migrations.init(s))


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Upgrade the database to REVISION (default: head)."""
    from tenfold.db import migrations

    _run_db(lambda s: migrations.upgrade(s, revision))


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Downgrade the database to REVISION (e.g. -1 or base)."""
    from tenfold.db import migrations

    _run_db(lambda s: migrations.downgrade(s, revision))


@db.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate", is_flag=True)
def db_revision(message: str, autogenerate: bool) -> None:
    """Create a new migration script."""
    from tenfold.db import migrations

    _run_db(lambda s: migrations.revision(s, message, autogenerate=autogenerate))


@db.command("current")
def db_current() -> None:
    """Show the database's current revision."""
    from tenfold.db import migrations

    _run_db(lambda s: click.echo(migrations.current(s) or "(none)"))


def _run_db(action) -> None:  # type: ignore[no-untyped-def]
    settings = _load_settings()
    try:
        action(settings)
    except TenfoldError as exc:
        _fail(str(exc))


def main() -> None:
    cli(prog_name="tenfold")
