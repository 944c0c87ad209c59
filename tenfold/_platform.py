"""``Platform``: every component of one process, opened the same way by any process.

A web app, a Celery worker, a CLI command, a test or a script opens the same
platform::

    async with tenfold.Platform.open() as platform:
        async with platform.get(Database).session() as session: ...
        await platform.get(Cache).get_or_set(...)

``Platform.build()`` composes the settings of the extensions in use, reads
them once (a bad value is a ``ConfigurationError`` naming the variable),
orders the extensions by their ``requires``/``after`` and runs each one's
``build()``: no I/O yet. ``start()`` starts the components in that order
(tracing first), ``stop()`` stops them in reverse. ``create_app`` is a thin
FastAPI adapter over a built platform; see ``tenfold._app``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends
from starlette.requests import HTTPConnection

from tenfold._components import Component, ComponentGroup
from tenfold._errors import ConfigurationError
from tenfold._extension import Build, Extension, SlotMiddleware, check_extension
from tenfold._routes import RouteIndex
from tenfold._settings import CoreSettings
from tenfold.health import HealthRegistry, Lifecycle
from tenfold.observability import Metrics, Tracing, configure_logging, get_logger, start_tracing
from tenfold.redis import PROBLEMS as REDIS_PROBLEMS
from tenfold.redis import RedisHub
from tenfold.web import ProblemRegistry

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

__all__ = ["Platform", "PlatformDep", "Use", "find_on", "get_platform", "platform_of"]

T = TypeVar("T")
_log = get_logger("tenfold.platform")


class Platform:
    """Settings, components and declarations of one process; see the module docstring.

    Objects that extensions provide are found by type, ``platform.get(Cache)``,
    and, for the built-in ones, by name too: ``platform.db``, ``platform.cache``,
    ``platform.ratelimit``, ``platform.idempotency``, ``platform.upstreams`` and
    ``platform.upstream(name, ...)``.
    """

    def __init__(
        self,
        settings: CoreSettings,
        extensions: Sequence[Extension],
        *,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """Use ``Platform.build()`` or ``Platform.open()``; this only holds what they made."""
        self._named: dict[str, Any] = {}
        self._provided: dict[type, Any] = {}
        self._owners: dict[type, str] = {}
        self.settings = settings
        self.extensions: tuple[Extension, ...] = tuple(extensions)
        self.options: Mapping[str, Any] = dict(options or {})
        obs = settings.observability
        self.metrics: Metrics | None = Metrics(namespace="tenfold") if obs.metrics_enabled else None
        self.health = HealthRegistry(settings.health)
        self.lifecycle = Lifecycle()
        self.tracing: Tracing = start_tracing(obs, span_exporter=self.options.get("span_exporter"))
        #: The process's Redis (None when TENFOLD_REDIS__* is unset): one client, one pub/sub.
        self.redis: RedisHub | None = None
        #: How exceptions become problem+json: the core's, then each extension's table.
        self.problems = ProblemRegistry(REDIS_PROBLEMS)
        if settings.redis.enabled:
            self.redis = RedisHub.from_settings(settings.redis)
            self._provide(self.redis, RedisHub, "kernel")
            # Not critical: each capability says what a Redis outage means for it.
            self.health.register("redis", self.redis.check, critical=False)
        #: The app's routes, matched once per request and shared by every middleware.
        self.route_index = RouteIndex()
        self._components: list[Component] = [self.redis] if self.redis is not None else []
        self._middleware: list[SlotMiddleware] = []
        self._routers: list[APIRouter] = []
        self._websockets: dict[str, Any] = {}
        #: The extension-declared resolver of the authentication slot, and who declared it.
        self._authenticate: tuple[str, Any] | None = None
        self._openapi: list[Callable[[Any, dict[str, Any]], None]] = []
        self._on_started: list[Callable[[Platform], Awaitable[None]]] = []
        self._group: ComponentGroup | None = None
        self.started = False
        #: True in a short-lived command (``tenfold.cli.with_platform``): capabilities skip
        #: what only a serving process should run (the embedded jobs worker, for one).
        self.command = False
        #: True in a ``tenfold worker`` process: its platform runs tasks, started lazily in
        #: each pool process; capabilities keep their background loops out of it.
        self.worker = False

    def __repr__(self) -> str:
        names = ", ".join(e.name for e in self.extensions)
        return f"<Platform [{names}] {self.settings.profile} {'started' if self.started else ''}>"

    # -- construction ----------------------------------------------------------

    @classmethod
    def build(
        cls,
        settings: CoreSettings | None = None,
        *,
        extensions: Iterable[Extension] = (),
        builtins: bool = True,
        components: Sequence[Component] = (),
        configure_logs: bool = True,
        **options: Any,
    ) -> Platform:
        """Compose, read and validate the settings, then build every extension (no I/O).

        ``extensions`` are added to the built-in ones (``builtins=False``: only
        these); one with the name of a built-in replaces it. ``settings`` given
        without some extension's section get it from the environment.
        ``components`` are the application's own parts, started after every
        extension's. ``options`` are read by extensions (``build.option``).
        """
        chosen = _merge([*(_builtins() if builtins else ()), *extensions])
        ordered = _order(chosen)
        settings = _settings_for(ordered, settings)
        if configure_logs:
            configure_logging(settings.observability, console=_wants_console(settings))
        platform = cls(settings, ordered, options=options)
        for extension in ordered:
            extension.build(Build(platform, extension))
        platform._components.extend(components)
        return platform

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: CoreSettings | None = None,
        *,
        extensions: Iterable[Extension] = (),
        builtins: bool = True,
        components: Sequence[Component] = (),
        configure_logs: bool = True,
        **options: Any,
    ) -> AsyncIterator[Platform]:
        """``async with Platform.open() as platform``: build, start, and stop on exit."""
        platform = cls.build(
            settings,
            extensions=extensions,
            builtins=builtins,
            components=components,
            configure_logs=configure_logs,
            **options,
        )
        async with platform:
            yield platform

    # -- what the extensions provided ------------------------------------------

    def get(self, kind: type[T]) -> T:
        """The object of class ``kind`` an extension provided; ``ConfigurationError`` if none."""
        found = self.find(kind)
        if found is None:
            have = ", ".join(sorted(k.__name__ for k in self._provided)) or "nothing"
            raise ConfigurationError(
                f"this platform provides no {getattr(kind, '__name__', kind)} (yet): add the "
                "extension that provides it, and from another extension's build() list it in "
                f"`requires` so it is built first (provided so far: {have})"
            )
        return found

    def find(self, kind: type[T]) -> T | None:
        """The object of class ``kind`` an extension provided, or None."""
        found = self._provided.get(kind)
        if found is not None:
            return found  # type: ignore[no-any-return]
        for provided in list(self._provided.values()):
            try:
                if isinstance(provided, kind):
                    self._provided[kind] = provided
                    return provided
            except TypeError:  # a Protocol that is not runtime-checkable
                return None
        return None

    def has(self, name: str) -> bool:
        """Whether an extension named ``name`` is part of this platform."""
        return any(e.name == name for e in self.extensions)

    def provide(self, obj: T, *, kind: type | None = None, name: str | None = None) -> T:
        """Make an object built outside any extension findable (scripts and tests)."""
        self._provide(obj, kind or type(obj), "app")
        if name is not None:
            self._expose(name, obj, "app")
        return obj

    def _provide(self, obj: Any, kind: type, owner: str) -> None:
        if kind in self._owners:
            raise ConfigurationError(
                f"{kind.__name__} is provided twice (by {self._owners[kind]!r} and {owner!r})"
            )
        self._provided[kind] = obj
        self._owners[kind] = owner

    def _expose(self, name: str, obj: Any, owner: str) -> None:
        if name in self._named or hasattr(type(self), name) or name in self.__dict__:
            raise ConfigurationError(f"platform.{name} is taken ({owner!r} asked for it)")
        self._named[name] = obj

    def __getattr__(self, name: str) -> Any:
        named = self.__dict__.get("_named")
        if named is not None and name in named:
            return named[name]
        raise AttributeError(
            f"{type(self).__name__!r} has no attribute {name!r}"
            + (f" (named objects: {sorted(named)})" if named else "")
        )

    # -- declarations for a web adapter ----------------------------------------

    @property
    def middleware(self) -> list[SlotMiddleware]:
        """Every extension's middleware, in slot order (stable within a slot)."""
        return sorted(self._middleware, key=lambda m: m.slot)

    @property
    def routers(self) -> list[APIRouter]:
        return list(self._routers)

    @property
    def authenticate(self) -> Any:
        """The resolver an extension declared for the authentication slot, or None."""
        return self._authenticate[1] if self._authenticate is not None else None

    @property
    def websockets(self) -> dict[str, Any]:
        """The WebSocket endpoints served on the lean lane, by path (``Build.websocket``)."""
        return dict(self._websockets)

    @property
    def openapi_hooks(self) -> list[Callable[[Any, dict[str, Any]], None]]:
        """``hook(app, document)`` for each extension that adds to the OpenAPI document."""
        return list(self._openapi)

    @property
    def components(self) -> ComponentGroup:
        """The ordered group this platform starts: tracing, the Redis hub, the extensions'
        components, the app's."""
        if self._group is None:
            self._group = ComponentGroup([self.tracing, *self._components])
        return self._group

    def commands(self) -> list[click.Command]:
        """Every extension's CLI commands."""
        return [command for e in self.extensions for command in e.commands()]

    # -- lifetime -----------------------------------------------------------------

    async def start(self, *, keep_going: bool = False) -> dict[str, Exception]:
        """Start every component in order, then run the ``on_started`` hooks.

        A component that fails to start stops those already started; a hook that
        fails stops them all. Either way the error propagates and nothing is left open.

        ``keep_going=True`` is for diagnostics (``tenfold check``): components that
        fail are skipped, the others start, and the failures are returned by component
        name (the hooks run only when nothing failed). ``stop()`` still closes all.
        """
        failed = await self.components.start(keep_going=keep_going)
        self.started = True
        if failed:
            return failed
        try:
            for hook in self._on_started:
                await hook(self)
        except BaseException:
            await self.stop()
            raise
        return failed

    async def stop(self) -> None:
        """Stop the started components in reverse order."""
        self.started = False
        await self.components.stop()

    async def __aenter__(self) -> Platform:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def platform_of(app: Any) -> Platform:
    """The ``Platform`` an app built with ``create_app`` (or ``attach``) serves."""
    platform = getattr(getattr(app, "state", None), "tenfold", None)
    if not isinstance(platform, Platform):
        raise ConfigurationError(
            "this app has no tenfold Platform: build it with tenfold.create_app()"
        )
    return platform


def find_on(app: Any, kind: type[T]) -> T | None:
    """``platform_of(app).find(kind)``, or None when ``app`` has no platform."""
    platform = getattr(getattr(app, "state", None), "tenfold", None)
    return platform.find(kind) if isinstance(platform, Platform) else None


async def get_platform(connection: HTTPConnection) -> Platform:
    """FastAPI dependency: the ``Platform`` of the app serving this request or WebSocket.

    ``async`` although it awaits nothing: FastAPI runs a plain ``def`` dependency on its
    thread pool, a thread hop per request for a dictionary lookup."""
    return platform_of(connection.app)


PlatformDep = Annotated[Platform, Depends(get_platform)]

_dependencies: dict[type, Any] = {}


class Use:
    """``thing: Use[Cache]`` in a route or dependency gets ``platform.get(Cache)``."""

    def __class_getitem__(cls, kind: type[T]) -> Any:
        dependency = _dependencies.get(kind)
        if dependency is None:

            async def dependency(connection: HTTPConnection) -> Any:  # async: no thread hop
                return platform_of(connection.app).get(kind)

            dependency.__name__ = f"use_{getattr(kind, '__name__', 'object')}"
            _dependencies[kind] = dependency
        return Annotated[kind, Depends(dependency)]


# -- build helpers --------------------------------------------------------------


def _builtins() -> list[Extension]:
    from tenfold._builtins import builtin_extensions

    return builtin_extensions()


def _merge(extensions: Sequence[Extension]) -> list[Extension]:
    """Later extensions replace earlier ones of the same name, in the earlier one's place."""
    merged: dict[str, Extension] = {}
    for extension in extensions:
        check_extension(extension)
        merged[extension.name] = extension
    return list(merged.values())


def _order(extensions: list[Extension]) -> list[Extension]:
    """Dependencies first; otherwise the order given (a stable topological sort)."""
    by_name = {e.name: e for e in extensions}
    for extension in extensions:
        missing = [r for r in extension.requires if r not in by_name]
        if missing:
            raise ConfigurationError(
                f"extension {extension.name!r} requires {missing}: add "
                f"{'it' if len(missing) == 1 else 'them'} to the platform's extensions"
            )
    ordered: list[Extension] = []
    state: dict[str, str] = {}

    def visit(extension: Extension, path: tuple[str, ...]) -> None:
        if state.get(extension.name) == "done":
            return
        if state.get(extension.name) == "visiting":
            cycle = " -> ".join((*path, extension.name))
            raise ConfigurationError(f"extensions depend on each other in a cycle: {cycle}")
        state[extension.name] = "visiting"
        for name in (*extension.requires, *extension.after):
            if name in by_name:
                visit(by_name[name], (*path, extension.name))
        state[extension.name] = "done"
        ordered.append(extension)

    for extension in extensions:
        visit(extension, ())
    return ordered


def _settings_for(extensions: Sequence[Extension], given: CoreSettings | None) -> CoreSettings:
    """The settings of these extensions: ``given``, completed from the environment."""
    cls = CoreSettings.compose(
        (e.name, e.settings_model) for e in extensions if e.settings_model is not None
    )
    if given is None:
        return cls.load()
    if type(given) is cls:
        return given
    fields = cls.model_fields
    return cls.load(
        **{name: getattr(given, name) for name in type(given).model_fields if name in fields}
    )


def _wants_console(settings: CoreSettings) -> bool:
    fmt = settings.observability.log_format
    if fmt == "auto":
        return settings.profile == "embedded" and settings.app.environment == "development"
    return fmt == "console"
