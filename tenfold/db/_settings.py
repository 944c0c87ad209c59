"""The database section (`TENFOLD_DB__*`): primary, replicas, shards, pools, routing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from tenfold._settings import SettingsSection

__all__ = ["DEV_CURSOR_SECRET", "DatabaseSettings", "ShardSettings"]

_SUPPORTED_DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")
#: Signs cursors on the embedded profile when no secret is set. It is public, so a
#: server (PostgreSQL) or production never uses it: there, anyone could forge cursors.
DEV_CURSOR_SECRET = SecretStr("tenfold-dev-cursor-secret")
_MIN_SECRET_CHARS = 16


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


class ShardSettings(SettingsSection):
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


class DatabaseSettings(SettingsSection):
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
    cursor_secret: SecretStr | None = Field(
        None,
        description="HMAC key for pagination cursors, at least 16 characters. Required "
        "with PostgreSQL and in production; unset on embedded SQLite, a public "
        "development key is used.",
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
    degraded_lag_seconds: float | None = Field(
        1.0,
        ge=0,
        description="A replica further behind than this (but under max_lag) is reported "
        "degraded on /ready; it still serves reads. null: never.",
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

    @field_validator("cursor_secret")
    @classmethod
    def _cursor_secret(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if v is not None:
            if len(v.get_secret_value()) < _MIN_SECRET_CHARS:
                raise ValueError(f"must be at least {_MIN_SECRET_CHARS} characters")
            return v
        url, shards = info.data.get("url"), info.data.get("shards", [])
        # A bad url or shard list has its own error; this one would only add noise.
        if url is not None and "shards" in info.data and not _all_sqlite(url, shards):
            raise ValueError(
                "must be set when the database is PostgreSQL: cursors signed with the "
                "public development key can be forged. Use 16 or more random characters, "
                "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return v

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_secret_value().startswith("sqlite")

    @property
    def cursor_key(self) -> SecretStr:
        """The secret that signs cursors: ``cursor_secret``, or the embedded development key."""
        return self.cursor_secret if self.cursor_secret is not None else DEV_CURSOR_SECRET

    @model_validator(mode="after")
    def _replicas_need_postgres(self) -> Self:
        if self.is_sqlite and self.replicas:
            raise ValueError("replicas need a PostgreSQL primary; the url is SQLite")
        return self

    @property
    def distributed(self) -> bool:
        """Whether this section points at a server (PostgreSQL), not embedded SQLite."""
        return not self.is_sqlite


def _all_sqlite(url: SecretStr, shards: list[ShardSettings]) -> bool:
    urls = [url, *(shard.url for shard in shards)]
    return all(u.get_secret_value().startswith("sqlite") for u in urls)
