"""Command-line entry point.

Settings are loaded before anything else so a misconfiguration ends the
command with the variable's name and exit status 2, not a traceback. Beside
the kernel's commands (``run``, ``check``, ``config-docs``), every extension
of the target platform adds its own (``db`` comes from the database
extension); ``--app module:app`` makes an application's extensions the target.
"""

from __future__ import annotations

import os
import sys

import click

from tenfold._errors import ConfigurationError
from tenfold.cli._target import Target, fail, target_of

__all__ = ["cli", "main"]


class _PlatformGroup(click.Group):
    """The kernel's commands plus those of the target platform's extensions."""

    def _extension_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        target = target_of(ctx)
        found: dict[str, click.Command] = {}
        for extension in target.extensions():
            for command in extension.commands():
                if command.name in self.commands or command.name in found:
                    fail(
                        f"extension {extension.name!r} adds the command {command.name!r}, "
                        "which is taken",
                        code=2,
                    )
                found[command.name] = command  # type: ignore[index]
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *self._extension_commands(ctx)])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = self.commands.get(cmd_name)
        if found is not None:
            return found
        return self._extension_commands(ctx).get(cmd_name)


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # Eager, so that `--app x --help` lists x's commands: the commands are looked up
    # while the options are still being parsed.
    if value is not None:
        ctx.meta[f"tenfold.{param.name}"] = value
    return value


@click.group(cls=_PlatformGroup)
@click.version_option(package_name="tenfold")
@click.option(
    "--app",
    "app_path",
    default=None,
    is_eager=True,
    callback=_remember,
    help="module:attribute of an app built with create_app (or a Platform, or a factory "
    "of either): its extensions' commands and settings. Default: the built-in extensions.",
)
@click.option(
    "--app-dir",
    default=".",
    show_default=True,
    is_eager=True,
    callback=_remember,
    help="Put first on the import path to find --app.",
)
def cli(app_path: str | None, app_dir: str) -> None:
    """tenfold: run, check and migrate a tenfold application."""
    # Every command imports the app's own modules the way `run` does (migrations' env.py
    # imports its models): the app directory, the working directory by default, comes first.
    path = os.path.abspath(app_dir)
    if path not in sys.path:
        sys.path.insert(0, path)


@cli.command()
@click.option(
    "--app",
    "app_path",
    default=None,
    help="module:attribute of the ASGI app, or module:factory() for a factory "
    "[default: the top-level --app, else apps.hello.main:app].",
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
@click.option(
    "--keep-alive-timeout",
    "keep_alive",
    type=click.IntRange(min=1),
    default=None,
    help="Seconds an idle connection stays open; longer than the proxy's "
    "[default: TENFOLD_HTTP__KEEP_ALIVE_TIMEOUT or 75].",
)
@click.pass_context
def run(
    ctx: click.Context,
    app_path: str | None,
    host: str | None,
    port: int | None,
    app_dir: str,
    workers: int,
    reload: bool,
    keep_alive: int | None,
) -> None:
    """Serve the application with uvicorn (uvloop + httptools)."""
    from tenfold.cli._serve import serve

    root = target_of(ctx)
    app_path = app_path or root.app_path or "apps.hello.main:app"
    # The app's settings (its extensions' sections included), so a bad value ends here with
    # the variable's name; the server's process then imports the app itself.
    settings = Target(app_path, app_dir).settings()
    serve(
        app_path,
        settings,
        host=host or settings.host,
        port=settings.port if port is None else port,
        app_dir=app_dir,
        workers=workers,
        reload=reload,
        keep_alive=keep_alive,
    )


@cli.command()
@click.option(
    "--timeout",
    type=float,
    default=3.0,
    show_default=True,
    help="Seconds to wait for each dependency.",
)
@click.pass_context
def check(ctx: click.Context, timeout: float) -> None:
    """Validate settings and test connectivity to every configured dependency."""
    import asyncio

    from tenfold.cli._check import run_checks, without_retries
    from tenfold.observability import configure_logging

    try:
        platform = without_retries(target_of(ctx).build(), timeout)
    except ConfigurationError as exc:  # what `run` would refuse: said the same way
        click.echo(f"FAIL settings: {exc}")
        click.echo("overall: failing")
        sys.exit(2)
    # The report is the command's stdout; the platform's own log lines go to stderr.
    configure_logging(platform.settings.observability, console=True, stream=sys.stderr.buffer)
    ok = asyncio.run(run_checks(platform, echo=click.echo))
    sys.exit(0 if ok else 1)


@cli.command("config-docs")
@click.pass_context
def config_docs(ctx: click.Context) -> None:
    """Print the settings reference (docs/configuration.md) generated from the model."""
    from tenfold._settings_doc import settings_reference

    target = target_of(ctx)
    settings_class = type(target.settings()) if target.app_path is not None else None
    click.echo(settings_reference(settings_class), nl=False)


def main() -> None:
    cli(prog_name="tenfold")
