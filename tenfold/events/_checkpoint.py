"""Checkpoints: where a named consumer of the global log stands, kept in its own transaction.

A consumer (a projection, the relay) reads and moves its checkpoint in the
same transaction as its effects, so they commit together: after a crash it
resumes where its last commit left it, and never applies an event twice.

``load(session, name)`` locks the row (``FOR UPDATE`` on PostgreSQL; SQLite's
write transaction already excludes other writers): two processes running the
same consumer take turns, and the second reads the position the first
committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from tenfold.events._model import START, Position
from tenfold.events._tables import checkpoints

if TYPE_CHECKING:
    from tenfold.db import TenfoldSession

__all__ = ["delete_checkpoint", "load_checkpoint", "save_checkpoint"]


async def load_checkpoint(session: TenfoldSession, name: str, *, lock: bool = True) -> Position:
    """``name``'s position (``START`` if it has none), locked until ``session`` ends."""
    query = sa.select(checkpoints.c.tx, checkpoints.c.seq).where(checkpoints.c.name == name)
    if lock and not _sqlite(session):
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    if row is None and lock:
        # The first run: the row is made (by this runner or a concurrent one) and locked.
        await _ensure(session, name)
        row = (await session.execute(query)).first()
    return START if row is None else Position(row.tx, row.seq)


async def save_checkpoint(
    session: TenfoldSession, name: str, position: Position, *, now: float
) -> None:
    """Move ``name`` to ``position`` in ``session``'s transaction."""
    await session.execute(
        sa.update(checkpoints)
        .where(checkpoints.c.name == name)
        .values(tx=position.tx, seq=position.seq, updated_at=now)
    )


async def delete_checkpoint(session: TenfoldSession, name: str) -> None:
    await session.execute(sa.delete(checkpoints).where(checkpoints.c.name == name))


async def _ensure(session: TenfoldSession, name: str) -> None:
    """Create ``name``'s row at ``START`` if missing, so that it can be locked."""
    if _sqlite(session):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    await session.execute(
        insert(checkpoints)
        .values(name=name, tx=START.tx, seq=START.seq, updated_at=0.0)
        .on_conflict_do_nothing(index_elements=["name"])
    )


def _sqlite(session: TenfoldSession) -> bool:
    return session.bind.dialect.name == "sqlite"
