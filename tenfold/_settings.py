"""Typed settings, read once at startup.

Every setting has an environment variable: ``TENFOLD_`` plus the section and
field joined by ``__`` (``TENFOLD_DB__POOL_SIZE``). A ``.env`` file in the
working directory is read too. ``Settings.load()`` turns pydantic's validation
error into a ``ConfigurationError`` that names the variable and says what is
wrong, so a bad value stops the process before it serves a request.

With nothing set, the profile is *embedded*: SQLite under ``./var``, no Redis,
in-process everything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from tenfold._errors import ConfigurationError
from tenfold._settings_cache import DEFAULT_NAMESPACES, CacheSettings, NamespacePolicy
from tenfold._settings_traffic import (
    IdempotencySettings,
    RateLimitSettings,
    UpstreamPolicy,
    UpstreamSettings,
)

__all__ = [
    "DEFAULT_NAMESPACES",
    "AppSettings",
    "CacheSettings",
    "DatabaseSettings",
    "HealthSettings",
    "IdempotencySettings",
    "NamespacePolicy",
    "ObservabilitySettings",
    "RateLimitSettings",
    "RedisSettings",
    "Settings",
    "ShardSettings",
    "UpstreamPolicy",
    "UpstreamSettings",
]

ENV_PREFIX = "TENFOLD_"
ENV_DELIMITER = "__"

_DEV_SECRET = "tenfold-dev-cursor-secret"
_SUPPORTED_DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")


def _check_database_url(value: SecretStr | None, *, field: str) -> SecretStr | None:
    if value is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    raw = value.get_secret_value()
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError(f"{field} is not a database URL") from None
    driver = url.drivername
    if driver in ("postgresql", "postgres"):
        # People paste libpq URLs; the async driver is the only one tenfold runs.
        return SecretStr(url.set(drivername="postgresql+asyncpg").render_as_string(False))
    if driver == "sqlite":
        return SecretStr(url.set(drivername="sqlite+aiosqlite").render_as_string(False))
    if driver not in _SUPPORTED_DRIVERS:
        raise ValueError(
            f"driver {driver!r} is not supported; use one of {', '.join(_SUPPORTED_DRIVERS)}"
        )
    return value


DatabaseURL = Annotated[SecretStr, Field(description="SQLAlchemy URL; secrets masked")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ShardSettings(_Section):
    """One shard: its own primary and replicas."""

    url: DatabaseURL
    replicas: list[DatabaseURL] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        return _check_database_url(v, field="url")  # type: ignore[return-value]

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, v: list[SecretStr]) -> list[SecretStr]:
        return [_check_database_url(r, field="replica URL") for r in v]  # type: ignore[misc]


class DatabaseSettings(_Section):
    """Primary, replicas, pool and routing policy (`TENFOLD_DB__*`)."""

    url: DatabaseURL = Field(
        default=SecretStr("sqlite+aiosqlite:///./var/tenfold.db"),
        description="Primary database URL. Default: embedded SQLite in ./var.",
    )
    replicas: list[DatabaseURL] = Field(
        default_factory=list, description="Read replica URLs (JSON list)."
    )
    shards: list[ShardSettings] = Field(
        default_factory=list,
        description="Hash shards, each with url and replicas (JSON list). Empty: no sharding.",
    )
    pool_size: int = Field(10, ge=1, le=1000, description="Connections kept per pool.")
    max_overflow: int = Field(10, ge=0, le=1000, description="Extra connections under burst.")
    pool_timeout: float = Field(5.0, gt=0, description="Seconds to wait for a pooled connection.")
    pool_recycle: float = Field(1800.0, ge=-1, description="Recycle connections older than this.")
    pool_pre_ping: bool = Field(True, description="Check a connection before handing it out.")
    statement_timeout_ms: int = Field(
        15000, ge=0, description="PostgreSQL statement_timeout per session, 0 disables."
    )
    application_name: str = Field("tenfold", max_length=63)
    connect_timeout: float = Field(5.0, gt=0, description="Seconds for one connection attempt.")
    connect_retries: int = Field(
        5, ge=0, description="Startup connection attempts after the first."
    )
    connect_backoff: float = Field(
        0.2, gt=0, description="First startup backoff, doubled each try."
    )
    connect_backoff_max: float = Field(5.0, gt=0)
    replica_policy: Literal["round_robin", "least_busy"] = "round_robin"
    max_lag_bytes: int | None = Field(
        16 * 1024 * 1024, ge=0, description="Eject a replica further behind than this."
    )
    max_lag_seconds: float | None = Field(
        30.0, ge=0, description="Eject a replica whose last replay is older than this."
    )
    replica_check_interval: float = Field(1.0, gt=0, description="Seconds between replica checks.")
    stale_reads: Literal["replica", "primary"] = Field(
        "replica",
        description=(
            "Where a read without a consistency token goes while a replica lags under max_lag."
        ),
    )
    consistency_header: str = "X-Consistency-Token"
    consistency_cookie: str | None = "tenfold_ct"
    pgbouncer: bool = Field(
        False, description="Behind PgBouncer in transaction mode: disable statement caches."
    )
    echo: bool = False
    migrations_dir: Path = Field(
        Path("migrations"), description="Alembic migrations directory (`tenfold db init`)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        return _check_database_url(v, field="url")  # type: ignore[return-value]

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, v: list[SecretStr]) -> list[SecretStr]:
        return [_check_database_url(r, field="replica URL") for r in v]  # type: ignore[misc]

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_secret_value().startswith("sqlite")

    @model_validator(mode="after")
    def _replicas_need_postgres(self) -> Self:
        if self.is_sqlite and self.replicas:
            raise ValueError("replicas need a PostgreSQL primary; the url is SQLite")
        return self


class RedisSettings(_Section):
    """Redis, standalone or Cluster (`TENFOLD_REDIS__*`). Unset: in-process."""

    url: SecretStr | None = Field(None, description="redis:// URL of a standalone server.")
    cluster_nodes: list[str] = Field(
        default_factory=list, description="host:port seeds of a Redis Cluster (JSON list)."
    )
    socket_timeout: float = Field(0.25, gt=0, description="Seconds per Redis command.")
    connect_timeout: float = Field(1.0, gt=0)
    max_connections: int = Field(64, ge=1)

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


class ObservabilitySettings(_Section):
    """Logs, metrics, tracing (`TENFOLD_OBSERVABILITY__*`)."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on the embedded profile, JSON otherwise."
    )
    access_log: bool = True
    metrics_enabled: bool = True
    metrics_path: str = "/metrics"
    otel_enabled: bool = Field(False, description="Needs the 'otel' extra.")
    otel_endpoint: str | None = Field(None, description="OTLP endpoint; unset logs spans.")
    sentry_dsn: SecretStr | None = Field(None, description="Needs the 'sentry' extra.")
    service_name: str = "tenfold"


class HealthSettings(_Section):
    """Probes and shutdown (`TENFOLD_HEALTH__*`)."""

    check_timeout: float = Field(1.0, gt=0, description="Seconds per readiness check.")
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


class AppSettings(_Section):
    """The process itself (`TENFOLD_APP__*`)."""

    name: str = Field("tenfold", description="Application name in logs and the OpenAPI title.")
    environment: Literal["development", "test", "production"] = Field(
        "development", description="production refuses development defaults for secrets."
    )
    var_dir: Path = Field(Path("var"), description="Where embedded state lives.")
    cursor_secret: SecretStr = Field(
        SecretStr(_DEV_SECRET),
        description="HMAC key for pagination cursors; set it in production.",
    )
    gc_freeze: bool = Field(
        True,
        description="Once started, move everything allocated so far out of the garbage "
        "collector's reach (gc.freeze), so full collections scan only request-time objects "
        "instead of pausing the event loop for every module and function (see docs/benchmarks.md).",
    )

    @field_validator("cursor_secret")
    @classmethod
    def _real_secret_in_production(cls, v: SecretStr, info: ValidationInfo) -> SecretStr:
        if info.data.get("environment") == "production" and v.get_secret_value() == _DEV_SECRET:
            raise ValueError("must be set in production (the default is for development)")
        if len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return v


class Settings(BaseSettings):
    """All of tenfold's settings. Build with ``Settings.load()`` to get named errors."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    host: str = Field("127.0.0.1", description="Address `tenfold run` binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port `tenfold run` binds.")
    app: AppSettings = Field(default_factory=AppSettings)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    ratelimit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    idempotency: IdempotencySettings = Field(default_factory=IdempotencySettings)
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    health: HealthSettings = Field(default_factory=HealthSettings)

    @property
    def profile(self) -> Literal["embedded", "distributed"]:
        """Embedded when nothing points at a server."""
        if self.db.is_sqlite and not self.redis.enabled:
            return "embedded"
        return "distributed"

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read the environment (and ``.env``); raise ``ConfigurationError`` naming the variable."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise _configuration_error(exc) from None


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
