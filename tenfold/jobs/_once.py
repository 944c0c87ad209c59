"""Exactly-once effect: a task's key is recorded in the transaction of its database writes.

An exactly-once task runs inside one write transaction on the platform's
main database. Before the task runs, its key is inserted into
``tenfold_job_keys`` with ``ON CONFLICT DO NOTHING``:

- no row comes back: the key committed before (a redelivery, or the outbox
  relay's duplicate), so the task is acknowledged without running;
- on PostgreSQL, a concurrent delivery of the same key waits on the first
  one's row lock and then sees the outcome: the first committed (skip) or
  rolled back (run);
- the task's own writes go through ``task_session()``; they commit with the
  key or roll back with it. A crash anywhere before the commit leaves
  neither, and the redelivered message runs again.

Effects outside the database (an HTTP call, an email) are not covered: they
may happen again when a delivery dies before its commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tenfold._errors import ConfigurationError
from tenfold.jobs._tables import task_keys
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold.db import Database, TenfoldSession

__all__ = ["SKIPPED", "run_once", "task_session"]

_log = get_logger("tenfold.jobs")

_session: ContextVar[TenfoldSession | None] = ContextVar("tenfold_task_session", default=None)


class _Skipped:
    def __repr__(self) -> str:
        return "SKIPPED"


#: What an exactly-once task "returns" when its key had committed already.
SKIPPED: Any = _Skipped()


def task_session() -> TenfoldSession:
    """The transaction of the running exactly-once task: write its effects here.

    They commit together with the task's key, so a redelivered message whose
    effects committed does not run again.
    """
    session = _session.get()
    if session is None:
        raise ConfigurationError(
            "task_session() is for tasks declared exactly_once=True (or with key=...), "
            "while they run"
        )
    return session


def _insert_key(db: Database) -> Any:
    if db.is_sqlite:
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert(task_keys)


async def run_once(
    db: Database,
    key: str,
    task: str,
    call: Callable[[], Awaitable[Any]],
    *,
    now: float,
) -> Any:
    """Run ``call`` unless ``key`` committed before; record it in the same transaction."""
    async with db.session() as session:
        statement = (
            _insert_key(db)
            .values(key=key, task=task, done_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(task_keys.c.key)
        )
        inserted = (await session.execute(statement)).first()
        if inserted is None:
            _log.info("task_duplicate_skipped", task=task, key=key)
            return SKIPPED
        token = _session.set(session)
        try:
            return await call()
        finally:
            _session.reset(token)


async def prune_keys(db: Database, *, before: float) -> int:
    """Delete keys committed before ``before`` (seconds since the epoch); how many."""
    async with db.session() as session:
        result = await session.execute(sa.delete(task_keys).where(task_keys.c.done_at < before))
        return int(getattr(result, "rowcount", 0) or 0)
