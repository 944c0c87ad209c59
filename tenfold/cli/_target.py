"""What a ``tenfold`` command runs against: the app named by ``--app``, or the built-ins.

``tenfold --app mymod:app greet`` loads ``mymod.app`` (an app built with
``create_app``, a ``Platform``, or a factory returning either) and offers
its extensions' commands; without ``--app`` the built-in extensions' are
offered. Commands reach the settings with ``pass_settings`` and a started
platform with ``with_platform``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from tenfold._errors import ConfigurationError

if TYPE_CHECKING:
    from tenfold._extension import Extension
    from tenfold._platform import Platform
    from tenfold._settings import CoreSettings

__all__ = ["Target", "fail", "pass_settings", "with_platform"]

T = TypeVar("T")


def fail(message: str, *, code: int = 1) -> NoReturn:
    """End the command with ``error: message`` on stderr and status ``code``."""
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


class Target:
    """The platform a command works on, found lazily (loading an app imports user code)."""

    def __init__(self, app_path: str | None = None, app_dir: str = ".") -> None:
        self.app_path = app_path
        self.app_dir = app_dir
        self._platform: Platform | None = None
        self._settings: CoreSettings | None = None

    def extensions(self) -> list[Extension]:
        if self.app_path is None:
            from tenfold._builtins import builtin_extensions

            return builtin_extensions()
        return list(self.platform().extensions)

    def settings(self) -> CoreSettings:
        """The settings, read once; a bad value ends the command with status 2."""
        if self._settings is None:
            if self.app_path is not None:
                self._settings = self.platform().settings
            else:
                from tenfold._builtins import Settings

                try:
                    self._settings = Settings.load()
                except ConfigurationError as exc:
                    fail(str(exc), code=2)
        return self._settings

    def platform(self) -> Platform:
        """The platform (built, not started); a bad setting ends the command with status 2."""
        try:
            return self.build()
        except ConfigurationError as exc:
            fail(str(exc), code=2)

    def build(self) -> Platform:
        """The platform (built, not started); raises ``ConfigurationError``."""
        if self._platform is None:
            from tenfold._platform import Platform

            if self.app_path is None:
                self._platform = Platform.build()
            else:
                self._platform = _platform_of(self._load())
        return self._platform

    def _load(self) -> Any:
        module_name, _, attribute = self.app_path.removesuffix("()").partition(":")  # type: ignore[union-attr]
        if self.app_dir not in sys.path:
            sys.path.insert(0, self.app_dir)
        try:
            module = importlib.import_module(module_name)
            found = getattr(module, attribute or "app")
        except (ImportError, AttributeError) as exc:
            fail(f"--app {self.app_path}: {exc}", code=2)
        if self.app_path.endswith("()") or (callable(found) and inspect.isfunction(found)):  # type: ignore[union-attr]
            found = found()
        return found


def _platform_of(found: Any) -> Platform:
    from tenfold._platform import Platform

    if isinstance(found, Platform):
        return found
    platform = getattr(getattr(found, "state", None), "tenfold", None)
    if isinstance(platform, Platform):
        return platform
    raise ConfigurationError(
        f"--app must name an app built with tenfold.create_app or a tenfold.Platform, "
        f"not {type(found).__name__}"
    )


def target_of(ctx: click.Context) -> Target:
    """The target of this invocation (from the root's ``--app`` and ``--app-dir``)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Target):
        meta = root.meta
        root.obj = Target(meta.get("tenfold.app_path"), meta.get("tenfold.app_dir", "."))
    return root.obj


def pass_settings(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorate a command so it receives the settings as its first argument."""

    @functools.wraps(fn)
    @click.pass_context
    def command(ctx: click.Context, /, *args: Any, **kwargs: Any) -> T:
        return fn(target_of(ctx).settings(), *args, **kwargs)

    return command


def with_platform(fn: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """Decorate an ``async`` command so it runs with the platform started, as its first argument::

    @click.command()
    @click.argument("name")
    @with_platform
    async def greet(platform: Platform, name: str) -> None: ...
    """

    @functools.wraps(fn)
    @click.pass_context
    def command(ctx: click.Context, /, *args: Any, **kwargs: Any) -> T:
        from tenfold.observability import configure_logging

        platform = target_of(ctx).platform()
        platform.command = True
        # A command's output is its stdout; the platform's log lines go to stderr.
        configure_logging(
            platform.settings.observability,
            console=True,
            stream=sys.stderr.buffer,
        )

        async def run() -> T:
            async with platform:
                return await fn(platform, *args, **kwargs)

        return asyncio.run(run())

    return command
