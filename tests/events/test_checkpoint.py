"""Checkpoints on SQLite and PostgreSQL."""

from __future__ import annotations

from tenfold.events import START, EventStore, Position
from tenfold.events._checkpoint import load_checkpoint, save_checkpoint


async def test_checkpoint_starts_at_start_and_moves(store: EventStore) -> None:
    """A new checkpoint reads START; a saved one reads back after its commit."""
    async with store.db.session() as session:
        assert await load_checkpoint(session, "p") == START
        await save_checkpoint(session, "p", Position(5, 9), now=1.0)
    async with store.db.session() as session:
        assert await load_checkpoint(session, "p") == Position(5, 9)
        assert await load_checkpoint(session, "other", lock=False) == START


async def test_checkpoint_rolls_back_with_its_transaction(store: EventStore) -> None:
    """A checkpoint moved in a transaction that rolls back stays where it was."""
    async with store.db.session() as session:
        await load_checkpoint(session, "p")
    session_scope = store.db.session()
    session = await session_scope.__aenter__()
    await save_checkpoint(session, "p", Position(1, 1), now=1.0)
    await session_scope.__aexit__(RuntimeError, RuntimeError("x"), None)
    async with store.db.session() as session:
        assert await load_checkpoint(session, "p") == START
