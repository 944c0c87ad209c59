"""``TenfoldSession``: an ``AsyncSession`` that maps driver errors where they happen.

Errors are mapped in two places. ``execute``/``scalar``/``scalars``/``get``/
``get_one``/``flush``/``commit``/``refresh``/``merge`` map at the call, so code
inside ``async with db.session()`` that catches errors sees tenfold's classes.
Anything else SQLAlchemy raises inside the block (``session.connection()``,
streamed results) is mapped as it leaves the block.

A read session on a replica that loses its connection moves itself to the
primary and repeats the failed call once. Under READ COMMITTED every statement
takes a fresh snapshot anyway, and the primary is never behind the replica, so
the reader sees time move forward, never back.

The session also notices whether it wrote (a flush with changes, or a
statement passed to ``execute``/``scalar`` that is not a SELECT) so a commit
captures the primary's WAL position only when there is something to read
back. Statements sent through ``session.connection()`` are not seen.

``session.after_commit(fn)`` defers work that must only happen once the
writes are durable: invalidating cache tags, enqueueing a task, publishing.
Callbacks run in order after the next successful commit (also the one the
session scope makes on leaving its block) and are dropped on rollback, so a
failed transaction never invalidates or enqueues anything. A callback that
raises is logged and the rest still run: the transaction has committed and
the client must hear so.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util.concurrency import in_greenlet

from tenfold._context import set_consistency_token
from tenfold._errors import TenfoldError
from tenfold.db._errors import map_error

if TYPE_CHECKING:
    from tenfold.db._lease import Lease
    from tenfold.db._router import Router

__all__ = ["AfterCommit", "TenfoldSession"]

T = TypeVar("T")
_WROTE = "tenfold_wrote"
_AFTER_COMMIT = "tenfold_after_commit"
#: What ``after_commit`` takes: a function of no arguments, sync or async.
AfterCommit = Callable[[], Awaitable[Any] | None]
_log = structlog.get_logger("tenfold.db")


class _SyncSession(Session):
    """The sync half of ``TenfoldSession``: a class-wide flush listener, and a lease.

    ``get_bind`` hands SQLAlchemy the lease's connection, checking it out on
    first use: the checkout then runs inside the first statement's greenlet
    instead of needing one of its own.
    """

    tenfold_lease: Lease | None = None

    def get_bind(self, mapper: Any = None, **kw: Any) -> Any:
        lease = self.tenfold_lease
        if lease is None or kw.get("bind") is not None:
            return super().get_bind(mapper, **kw)
        if lease.conn is None and not in_greenlet():
            # Asked from plain async code (introspection): no I/O possible here.
            return super().get_bind(mapper, **kw)
        return lease.connection()


@event.listens_for(_SyncSession, "after_flush")
def _flushed(session: Session, flush_context: Any) -> None:
    session.info[_WROTE] = True


def _note_statement(session: AsyncSession, statement: Any) -> None:
    # text() is never "a select" to SQLAlchemy; counting it as a write costs one
    # LSN round trip at most, missing a write would break read-your-writes. (A
    # do_orm_execute listener would do the same at ~30 µs per statement.)
    if not getattr(statement, "is_select", False):
        session.sync_session.info[_WROTE] = True


class TenfoldSession(AsyncSession):
    """An ``AsyncSession`` bound to one routed connection. Build it through ``Database``."""

    sync_session_class = _SyncSession

    def __init__(self, *args: Any, lease: Lease | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._lease = lease
        self.sync_session.tenfold_lease = lease
        # A READ ONLY transaction writes nothing, so its statements need no noting.
        self._notes_writes = lease is None or not lease.readonly

    @property
    def role(self) -> str:
        """``primary`` or ``replica``: where this session's statements run now."""
        return self._lease.endpoint.role if self._lease is not None else "primary"

    @property
    def router(self) -> Router | None:
        """The database (main or shard) this session's statements run on."""
        return self._lease.router if self._lease is not None else None

    @property
    def endpoint_name(self) -> str | None:
        """The routed server's name (``primary``, ``replica0``, ``shard1.primary``)."""
        return self._lease.endpoint.name if self._lease is not None else None

    @property
    def wrote(self) -> bool:
        return bool(self.sync_session.info.get(_WROTE))

    async def _guard(self, method: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """Run ``AsyncSession.<method>``; map errors, or move a broken read to the primary."""
        try:
            return await method(self, *args, **kw)
        except Exception as exc:
            return await self._recover(exc, method, args, kw)

    async def _recover(
        self, exc: Exception, method: Callable[..., Awaitable[T]], args: Any, kw: Any
    ) -> T:
        """The failure path of every mapped call, kept out of the calls themselves.

        Raises ``exc`` mapped to a tenfold error (or as it is, if it is not a
        database error), or moves a broken read to the primary and repeats the call.
        """
        lease = self._lease
        if lease is not None and lease.can_fail_over(exc):  # at checkout too: DatabaseUnavailable
            await lease.fail_over(self, exc)
            return await self._guard(method, *args, **kw)  # can_fail_over is False now
        if isinstance(exc, TenfoldError):
            raise exc
        mapped = map_error(exc, role=self.role)
        if mapped is None:
            raise exc
        raise mapped from exc

    # execute and scalar carry every statement: they call AsyncSession directly
    # rather than through _guard, which would add a coroutine frame to every resume.
    async def execute(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if self._notes_writes:
            _note_statement(self, statement)
        try:
            return await AsyncSession.execute(self, statement, params, **kw)
        except Exception as exc:
            return await self._recover(exc, AsyncSession.execute, (statement, params), kw)

    async def scalar(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if self._notes_writes:
            _note_statement(self, statement)
        try:
            return await AsyncSession.scalar(self, statement, params, **kw)
        except Exception as exc:
            return await self._recover(exc, AsyncSession.scalar, (statement, params), kw)

    async def get(self, *args: Any, **kw: Any) -> Any:
        return await self._guard(AsyncSession.get, *args, **kw)

    async def get_one(self, *args: Any, **kw: Any) -> Any:
        return await self._guard(AsyncSession.get_one, *args, **kw)

    async def refresh(self, *args: Any, **kw: Any) -> None:
        await self._guard(AsyncSession.refresh, *args, **kw)

    async def merge(self, *args: Any, **kw: Any) -> Any:
        return await self._guard(AsyncSession.merge, *args, **kw)

    async def flush(self, objects: Any = None) -> None:
        await self._guard(AsyncSession.flush, objects)

    def after_commit(self, callback: AfterCommit) -> None:
        """Run ``callback()`` (sync or async) once this transaction has committed.

        Dropped if the transaction rolls back instead. ``lambda:
        cache.invalidate_tags("note:42")`` is the usual use.
        """
        self.sync_session.info.setdefault(_AFTER_COMMIT, []).append(callback)

    async def commit(self) -> None:
        """Commit; after a write, raise the request's consistency token to the new LSN (on a
        database with replicas).

        Then run the ``after_commit`` callbacks.
        """
        wrote = self.wrote
        await self._guard(AsyncSession.commit)
        self.sync_session.info.pop(_WROTE, None)
        # A token only ever decides whether one of this database's replicas may serve a
        # read: with none configured, the WAL read would be a round trip for nothing.
        if wrote and self._lease is not None and self._lease.router.replicas:
            set_consistency_token(await self._lease.capture_lsn())
        await self.run_after_commit()

    async def rollback(self) -> None:
        self.sync_session.info.pop(_AFTER_COMMIT, None)
        await self._guard(AsyncSession.rollback)
        self.sync_session.info.pop(_WROTE, None)

    async def run_after_commit(self) -> None:
        """Run and clear the pending ``after_commit`` callbacks (the session scope calls it)."""
        callbacks = self.sync_session.info.pop(_AFTER_COMMIT, None)
        for callback in callbacks or ():
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # committed already: log, run the rest, answer the client
                _log.error("after_commit_failed", callback=_name(callback), exc_info=exc)

    def discard_after_commit(self) -> None:
        """Forget the pending callbacks: the transaction did not commit."""
        self.sync_session.info.pop(_AFTER_COMMIT, None)


def _name(callback: Any) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)
