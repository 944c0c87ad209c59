"""Rebuilding a projection into fresh tables, swapped in by one transaction.

The read model is built from the start of the log into copies of its tables
(``<table>__rebuild``, same columns and indexes), while the live tables keep
serving and the live runner keeps applying new events. Then one transaction
locks the live checkpoint (the live runner waits), applies the last events
to the copies, drops the live tables, renames the copies into their place,
and moves the live checkpoint to where the copies stand. Readers see the old
read model until that commit and the complete new one after it, never an
empty or half-built table: PostgreSQL's DDL is transactional, and SQLite's
too.

Index and constraint names are unique per schema on PostgreSQL and per
database on SQLite, so the copies' are named apart (``...__rebuild``) and
renamed to the live names in the swap (SQLite cannot rename an index: there
the copies' indexes are created in the swap, under their live names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from tenfold.events._checkpoint import delete_checkpoint, load_checkpoint, save_checkpoint
from tenfold.events._model import Position
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold.db import TenfoldSession
    from tenfold.events._projection import Projection, Projections

__all__ = ["SUFFIX", "fresh_tables", "rebuild"]

_log = get_logger("tenfold.events")

#: Appended to the names of a rebuild's tables, indexes, constraints and checkpoint.
SUFFIX = "__rebuild"

_PG_CONSTRAINTS = sa.text(
    "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:table AS regclass) "
    "AND strpos(conname, :suffix) > 0"
)
_PG_INDEXES = sa.text(
    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
    "AND tablename = :table AND strpos(indexname, :suffix) > 0"
)


def fresh_tables(projection: Projection, *, sqlite: bool) -> dict[str, sa.Table]:
    """Copies of ``projection``'s tables under rebuild names, by their live names.

    On SQLite the copies have no secondary indexes: they are made in the swap.
    """
    copies: dict[str, sa.Table] = {}
    for table in projection.tables:
        metadata = sa.MetaData(naming_convention=dict(table.metadata.naming_convention))
        copy = table.to_metadata(metadata, name=table.name + SUFFIX)
        for index in list(copy.indexes):
            if sqlite:
                copy.indexes.discard(index)
            elif isinstance(index.name, str):
                index.name = index.name + SUFFIX
        for constraint in copy.constraints:
            if isinstance(constraint.name, str) and constraint.name:
                constraint.name = constraint.name + SUFFIX
        copies[table.name] = copy
    return copies


async def rebuild(projections: Projections, name: str) -> Position:
    """Build ``name``'s read model again from the start of the log and swap it in.

    Returns the checkpoint the rebuilt read model stands at. A handler error
    drops the copies and raises ``ProjectionError``; the live tables are untouched.
    """
    projection = projections.get(name)
    db = projections.store.db
    fresh = fresh_tables(projection, sqlite=db.is_sqlite)
    checkpoint = name + SUFFIX
    await _recreate(projections, fresh, checkpoint)
    _log.info("projection_rebuild_started", projection=name)
    try:
        while True:
            position, full = await projections.apply_batch(projection, fresh, checkpoint)
            if not full:
                break
        async with db.session() as session:
            # The live runners wait on this lock until the swap has committed, then read
            # the checkpoint it wrote.
            await load_checkpoint(session, name)
            while True:
                position, count = await projections.apply_in(session, projection, fresh, checkpoint)
                if count < projections.batch_size:
                    break
            await _swap(session, projection, fresh)
            await save_checkpoint(session, name, position, now=projections.clock())
            await delete_checkpoint(session, checkpoint)
    except BaseException:
        await _drop(projections, fresh, checkpoint)
        raise
    _log.info("projection_rebuilt", projection=name, checkpoint=str(position))
    return position


async def _recreate(projections: Projections, fresh: dict[str, sa.Table], checkpoint: str) -> None:
    """Empty copies and no checkpoint (what an interrupted rebuild left goes first)."""
    await _drop(projections, fresh, checkpoint)
    async with projections.store.db.session() as session:
        for table in fresh.values():
            await session.run_sync(lambda s, t=table: t.create(s.connection()))


async def _drop(projections: Projections, fresh: dict[str, sa.Table], checkpoint: str) -> None:
    async with projections.store.db.session() as session:
        for table in reversed(list(fresh.values())):
            await session.run_sync(lambda s, t=table: t.drop(s.connection(), checkfirst=True))
        await delete_checkpoint(session, checkpoint)


async def _swap(
    session: TenfoldSession, projection: Projection, fresh: dict[str, sa.Table]
) -> None:
    """Replace each live table by its copy, in ``session``'s transaction."""
    quote = session.bind.dialect.identifier_preparer.quote
    sqlite = session.bind.dialect.name == "sqlite"
    for live in reversed(projection.tables):
        await session.execute(sa.text(f"DROP TABLE IF EXISTS {quote(live.name)}"))
    for live in projection.tables:
        copy = fresh[live.name]
        await session.execute(
            sa.text(f"ALTER TABLE {quote(copy.name)} RENAME TO {quote(live.name)}")
        )
        if sqlite:
            for index in live.indexes:
                await session.run_sync(lambda s, i=index: i.create(s.connection()))
        else:
            await _rename_pg(session, live.name)


async def _rename_pg(session: TenfoldSession, table: str) -> None:
    """Give the renamed copy's constraints and indexes the live names (no ``SUFFIX``)."""
    quote = session.bind.dialect.identifier_preparer.quote
    params = {"table": quote(table), "suffix": SUFFIX}
    for (name,) in (await session.execute(_PG_CONSTRAINTS, params)).all():
        new = name.replace(SUFFIX, "", 1)
        await session.execute(
            sa.text(f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(name)} TO {quote(new)}")
        )
    # Those backing a constraint were renamed with it.
    params = {"table": table, "suffix": SUFFIX}
    for (name,) in (await session.execute(_PG_INDEXES, params)).all():
        new = name.replace(SUFFIX, "", 1)
        await session.execute(sa.text(f"ALTER INDEX {quote(name)} RENAME TO {quote(new)}"))
