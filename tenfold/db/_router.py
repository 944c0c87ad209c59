"""The primary/replica router of one database (or of one shard).

Writes go to the primary. A read goes to a healthy replica, picked round-robin
or least-busy, unless the request carries a consistency token the replica has
not replayed yet, or ``stale_reads="primary"`` and the replica was behind at
the last check; then it goes to the primary. With no healthy replica, reads
go to the primary.

A background task (every ``replica_check_interval``) ejects a replica that is
unreachable, promoted, or further behind than ``max_lag_bytes`` /
``max_lag_seconds``, and re-admits it when it is healthy again.
``check_replicas()`` runs one round on demand, which is what tests drive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from time import monotonic
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import greenlet_spawn

from tenfold._context import current_consistency_token
from tenfold._errors import DatabaseUnavailable, TenfoldError
from tenfold.db._engine import Endpoint, connect_with_backoff
from tenfold.db._errors import describe, is_connection_error, map_error, translate
from tenfold.db._lease import Lease
from tenfold.db._session import TenfoldSession
from tenfold.db._settings import DatabaseSettings

__all__ = ["Router"]

_log = structlog.get_logger("tenfold.db")

_REPLICA_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), "
    "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8"
)


class Router:
    """Routes sessions of one logical database to its primary or a replica."""

    def __init__(
        self,
        primary: Endpoint,
        replicas: Sequence[Endpoint],
        settings: DatabaseSettings,
        *,
        honour_tokens: bool = True,
        name: str = "db",
    ) -> None:
        self.name = name
        self.primary = primary
        self.replicas = list(replicas)
        self.settings = settings
        # Tokens are LSNs of one primary; with shards a token could be another
        # primary's, so sharded routers answer token-bearing reads from the primary.
        self.honour_tokens = honour_tokens
        self._rr = 0
        self._checker: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Router({self.name!r}, {self.primary.address!r}, replicas={len(self.replicas)})"

    @property
    def endpoints(self) -> list[Endpoint]:
        return [self.primary, *self.replicas]

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Connect the primary (with backoff), check replicas once, start the checker."""
        await connect_with_backoff(self.primary, self.settings)
        if self.replicas:
            await self.check_replicas()
            self._checker = asyncio.create_task(self._check_loop(), name=f"{self.name}-replicas")

    async def stop(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
            self._checker = None
        for endpoint in self.endpoints:
            await endpoint.dispose()

    # -- sessions --------------------------------------------------------------

    def session(self, *, readonly: bool = False) -> SessionScope:
        """A session on the primary, or for ``readonly`` on the routed server.

        A write session commits when the block ends normally and rolls back
        when it raises; a read session always rolls back.
        """
        return SessionScope(self, readonly)

    def driver(self) -> DriverScope:
        """``async with router.driver() as conn``: the primary's raw driver connection.

        For hot paths that one SQL statement serves (the event store's append):
        no session, no SQLAlchemy compilation, and no transaction block: each
        statement commits on its own, in one round trip. Errors leave the block
        as tenfold errors; a connection that broke is discarded, not pooled.
        PostgreSQL only (asyncpg's ``Connection``).
        """
        return DriverScope(self)

    async def lease(self, *, readonly: bool) -> Lease:
        """The server this kind of session should use, as a ``Lease``.

        A write lease has its connection already; a read lease checks it out at
        its session's first statement (see ``tenfold.db._lease``).
        """
        if readonly:
            return await self._read_lease()
        return await Lease.open(self, self.primary, readonly=False)

    async def _read_lease(self) -> Lease:
        token = current_consistency_token()
        if token is not None and not self.honour_tokens:
            return Lease(self, self.primary, None, readonly=True)
        endpoint, verify = self.choose_replica(token)
        if endpoint is None:
            return Lease(self, self.primary, None, readonly=True)
        if verify and token is not None:
            return await self._verified_lease(endpoint, token)
        return Lease(self, endpoint, None, readonly=True)

    async def _verified_lease(self, replica: Endpoint, token: int) -> Lease:
        """A lease on ``replica`` if it has replayed ``token``, else on the primary.

        The replica is asked on the connection the read will then use.
        """
        try:
            lease = await Lease.open(self, replica, readonly=True)
        except DatabaseUnavailable as exc:
            self.mark_failed(replica, exc)
            return Lease(self, self.primary, None, readonly=True)
        try:
            caught_up = await lease.replay_reached(token)
        except BaseException:  # cancelled, or a non-connection error: give it back first
            await lease.give_back()
            raise
        if not caught_up:
            await lease.give_back()
            return Lease(self, self.primary, None, readonly=True)
        return lease

    def choose_replica(self, token: int | None) -> tuple[Endpoint | None, bool]:
        """The replica for a read, and whether its replay position must be asked first.

        Pure and cheap: it looks only at what the checker last saw. ``None``
        means "use the primary".
        """
        healthy = [r for r in self.replicas if r.state.healthy]
        if not healthy:
            return None, False
        if token is not None:
            caught_up = [r for r in healthy if (r.state.replay_lsn or 0) >= token]
            if caught_up:
                return self._pick(caught_up), False
            return self._pick(healthy), True
        if self.settings.stale_reads == "primary":
            healthy = [r for r in healthy if r.state.lag_bytes == 0]
            if not healthy:
                return None, False
        return self._pick(healthy), False

    def _pick(self, candidates: list[Endpoint]) -> Endpoint:
        if len(candidates) == 1:
            return candidates[0]
        self._rr += 1
        start = self._rr % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        if self.settings.replica_policy == "least_busy":
            return min(rotated, key=lambda r: r.in_flight)  # ties: round-robin order
        return rotated[0]

    def mark_failed(self, endpoint: Endpoint, exc: BaseException) -> None:
        """Eject a replica at once after a connection error; the checker re-admits it."""
        if endpoint.role != "replica":
            return
        was_healthy = endpoint.state.healthy
        endpoint.state.eject(f"connection error: {_reason(exc)}")
        if was_healthy:
            _log.warning("db_replica_ejected", replica=endpoint.name, reason=endpoint.state.reason)

    # -- replica checks --------------------------------------------------------

    async def _check_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.replica_check_interval)
            try:
                await self.check_replicas()
            except Exception:  # the loop must outlive any one bad round; it is logged
                _log.exception("db_replica_check_failed", router=self.name)

    async def check_replicas(self) -> None:
        """One round: read the primary's WAL position, then check every replica."""
        primary_lsn = await self.primary_lsn()
        await asyncio.gather(*(self._check_one(r, primary_lsn) for r in self.replicas))

    async def primary_lsn(self) -> int | None:
        """The primary's current WAL position, or None if it cannot be read now."""
        try:
            async with (
                translate("primary", connecting=True),
                asyncio.timeout(self._check_timeout),
                self.primary.probe_engine.connect() as conn,
            ):
                value = (await conn.exec_driver_sql("SELECT pg_current_wal_lsn()")).scalar()
        except TenfoldError as exc:
            _log.debug("db_primary_lsn_unavailable", error=_reason(exc))
            return None
        return value if isinstance(value, int) else None

    @property
    def _check_timeout(self) -> float:
        return self.settings.connect_timeout * 2

    async def _check_one(self, replica: Endpoint, primary_lsn: int | None) -> None:
        try:
            async with (
                translate("replica", connecting=True),
                asyncio.timeout(self._check_timeout),
                replica.probe_engine.connect() as conn,
            ):
                row = (await conn.exec_driver_sql(_REPLICA_SQL)).one()
        except TenfoldError as exc:
            self._set_health(replica, f"unreachable: {_reason(exc)}")
            return
        in_recovery, replay_lsn, replay_age = row
        state = replica.state
        state.checked_at = monotonic()
        if not in_recovery:
            self._set_health(replica, "not in recovery: promoted, or not a replica")
            return
        state.saw_replay(replay_lsn)
        if primary_lsn is None or replay_lsn is None:
            # Without the primary we cannot measure lag; a reachable replica still serves.
            state.lag_bytes = state.lag_seconds = None
            self._set_health(replica, None)
            return
        state.lag_bytes = max(0, primary_lsn - replay_lsn)
        # On an idle primary the last replay timestamp just ages; it is lag only
        # while the replica is actually behind.
        state.lag_seconds = float(replay_age or 0.0) if state.lag_bytes > 0 else 0.0
        self._set_health(replica, self._lag_problem(state.lag_bytes, state.lag_seconds))

    def _lag_problem(self, lag_bytes: int, lag_seconds: float) -> str | None:
        max_bytes, max_seconds = self.settings.max_lag_bytes, self.settings.max_lag_seconds
        if max_bytes is not None and lag_bytes > max_bytes:
            return f"lagging {lag_bytes} bytes (max_lag_bytes={max_bytes})"
        if max_seconds is not None and lag_seconds > max_seconds:
            return f"lagging {lag_seconds:.1f}s (max_lag_seconds={max_seconds})"
        return None

    def _set_health(self, replica: Endpoint, problem: str | None) -> None:
        state = replica.state
        if problem is None:
            if not state.healthy:
                _log.info("db_replica_admitted", replica=replica.name)
            state.admit()
            return
        if state.healthy:
            _log.warning("db_replica_ejected", replica=replica.name, reason=problem)
        state.eject(problem)

    # -- health ----------------------------------------------------------------

    async def primary_health(self) -> dict[str, Any]:
        await self.primary.ping()
        stats = self.primary.pool_stats()
        return {"pool_in_use": stats.in_use, "pool_waiters": stats.waiters}

    def replica_health(self, replica: Endpoint) -> Any:
        """The replica's readiness check: failing while ejected, degraded while lagging.

        A replica behind by more than ``degraded_lag_seconds`` but under
        ``max_lag`` still serves reads (tokenless ones only with
        ``stale_reads="replica"``; token reads it has not reached go to the
        primary), so it degrades readiness rather than failing the check.
        """
        threshold = self.settings.degraded_lag_seconds

        async def check() -> dict[str, Any]:
            state = replica.state
            if not state.healthy:
                raise DatabaseUnavailable(f"{replica.name} ejected: {state.reason}", role="replica")
            result: dict[str, Any] = {
                "lag_bytes": state.lag_bytes,
                "lag_seconds": state.lag_seconds,
            }
            lag = state.lag_seconds
            if threshold is not None and lag is not None and lag > threshold:
                result["status"] = "degraded"
                result["reason"] = f"lagging {lag:.1f}s (degraded_lag_seconds={threshold:g})"
            return result

        return check


class SessionScope:
    """``async with router.session() as s``: lease, session, commit or roll back, release.

    A class rather than ``@asynccontextmanager``: this runs for every request
    and a generator-based manager costs several times more per use.
    """

    __slots__ = ("_lease", "_readonly", "_router", "_session")

    def __init__(self, router: Router, readonly: bool) -> None:
        self._router = router
        self._readonly = readonly
        self._lease: Lease | None = None
        self._session: TenfoldSession | None = None

    async def __aenter__(self) -> TenfoldSession:
        router = self._router
        if self._readonly:  # the hot path: no lease() in between
            lease = self._lease = await router._read_lease()
        else:
            lease = self._lease = await router.lease(readonly=False)
        # Bound to the engine for introspection (session.bind.dialect); statements run
        # on the lease's connection, which the session gets through get_bind.
        self._session = TenfoldSession(lease.endpoint.engine, lease=lease, expire_on_commit=False)
        return self._session

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        session, lease = self._session, self._lease
        if session is None or lease is None:
            return
        try:
            if exc is None:
                if not self._readonly and session.in_transaction():
                    await session.commit()  # a failed commit is rolled back by release()
                else:
                    await session.run_after_commit()  # nothing to commit, nothing failed
                return
            session.discard_after_commit()
            await _rollback_quietly(session)
            mapped = map_error(exc, role=lease.endpoint.role, driver_only=True)
            if mapped is not None and mapped is not exc:
                raise mapped from exc
        finally:
            await lease.release(session)


class DriverScope:
    """``async with router.driver() as conn``: see ``Router.driver``.

    No ``Lease`` and no SQLAlchemy ``Connection``: the pooled DBAPI connection
    is checked out and given back in one trip into a greenlet each, which is
    most of what the scope costs (a session's lease takes three).
    """

    __slots__ = ("_endpoint", "_fairy")

    def __init__(self, router: Router) -> None:
        self._endpoint = router.primary
        self._fairy: Any = None

    async def __aenter__(self) -> Any:
        endpoint = self._endpoint
        self._fairy = await greenlet_spawn(endpoint.checkout_raw)
        endpoint.in_flight += 1
        return self._fairy.driver_connection

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        fairy, self._fairy = self._fairy, None
        self._endpoint.in_flight -= 1
        # A cancelled statement (a BaseException) may leave the protocol mid-message.
        broken = exc is not None and (not isinstance(exc, Exception) or is_connection_error(exc))
        try:
            await greenlet_spawn(_give_back, fairy, broken)
        except Exception as close_exc:
            if exc is None:
                raise map_error(close_exc, role="primary") or close_exc from close_exc
            _log.debug("db_close_failed", error=repr(close_exc))
        if exc is None or isinstance(exc, TenfoldError):
            return
        mapped = map_error(exc, role="primary", driver_only=True)
        if mapped is not None and mapped is not exc:
            raise mapped from exc


def _give_back(fairy: Any, broken: bool) -> None:
    if broken:
        fairy.invalidate()
    fairy.close()


async def _rollback_quietly(session: AsyncSession) -> None:
    """Roll back after an error without letting a broken connection hide that error."""
    if not session.in_transaction():
        return
    try:
        await AsyncSession.rollback(session)
    except Exception as exc:  # the original error is the one the caller needs
        _log.debug("db_rollback_failed", error=repr(exc))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TenfoldError):
        return str(exc.context.get("reason") or exc.message)
    return describe(exc)
