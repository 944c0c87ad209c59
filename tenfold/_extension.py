"""Extensions: how a capability plugs into a platform.

An extension declares, in one class, everything a capability brings::

    class Audit(Extension):
        name = "audit"                  # also its settings section: TENFOLD_AUDIT__*
        settings_model = AuditSettings  # a SettingsSection
        requires = ("db",)              # opened after these, closed before them

        def build(self, build: Build) -> None:
            log = AuditLog(build.section, build.get(Database))
            build.provide(log)                           # platform.get(AuditLog)
            build.component(log)                         # started and stopped in order
            build.check("audit.sink", log.ping, critical=False)
            build.collector(log.stats)                   # Prometheus collector
            build.middleware(Slot.APPLICATION, AuditMiddleware, log=log)
            build.router(log.admin_routes())

        def commands(self) -> list[click.Command]:
            return [audit_cli]                           # `tenfold audit ...`

``build()`` runs once per platform, synchronously and without I/O: it only
constructs objects and declares them. Connections are made when the platform
starts its components. Middleware and routes are used when the platform
serves HTTP (``create_app``); a worker or a CLI command opens the same
platform and ignores them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel

from tenfold._components import Component
from tenfold._errors import ConfigurationError
from tenfold.web._slots import Slot

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter
    from prometheus_client.registry import Collector

    from tenfold._platform import Platform
    from tenfold._routes import RouteIndex
    from tenfold._settings import CoreSettings
    from tenfold.health import Check, HealthRegistry, Lifecycle
    from tenfold.observability import Metrics, Tracing
    from tenfold.redis import RedisHub
    from tenfold.web import ProblemEntry, ProblemRegistry

__all__ = ["Build", "Extension", "SlotMiddleware"]

T = TypeVar("T")


class Extension:
    """Base class of a capability plugged into a platform; see the module docstring."""

    #: The extension's name, unique in a platform; also its settings section's name.
    name: ClassVar[str] = ""
    #: The model of its settings section (``TENFOLD_<NAME>__*``), or None for none.
    settings_model: ClassVar[type[BaseModel] | None] = None
    #: Names of extensions that must be built and started before this one.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Names of extensions that, *if present*, come before this one (no requirement).
    after: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def build(self, build: Build) -> None:
        """Construct this capability's objects and declare them on ``build``. No I/O."""

    def commands(self) -> Sequence[click.Command]:
        """``tenfold`` CLI commands this extension adds (see ``tenfold.cli.with_platform``)."""
        return ()


@dataclass(frozen=True, slots=True)
class SlotMiddleware:
    """An ASGI middleware class with its options, placed in a ``Slot``."""

    slot: Slot
    cls: Any
    options: Mapping[str, Any]
    #: The extension that declared it ("app" for the application's own).
    owner: str


@dataclass(frozen=True, slots=True)
class _CheckSpec:
    name: str
    check: Check
    critical: bool
    timeout: float | None


class Build:
    """What one extension's ``build()`` sees of the platform under construction."""

    def __init__(self, platform: Platform, extension: Extension) -> None:
        self._platform = platform
        self.extension = extension

    def __repr__(self) -> str:
        return f"<Build {self.extension.name!r}>"

    # -- what the platform already has ---------------------------------------

    @property
    def settings(self) -> CoreSettings:
        """Every section's values (the composed settings of this platform)."""
        return self._platform.settings

    @property
    def section(self) -> Any:
        """This extension's own section (None if it declares no ``settings_model``)."""
        if self.extension.settings_model is None:
            return None
        return self._platform.settings.section(self.extension.name)

    @property
    def metrics(self) -> Metrics | None:
        """The platform's Prometheus metrics (None when TENFOLD_OBSERVABILITY__METRICS_ENABLED
        is off)."""
        return self._platform.metrics

    @property
    def health(self) -> HealthRegistry:
        return self._platform.health

    @property
    def lifecycle(self) -> Lifecycle:
        return self._platform.lifecycle

    @property
    def tracing(self) -> Tracing:
        return self._platform.tracing

    @property
    def redis(self) -> RedisHub | None:
        """The process's ``RedisHub`` (one client, one pub/sub connection), or None when
        ``TENFOLD_REDIS__*`` is unset. Build Redis-backed parts on it, never a client of
        their own."""
        return self._platform.redis

    @property
    def route_index(self) -> RouteIndex:
        """The app's ``RouteIndex``: pass it to middleware that needs the route before
        routing, so each request is matched once for all of them."""
        return self._platform.route_index

    def option(self, name: str, default: Any = None) -> Any:
        """A value the platform's opener passed for extensions (``create_app(rate_limits=...)``)."""
        return self._platform.options.get(name, default)

    def get(self, kind: type[T]) -> T:
        """An object an earlier extension provided; ``ConfigurationError`` if there is none."""
        return self._platform.get(kind)

    def find(self, kind: type[T]) -> T | None:
        """An object an earlier extension provided, or None."""
        return self._platform.find(kind)

    def has(self, name: str) -> bool:
        """Whether the platform has the extension ``name``."""
        return self._platform.has(name)

    # -- what this extension declares -----------------------------------------

    def provide(self, obj: T, *, kind: type | None = None, name: str | None = None) -> T:
        """Make ``obj`` available as ``platform.get(kind)`` (default: its own class).

        ``name`` also makes it an attribute, ``platform.<name>``.
        """
        self._platform._provide(obj, kind or type(obj), self.extension.name)
        if name is not None:
            self.expose(name, obj)
        return obj

    def expose(self, name: str, obj: Any) -> None:
        """Make ``obj`` the attribute ``platform.<name>`` (a convenience; prefer ``get``)."""
        self._platform._expose(name, obj, self.extension.name)

    def component(self, component: Component) -> Component:
        """Start ``component`` with the platform (in extension order) and stop it in reverse."""
        self._platform._components.append(component)
        return component

    def check(
        self,
        name: str,
        check: Callable[[], Awaitable[Mapping[str, Any] | None]],
        *,
        critical: bool = True,
        timeout: float | None = None,
    ) -> None:
        """A readiness check: a failing critical one makes ``/ready`` 503, others degrade it."""
        self._platform.health.register(name, check, critical=critical, timeout=timeout)

    def collector(self, collector: Collector) -> None:
        """A Prometheus collector exposed on ``/metrics`` (nothing when metrics are off)."""
        metrics = self._platform.metrics
        if metrics is not None:
            metrics.register_collector(collector)

    def middleware(self, slot: Slot, cls: Any, **options: Any) -> None:
        """ASGI middleware ``cls(app, **options)`` in ``slot`` when the platform serves HTTP."""
        if not isinstance(slot, Slot):
            raise TypeError(f"slot must be a tenfold.web.Slot, not {slot!r}")
        self._platform._middleware.append(SlotMiddleware(slot, cls, options, self.extension.name))

    def router(self, router: APIRouter) -> None:
        """Routes served when the platform serves HTTP."""
        self._platform._routers.append(router)

    def authenticate(self, resolve: Any) -> None:
        """Fill the kernel's authentication slot with ``resolve`` (see
        ``tenfold.web.AuthenticationMiddleware``): every request and WebSocket gets its
        principal from it, before the rate limiter, the HTTP cache and the routes decide.

        One resolver per app: a second extension declaring one, or an app passing
        ``create_app(authenticate=...)`` as well, is a ``ConfigurationError``.
        """
        declared = self._platform._authenticate
        if declared is not None:
            raise ConfigurationError(
                f"extensions {declared[0]!r} and {self.extension.name!r} both fill the "
                "authentication slot; an app has one authenticator"
            )
        self._platform._authenticate = (self.extension.name, resolve)

    def websocket(self, path: str, endpoint: Any) -> None:
        """Serve the ASGI app ``endpoint`` for WebSocket connections to ``path`` on the lean lane.

        A connection there passes through the kernel's request-context, HTTP (client
        behind trusted proxies, allowed hosts) and authentication layers only, not the
        extensions' or the application's middleware nor FastAPI's: a long-lived
        connection keeps every layer it passed through alive, and those layers do
        nothing for a WebSocket. Add a route to the same endpoint as well (a router)
        for URL building and for a server that calls the app below its lane.
        """
        if path in self._platform._websockets:
            raise ValueError(f"a WebSocket endpoint is already served at {path!r}")
        self._platform._websockets[path] = endpoint

    def openapi(self, hook: Callable[[Any, dict[str, Any]], None]) -> None:
        """``hook(app, document)`` edits the app's OpenAPI document once, when first built.

        For what only this extension knows about the routes: headers its
        dependencies read, responses its middleware gives.
        """
        self._platform._openapi.append(hook)

    def problems(self, table: Mapping[type[BaseException], ProblemEntry]) -> None:
        """How this capability's exceptions are answered over HTTP (``tenfold.web.Problem``)."""
        for exc_type, entry in table.items():
            self._platform.problems.register(exc_type, entry)

    @property
    def problem_registry(self) -> ProblemRegistry:
        """The platform's registry, for middleware that renders problems itself."""
        return self._platform.problems

    def on_started(self, hook: Callable[[Platform], Awaitable[None]]) -> None:
        """``await hook(platform)`` once every component has started."""
        self._platform._on_started.append(hook)


def check_extension(extension: Extension) -> None:
    """Refuse an extension whose declaration is incomplete, naming what is missing."""
    name = getattr(extension, "name", "")
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ConfigurationError(
            f"{type(extension).__name__}.name must be a lowercase identifier (it names the "
            f"settings section TENFOLD_<NAME>__*), got {name!r}"
        )
    model = extension.settings_model
    if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigurationError(
            f"{type(extension).__name__}.settings_model must be a pydantic model, got {model!r}"
        )
