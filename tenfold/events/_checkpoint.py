"""Checkpoints: where a named consumer of the global log stands, kept in its own transaction.

A consumer (a projection, the relay) reads and moves its checkpoint in the
same transaction as its effects, so they commit together: after a crash it
resumes where its last commit left it, and never applies an event twice.

``load(session, name)`` locks the checkpoint for the transaction: two
processes running the same consumer take turns, and the second reads the
position the first committed. On PostgreSQL the lock is a transaction-level
advisory lock on the name, not ``SELECT ... FOR UPDATE``: locking a row
assigns the transaction an id, and a running transaction id holds back every
reader of the log (see ``_sql``), so a catch-up that finds nothing to apply
would delay everyone else's. An advisory lock takes no id; a catch-up gets
one only when it writes. SQLite's write transaction already excludes other
writers.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import sqlalchemy as sa

from tenfold.events._model import START, Position
from tenfold.events._tables import checkpoints

if TYPE_CHECKING:
    from tenfold.db import TenfoldSession

__all__ = ["delete_checkpoint", "load_checkpoint", "save_checkpoint"]


async def load_checkpoint(session: TenfoldSession, name: str, *, lock: bool = True) -> Position:
    """``name``'s position (``START`` if it has none), locked until ``session`` ends."""
    if lock and not _sqlite(session):
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCKS, _lock_key(name))))
    query = sa.select(checkpoints.c.tx, checkpoints.c.seq).where(checkpoints.c.name == name)
    row = (await session.execute(query)).first()
    if row is None and lock:
        # The first run: make the row (a concurrent first run made it: nothing happens).
        await _ensure(session, name)
        row = (await session.execute(query)).first()
    return START if row is None else Position(row.tx, row.seq)


#: The first key of the checkpoints' advisory locks (the two-key space: no other lock in
#: tenfold uses it; a bigint-keyed lock never conflicts with a two-key one).
_LOCKS = 0x74660001


def _lock_key(name: str) -> int:
    """A stable 32-bit key for ``name`` (two names that share one only take turns)."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=4).digest(), "big", signed=True
    )


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
