"""Engines and endpoints: one SQLAlchemy async engine per server, with its pool.

An ``Endpoint`` is one server as the router sees it: the engine, a name for
metrics (``primary``, ``replica0``, ``shard1.primary``), the checkout counters
and, for a replica, the health the checker last saw.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import monotonic, perf_counter
from typing import Any, Literal, TypeVar

from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.util import greenlet_spawn

from tenfold._backoff import Backoff
from tenfold._errors import DatabaseUnavailable, TenfoldError
from tenfold.db._datetimes import utc_datetimes
from tenfold.db._errors import is_connection_error, map_error, translate
from tenfold.db._metrics import AcquireHistogram, PoolStats
from tenfold.db._settings import DatabaseSettings

__all__ = [
    "Endpoint",
    "ReplicaState",
    "build_engine",
    "connect_with_backoff",
    "safe_address",
    "startup_backoff",
]

T = TypeVar("T")

Role = Literal["primary", "replica"]

# SQLite has one writer at a time; more connections only add threads that wait
# on the same lock. WAL lets the few readers run beside the writer.
_SQLITE_POOL_SIZE = 4
# Pre-ping only connections idle longer than this (HikariCP's "alive bypass
# window"): a connection that answered a moment ago costs no extra round trips.
PING_AFTER_IDLE = 1.0
_IDLE_SINCE = "tenfold_idle_since"


def safe_address(url: URL) -> str:
    """``host:port/db`` (or the SQLite file), never the user or password."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite:{url.database or ':memory:'}"
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def _unique_statement_name() -> str:
    # Behind PgBouncer in transaction mode two clients can land on the same
    # server connection; unique names keep their prepared statements apart.
    return f"__tenfold_{uuid.uuid4().hex}__"


def _command_timeout(settings: DatabaseSettings) -> float | None:
    """Client-side backstop, a little longer than the server's statement_timeout.

    The server's timeout gives a clean QueryCanceled; this one catches a server
    that stopped answering at all (SIGSTOP, a dead network path).
    """
    if settings.statement_timeout_ms <= 0:
        return None
    return settings.statement_timeout_ms / 1000 + settings.connect_timeout


def _postgres_engine(url: URL, settings: DatabaseSettings, *, probe: bool) -> AsyncEngine:
    server_settings = {"application_name": settings.application_name}
    if settings.statement_timeout_ms and not settings.pgbouncer:
        # PgBouncer rejects unknown startup parameters; see docs/db.md.
        server_settings["statement_timeout"] = str(settings.statement_timeout_ms)
    connect_args: dict[str, Any] = {
        "timeout": settings.connect_timeout,
        "command_timeout": _command_timeout(settings),
        "server_settings": server_settings,
    }
    if settings.pgbouncer:
        connect_args |= {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _unique_statement_name,
        }
    pool: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
    }
    if probe:
        # Health checks get their own connection: a pool saturated by requests
        # must not look like an unreachable server.
        pool = {"pool_size": 1, "max_overflow": 1, "pool_timeout": settings.connect_timeout}
    engine = create_async_engine(
        url,
        pool_recycle=settings.pool_recycle,
        echo=settings.echo,
        hide_parameters=True,  # see build_engine
        connect_args=connect_args,
        **pool,
    )
    _install_liveness_check(engine, ping_idle=settings.pool_pre_ping)
    return engine


def _install_liveness_check(engine: AsyncEngine, *, ping_idle: bool) -> None:
    """Pre-ping that costs nothing for busy connections.

    SQLAlchemy's ``pool_pre_ping`` adds three round trips (BEGIN, ping,
    ROLLBACK with asyncpg) to every checkout, doubling a point read. Instead:
    a connection whose socket the server closed (restart, crash, terminate) is
    known to asyncpg already and is replaced at no cost; one idle for more than
    ``PING_AFTER_IDLE`` seconds is pinged first (if ``pool_pre_ping``).
    """
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _checked_in(dbapi_conn: Any, record: Any) -> None:
        if dbapi_conn is not None:
            dbapi_conn.readonly = False  # see Endpoint._mark_readonly
        if record is not None:
            record.info[_IDLE_SINCE] = monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        driver = record.driver_connection
        if driver is not None and driver.is_closed():
            raise DisconnectionError("the server closed this connection")
        idle_since = record.info.get(_IDLE_SINCE)
        if ping_idle and idle_since is not None and monotonic() - idle_since > PING_AFTER_IDLE:
            try:
                dbapi_conn.ping()
            except Exception as exc:  # any failed ping means: replace this connection
                raise DisconnectionError(f"pre-ping failed: {exc!r}") from exc


def _sqlite_engine(url: URL, settings: DatabaseSettings) -> AsyncEngine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    pool: dict[str, Any]
    if in_memory:
        # Every new connection to :memory: is a new, empty database: share one.
        pool = {"poolclass": StaticPool}
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        pool = {
            "pool_size": min(settings.pool_size, _SQLITE_POOL_SIZE),
            "max_overflow": min(settings.max_overflow, _SQLITE_POOL_SIZE),
            "pool_timeout": settings.pool_timeout,
            "pool_recycle": settings.pool_recycle,
        }
    engine = create_async_engine(
        url,
        echo=settings.echo,
        hide_parameters=True,  # see build_engine
        # sqlite3's busy timeout: wait this long for the write lock, not fail at once.
        connect_args={"timeout": settings.pool_timeout},
        **pool,
    )
    _install_sqlite_hooks(engine, wal=not in_memory)
    utc_datetimes(engine)  # DateTime(timezone=True) comes back aware in UTC, as on PostgreSQL
    return engine


def _install_sqlite_hooks(engine: AsyncEngine, *, wal: bool) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # Take BEGIN away from the driver so we can say BEGIN IMMEDIATE below.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes can deadlock with
        # another writer and fail without waiting; writers take the lock up front.
        readonly = conn.get_execution_options().get("tenfold_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def build_engine(url: SecretStr, settings: DatabaseSettings, *, probe: bool = False) -> AsyncEngine:
    """An async engine for ``url`` with the pool and driver options from ``settings``.

    ``probe=True`` gives PostgreSQL a one-connection pool for health checks.
    Parameters are hidden (``hide_parameters``): SQLAlchemy would otherwise
    put every bound value (user data, passwords) into the text of its errors,
    and from there into logs, and into ``echo``'s lines.
    """
    sa_url = make_url(url.get_secret_value())
    if sa_url.get_backend_name() == "sqlite":
        return _sqlite_engine(sa_url, settings)
    return _postgres_engine(sa_url, settings, probe=probe)


@dataclass(slots=True)
class ReplicaState:
    """What the checker last saw on a replica. Only the event loop thread writes it."""

    healthy: bool = True
    reason: str | None = None
    replay_lsn: int | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    checked_at: float | None = None

    def eject(self, reason: str) -> None:
        self.healthy = False
        self.reason = reason

    def admit(self) -> None:
        self.healthy = True
        self.reason = None

    def saw_replay(self, lsn: int | None) -> None:
        """Replay positions only move forward; never let a late answer lower ours."""
        if lsn is not None and (self.replay_lsn is None or lsn > self.replay_lsn):
            self.replay_lsn = lsn


class Endpoint:
    """One server: its engine and pool, its checkout counters and health."""

    def __init__(
        self, name: str, role: Role, url: SecretStr, settings: DatabaseSettings, *, setting: str
    ) -> None:
        self.name = name
        self.role: Role = role
        self.setting = setting
        self.url = make_url(url.get_secret_value())
        self.address = safe_address(self.url)
        self.engine = build_engine(url, settings)
        self._sync_engine = self.engine.sync_engine
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        # Read sessions say BEGIN READ ONLY (no extra round trip): code that writes
        # in a read session fails in development too, not only once a replica serves it.
        self.read_engine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(postgresql_readonly=True)
        )
        # SQLite needs no probe pool (and an in-memory one must share its only connection).
        self.probe_engine = (
            self.engine if self.is_sqlite else build_engine(url, settings, probe=True)
        )
        self.in_flight = 0
        self.waiters = 0
        self.acquire_histogram = AcquireHistogram()
        self.state = ReplicaState()

    def __repr__(self) -> str:
        return f"Endpoint({self.name!r}, {self.address!r})"

    async def connect(self, *, readonly: bool = False) -> Connection:
        """Check out a connection now (see ``checkout``)."""
        return await greenlet_spawn(self.checkout, readonly)

    def checkout(self, readonly: bool = False) -> Connection:
        """Check out a connection, timing the wait; errors become tenfold errors.

        Synchronous, for SQLAlchemy's greenlet: a read session calls it from
        inside its first statement (``TenfoldSession``), so the checkout costs no
        trip of its own into a greenlet (each is a new greenlet and a fresh
        16 KiB frame stack, several µs).
        """
        return self._timed(self._connect, readonly)

    def checkout_raw(self) -> Any:
        """Check out a pooled DBAPI connection, no ``Connection`` around it (sync, for a
        greenlet); timed and mapped like ``checkout``. Give it back with ``.close()``."""
        return self._timed(self._sync_engine.raw_connection)

    def _connect(self, readonly: bool) -> Connection:
        conn = self._sync_engine.connect()
        if readonly:
            try:
                self._mark_readonly(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def _timed(self, acquire: Callable[..., T], *args: Any) -> T:
        """``acquire(*args)``, counted as a waiter and timed; errors mapped as connecting."""
        self.waiters += 1
        started = perf_counter()
        try:
            acquired = acquire(*args)
        except Exception as exc:
            mapped = map_error(exc, role=self.role, connecting=True)
            if mapped is None or mapped is exc:
                raise
            raise mapped from exc
        finally:
            self.waiters -= 1
        self.acquire_histogram.observe(perf_counter() - started)
        return acquired

    def _mark_readonly(self, conn: Connection) -> None:
        if self.is_sqlite:  # read by the SQLite BEGIN hook
            conn.execution_options(tenfold_readonly=True)
            return
        # Read sessions say BEGIN READ ONLY (same round trip as BEGIN), so code that
        # writes in a read session fails in development too, not only on a replica.
        # Set on the driver adapter directly: the postgresql_readonly execution
        # option does the same at ~40 µs per checkout; the checkin hook resets it.
        self._sync_engine.dialect.set_readonly(conn.connection.dbapi_connection, True)

    async def ping(self) -> None:
        """One round trip on the probe pool's connection."""
        async with translate(self.role, connecting=True), self.probe_engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    def pool_stats(self) -> PoolStats:
        pool = self.engine.pool
        if not hasattr(pool, "checkedout"):  # StaticPool: one shared connection
            return PoolStats(1, self.in_flight, 0, 0, self.waiters)
        in_use = pool.checkedout()
        return PoolStats(
            size=pool.size(),
            in_use=in_use,
            idle=pool.checkedin(),
            overflow=max(0, pool.overflow()),
            waiters=self.waiters,
        )

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.probe_engine is not self.engine:
            await self.probe_engine.dispose()


def startup_backoff(settings: DatabaseSettings) -> Backoff:
    """The waits between startup connects: ``CONNECT_BACKOFF`` doubled up to ``..._MAX``.

    Equal jitter (the upper half of each window): workers restarting together
    spread out, and none hammers a server that is still starting.
    """
    return Backoff(base=settings.connect_backoff, max=settings.connect_backoff_max, jitter="equal")


async def connect_with_backoff(
    endpoint: Endpoint,
    settings: DatabaseSettings,
    *,
    sleep: Any = asyncio.sleep,
    rng: random.Random | None = None,
) -> None:
    """Ping ``endpoint`` until it answers, waiting ``startup_backoff(settings)`` between tries.

    Gives up after ``connect_retries`` retries, or at once for an error that
    waiting cannot fix (bad password, missing database), with a message that
    names the server and the setting but never the password.
    """
    attempts = settings.connect_retries + 1
    backoff = startup_backoff(settings)
    last: TenfoldError | None = None
    attempt = 0
    for attempt in range(1, attempts + 1):
        try:
            await endpoint.ping()
            return
        except TenfoldError as exc:
            last = exc
            if attempt == attempts or not _retryable(exc):
                break
        await sleep(backoff.delay(attempt, rng))
    reason = last.context.get("reason", last.message) if last is not None else "unknown error"
    raise DatabaseUnavailable(
        f"could not connect to the {endpoint.role} database {endpoint.name} at "
        f"{endpoint.address} after {attempt} attempt(s): {reason}. "
        f"Check {endpoint.setting} and that the server is running.",
        role=endpoint.role,
    ) from last


def _retryable(exc: TenfoldError) -> bool:
    """Refused, reset, timed out or starting up: waiting may help. A bad password won't."""
    cause = exc.__cause__
    if cause is None:
        return False
    return is_connection_error(cause) or isinstance(cause, TimeoutError)
