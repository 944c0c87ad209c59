"""Typed settings, read once at startup.

Every setting has an environment variable: ``TENFOLD_`` plus the section and
field joined by ``__`` (``TENFOLD_DB__POOL_SIZE``). A ``.env`` file in the
working directory is read too. ``load()`` turns pydantic's validation error
into a ``ConfigurationError`` that names the variable and says what is wrong,
so a bad value stops the process before it serves a request.

The kernel owns a few sections (``app``, ``redis``, ``observability``,
``health``, ``http``, plus ``host`` and ``port``). Every other section belongs to an
extension, which registers its model under its name; ``CoreSettings.compose``
builds the settings class of a set of extensions, so adding a capability adds
a section without editing this file. ``tenfold.Settings`` is the class
composed from the built-in extensions.

With nothing set, the profile is *embedded*: no section points at a server.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from tenfold._errors import ConfigurationError
from tenfold._http_settings import HttpSettings
from tenfold._section import SettingsSection, json_or_text

__all__ = [
    "ENV_DELIMITER",
    "ENV_PREFIX",
    "AppSettings",
    "CoreSettings",
    "HealthSettings",
    "HttpSettings",
    "ObservabilitySettings",
    "RedisSettings",
    "SettingsSection",
    "env_name",
    "json_or_text",
]

ENV_PREFIX = "TENFOLD_"
ENV_DELIMITER = "__"


class RedisSettings(SettingsSection):
    """Redis, standalone or Cluster (`TENFOLD_REDIS__*`). Unset: in-process.

    One hub per process uses it: one command pool, one pub/sub connection.
    """

    url: SecretStr | None = Field(None, description="redis:// URL of a standalone server.")
    cluster_nodes: list[str] = Field(
        default_factory=list, description="host:port seeds of a Redis Cluster (JSON list)."
    )
    socket_timeout: float = Field(0.25, gt=0, description="Seconds per Redis command.")
    connect_timeout: float | None = Field(
        None,
        gt=0,
        description="Seconds to open a connection (a Redis that takes none costs a request "
        "this long); unset: socket_timeout.",
    )
    max_connections: int = Field(
        64, ge=1, description="Commands in flight at once (the process's one pool, per node)."
    )
    health_interval: float = Field(
        0.5,
        gt=0,
        description="Seconds of pub/sub silence before a PING proves the connection.",
    )
    reconnect_backoff: float = Field(
        1.0, gt=0, description="Max seconds between reconnects of the pub/sub connection."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    @property
    def enabled(self) -> bool:
        return self.url is not None or bool(self.cluster_nodes)

    @property
    def distributed(self) -> bool:
        return self.enabled


class ObservabilitySettings(SettingsSection):
    """Logs, metrics, tracing (`TENFOLD_OBSERVABILITY__*`)."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on the embedded profile, JSON otherwise."
    )
    access_log: bool = True
    metrics_enabled: bool = True
    metrics_path: str = "/metrics"
    metrics_token: SecretStr | None = Field(
        None,
        description="When set, a scrape of metrics_path must send "
        "'Authorization: Bearer <token>' (others get 401).",
    )
    otel_enabled: bool = Field(False, description="Needs the 'otel' extra.")
    otel_endpoint: str | None = Field(None, description="OTLP endpoint; unset logs spans.")
    sentry_dsn: SecretStr | None = Field(None, description="Needs the 'sentry' extra.")
    service_name: str = "tenfold"


class HealthSettings(SettingsSection):
    """Probes and shutdown (`TENFOLD_HEALTH__*`)."""

    check_timeout: float = Field(1.0, gt=0, description="Seconds per readiness check.")
    token: SecretStr | None = Field(
        None,
        description="Bearer token that shows /ready's full report (errors, latencies, lag); "
        "without it /ready shows statuses only.",
    )
    cache_ttl: float = Field(1.0, ge=0, description="Seconds a readiness result is reused.")
    drain_delay: float = Field(
        0.0,
        ge=0,
        description=(
            "Seconds /ready answers 503 after SIGTERM before the listener closes; "
            "set it to your load balancer's probe interval."
        ),
    )
    drain_timeout: float = Field(
        10.0,
        ge=0,
        description="Seconds in-flight requests get to finish after the listener closes.",
    )


class AppSettings(SettingsSection):
    """The process itself (`TENFOLD_APP__*`)."""

    name: str = Field("tenfold", description="Application name in logs and the OpenAPI title.")
    environment: Literal["development", "test", "production"] = Field(
        "development", description="production refuses development defaults for secrets."
    )
    var_dir: Path = Field(Path("var"), description="Where embedded state lives.")
    gc_freeze: bool = Field(
        True,
        description="Once started, move everything allocated so far out of the garbage "
        "collector's reach (gc.freeze), so full collections scan only request-time objects "
        "instead of pausing the event loop for every module and function (see docs/benchmarks.md).",
    )
    cursor_secret: SecretStr | None = Field(
        None, description="Moved to TENFOLD_DB__CURSOR_SECRET; a value here stops startup."
    )

    @field_validator("cursor_secret", mode="before")
    @classmethod
    def _cursor_secret_moved(cls, value: Any) -> None:
        # A deployment that still sets the old name must hear where it went: silently
        # ignoring it would sign cursors with no secret (and fail startup on PostgreSQL
        # with a message about a variable the operator believes is set).
        if value in (None, ""):
            return None
        raise ValueError("has moved to TENFOLD_DB__CURSOR_SECRET; set that instead")


class CoreSettings(BaseSettings):
    """The kernel's settings; ``compose`` adds the sections of extensions.

    Build instances with ``load()`` to get errors that name the variable.
    """

    # Unknown top-level sections are ignored, in the environment and in .env alike: they
    # belong to an extension this process does not load (a worker without the web app's
    # extensions, the CLI without --app). A misspelt key inside a known section is still
    # an error naming it, since every section forbids extra keys.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    #: Section name -> model, of the sections ``compose`` added (in order).
    sections: ClassVar[Mapping[str, type[BaseModel]]] = {}
    _composed: ClassVar[dict[tuple[tuple[str, type[BaseModel]], ...], type[CoreSettings]]] = {}

    host: str = Field("127.0.0.1", description="Address `tenfold run` binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port `tenfold run` binds.")
    app: AppSettings = Field(default_factory=AppSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)

    @classmethod
    def compose(cls, sections: Iterable[tuple[str, type[BaseModel]]]) -> type[CoreSettings]:
        """The settings class with the core sections plus ``sections`` (name, model), in order.

        The same sections give the same class, so instances compare and pickle alike.
        """
        wanted = tuple(sections)
        found = CoreSettings._composed.get(wanted)
        if found is not None:
            return found
        core = set(CoreSettings.model_fields)
        names = [name for name, _ in wanted]
        clash = sorted({n for n in names if n in core or names.count(n) > 1})
        if clash:
            raise ConfigurationError(
                f"settings section name(s) {clash} are taken (by the core or another extension)"
            )
        fields: dict[str, Any] = {
            name: (model, Field(default_factory=model, description=_first_line(model.__doc__)))
            for name, model in wanted
        }
        composed = create_model(  # type: ignore[call-overload]
            "Settings", __base__=CoreSettings, __module__="tenfold", **fields
        )
        composed.__doc__ = CoreSettings.__doc__
        composed.sections = dict(wanted)
        CoreSettings._composed[wanted] = composed
        return composed  # type: ignore[no-any-return]

    @property
    def profile(self) -> Literal["embedded", "distributed"]:
        """Embedded when no section points at a server (no Redis, no PostgreSQL...)."""
        for name in type(self).model_fields:
            if getattr(getattr(self, name), "distributed", False):
                return "distributed"
        return "embedded"

    def section(self, name: str) -> Any:
        """The values of section ``name``; a ``ConfigurationError`` if no extension has it."""
        if name not in type(self).model_fields or not isinstance(getattr(self, name), BaseModel):
            raise ConfigurationError(
                f"these settings have no section {name!r}: open the platform with the "
                "extension that defines it",
                setting=f"{ENV_PREFIX}{name.upper()}",
            )
        return getattr(self, name)

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Read the environment (and ``.env``); raise ``ConfigurationError`` naming the variable.

        ``overrides`` (section objects or values) win over the environment.
        """
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise _configuration_error(exc) from None
        except SettingsError as exc:  # a complex setting whose JSON does not parse
            raise _source_error(exc, cls.model_config.get("env_file")) from None


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable for a validation error location."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    if parts and parts[0].upper().startswith(ENV_PREFIX):
        return parts[0].upper()
    return ENV_PREFIX + ENV_DELIMITER.join(p.upper() for p in parts)


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    lines = []
    first: str | None = None
    for err in exc.errors(include_url=False, include_input=False):
        name = env_name(err["loc"]) if err["loc"] else ENV_PREFIX + "*"
        first = first or name
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {msg}")
    return ConfigurationError("invalid configuration:\n  " + "\n  ".join(lines), setting=first)


def _source_error(exc: SettingsError, env_file: Any) -> ConfigurationError:
    """Name the variable whose JSON did not parse; pydantic-settings names only the field."""
    found = re.search(r'field "([^"]+)"', str(exc))
    prefix = ENV_PREFIX + (found.group(1).upper() if found else "")
    values = _dotenv(env_file)
    values.update(os.environ)
    candidates = sorted(
        name
        for name in values
        if name.upper() == prefix or name.upper().startswith(prefix + ENV_DELIMITER)
    )
    lines = []
    for name in candidates:
        value = values[name] or ""
        if not value.lstrip().startswith(("[", "{")):
            continue
        try:
            json.loads(value)
        except ValueError as bad:
            lines.append(f"{name}: is not valid JSON ({bad}); lists and maps take JSON")
    if not lines:
        names = ", ".join(candidates) or prefix
        lines.append(f"{names}: a list or map setting is not valid JSON")
    first = lines[0].partition(":")[0]
    return ConfigurationError("invalid configuration:\n  " + "\n  ".join(lines), setting=first)


def _dotenv(env_file: Any) -> dict[str, str]:
    if not env_file or not Path(env_file).is_file():
        return {}
    from dotenv import dotenv_values  # pydantic-settings' own dependency

    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""
