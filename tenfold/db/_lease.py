"""``Lease``: one routed connection, held for the life of one session.

The lease knows which server it is on, moves a read to the primary when its
replica connection breaks, reads WAL positions straight from the driver (one
round trip, outside any transaction) and gives the connection back however
the session ended.

A write lease checks its connection out when the session opens. A read lease
checks it out at the session's first statement, inside that statement's
greenlet (``TenfoldSession`` asks through ``Session.get_bind``): a separate
trip into a greenlet just to check out costs a routed read several µs, about
a tenth of the router's whole cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import asyncpg
import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util import greenlet_spawn

from tenfold.db._engine import Endpoint
from tenfold.db._errors import is_connection_error, map_error

if TYPE_CHECKING:
    from tenfold.db._router import Router
    from tenfold.db._session import TenfoldSession

__all__ = ["Lease"]

_log = structlog.get_logger("tenfold.db")

# Errors a driver-level call can raise; anything else is a bug and propagates.
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, sa_exc.SQLAlchemyError)


class Lease:
    """An endpoint and the connection checked out from it (``None`` until first use)."""

    __slots__ = ("conn", "endpoint", "failed_over", "readonly", "router")

    def __init__(
        self, router: Router, endpoint: Endpoint, conn: Connection | None, *, readonly: bool
    ) -> None:
        self.router = router
        self.endpoint = endpoint
        self.conn = conn
        self.readonly = readonly
        self.failed_over = False
        endpoint.in_flight += 1

    @classmethod
    async def open(cls, router: Router, endpoint: Endpoint, *, readonly: bool) -> Lease:
        """A lease with its connection checked out now."""
        conn = await endpoint.connect(readonly=readonly)
        return cls(router, endpoint, conn, readonly=readonly)

    def connection(self) -> Connection:
        """The connection, checked out on first use (sync: call it inside a greenlet)."""
        conn = self.conn
        if conn is None:
            conn = self.conn = self.endpoint.checkout(self.readonly)
        return conn

    def can_fail_over(self, exc: BaseException) -> bool:
        """A read on a replica whose connection broke may move, once, to the primary."""
        return (
            self.readonly
            and not self.failed_over
            and self.endpoint.role == "replica"
            and is_connection_error(exc)
        )

    async def fail_over(self, session: TenfoldSession, exc: BaseException) -> None:
        """Eject the replica, drop its connection and rebind ``session`` to the primary.

        The primary's connection is checked out by the call that is repeated.
        """
        self.router.mark_failed(self.endpoint, exc)
        self.failed_over = True
        await self._discard(session)
        primary = self.router.primary
        self.endpoint = primary
        primary.in_flight += 1
        session.bind = primary.engine

    async def _discard(self, session: AsyncSession) -> None:
        """Forget the broken connection; its errors say nothing new."""
        try:
            await AsyncSession.close(session)
        except _DRIVER_ERRORS as exc:
            _log.debug("db_discard_session_failed", error=repr(exc))
        self.endpoint.in_flight -= 1
        await self._drop_connection(broken=True)

    async def _drop_connection(self, *, broken: bool) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            await greenlet_spawn(_drop, conn, broken)
        except _DRIVER_ERRORS as exc:
            if not is_connection_error(exc):
                _reraise(exc, self.endpoint.role)
            _log.debug("db_close_failed", endpoint=self.endpoint.name, error=repr(exc))

    async def _invalidate(self) -> None:
        """Tell the pool the driver saw this connection break."""
        if self.conn is not None:
            await greenlet_spawn(self.conn.invalidate)

    async def driver_connection(self) -> Any:
        """The raw driver connection under this lease's (checked out) connection."""
        raw = await greenlet_spawn(getattr, self.conn, "connection")  # may reconnect: a greenlet
        return raw.driver_connection

    async def driver_fetchval(self, query: str) -> object:
        """One value over the raw asyncpg connection: no BEGIN, no SQLAlchemy cache."""
        return await (await self.driver_connection()).fetchval(query)

    async def give_back_broken(self) -> None:
        """Return a connection no session was built on, which the driver saw break."""
        self.endpoint.in_flight -= 1
        await self._drop_connection(broken=True)

    async def replay_reached(self, lsn: int) -> bool:
        """Whether this replica has replayed WAL up to ``lsn`` (asked, not cached)."""
        try:
            replay = await self.driver_fetchval("SELECT pg_last_wal_replay_lsn()")
        except _DRIVER_ERRORS as exc:
            if not is_connection_error(exc):
                _reraise(exc, "replica")
            self.router.mark_failed(self.endpoint, exc)
            await self._invalidate()  # the driver saw it; tell the pool
            return False
        if isinstance(replay, int):
            self.endpoint.state.saw_replay(replay)
            return replay >= lsn
        return False

    async def capture_lsn(self) -> int | None:
        """The primary's WAL position now, just after our commit (None on SQLite).

        A commit that succeeded is not undone because we could not read the
        position afterwards: the client then gets no token, and is told so in
        the log rather than with a 503 that would invite a duplicate write.
        """
        if self.endpoint.is_sqlite:
            return None
        try:
            value = await self.driver_fetchval("SELECT pg_current_wal_lsn()")
        except _DRIVER_ERRORS as exc:
            _log.warning("db_lsn_capture_failed", endpoint=self.endpoint.name, error=repr(exc))
            if is_connection_error(exc):
                await self._invalidate()
            return None
        return value if isinstance(value, int) else None

    async def release(self, session: AsyncSession) -> None:
        """Close the session (rolling back anything open) and return the connection."""
        self.endpoint.in_flight -= 1
        try:
            # One trip into the greenlet for both closes: this runs on every request.
            await greenlet_spawn(_close, session.sync_session, self.conn)
        except _DRIVER_ERRORS as exc:
            _reraise(exc, self.endpoint.role)

    async def give_back(self) -> None:
        """Return a connection no session was built on."""
        self.endpoint.in_flight -= 1
        await self._drop_connection(broken=False)


def _reraise(exc: BaseException, role: str) -> NoReturn:
    mapped = map_error(exc, role=role)
    if mapped is None:
        raise exc
    raise mapped from exc


def _drop(conn: Connection, broken: bool) -> None:
    if broken:
        conn.invalidate()
    conn.close()


def _close(session: Session, conn: Connection | None) -> None:
    """Close ``session``, then ``conn``; a connection that broke is discarded, not pooled."""
    try:
        session.close()
    except _DRIVER_ERRORS as exc:
        if conn is None:
            raise
        conn.invalidate()
        if not is_connection_error(exc):
            conn.close()
            raise
        _log.debug("db_close_failed", error=repr(exc))
    if conn is not None:
        conn.close()
