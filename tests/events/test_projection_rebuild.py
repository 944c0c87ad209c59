"""Rebuilding a projection: the same read model from position 0, swapped in atomically."""

from __future__ import annotations

import asyncio
import random

import pytest
import sqlalchemy as sa

from tenfold.events import EventStore, NewEvent, ProjectionError, Projections
from tenfold.events._follow import create_tables
from tests.events.leaderboard import TEAMS, Leaderboard, board, expected, match, points


async def _projections(store: EventStore, leaderboard: Leaderboard | None = None) -> Projections:
    await create_tables(store.db, [Leaderboard()])
    return Projections(store, [leaderboard or Leaderboard()], batch_size=200)


async def _append_matches(store: EventStore, count: int, *, per_append: int, seed: int) -> list:
    """``count`` random matches, ``per_append`` to one append (one stream each)."""
    rng = random.Random(seed)
    matches = [match(rng, n) for n in range(count)]
    for start in range(0, count, per_append):
        await store.append(f"s{seed}-{start}", matches[start : start + per_append], 0)
    return matches


async def _index_names(store: EventStore) -> set[str]:
    async with store.db.session(readonly=True) as session:
        if store.db.is_sqlite:
            query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"
        else:
            query = (
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = :t"
            )
        rows = (await session.execute(sa.text(query), {"t": points.name})).all()
    return {row[0] for row in rows}


async def _table_names(store: EventStore) -> set[str]:
    async with store.db.session(readonly=True) as session:
        return set(await session.run_sync(lambda s: sa.inspect(s.connection()).get_table_names()))


async def test_rebuild_matches_the_incremental_read_model(store: EventStore) -> None:
    """A rebuild (twice) gives the incrementally built read model, its indexes under their
    names, and leaves no rebuild table or checkpoint behind."""
    projections = await _projections(store)
    matches = await _append_matches(store, 300, per_append=50, seed=1)
    await projections.catch_up("leaderboard")
    indexes = await _index_names(store)
    for _ in range(2):
        position = await projections.rebuild("leaderboard")
        assert (await projections.status("leaderboard")).checkpoint == position
        async with store.db.session(readonly=True) as session:
            assert await board(session) == expected(matches)
        assert await _index_names(store) == indexes
    assert not {n for n in await _table_names(store) if "rebuild" in n}
    more = await _append_matches(store, 20, per_append=5, seed=2)
    await projections.catch_up("leaderboard")
    async with store.db.session(readonly=True) as session:
        assert await board(session) == expected(matches + more)


async def test_a_failing_rebuild_leaves_the_live_read_model(store: EventStore) -> None:
    """A handler error during a rebuild drops the copies; the live table and checkpoint stay."""
    leaderboard = Leaderboard()
    projections = await _projections(store, leaderboard)
    matches = await _append_matches(store, 50, per_append=10, seed=3)
    reached = await projections.catch_up("leaderboard")
    leaderboard.fail_on.add(40)
    with pytest.raises(ProjectionError):
        await projections.rebuild("leaderboard")
    assert (await projections.status("leaderboard")).checkpoint == reached
    async with store.db.session(readonly=True) as session:
        assert await board(session) == expected(matches)
    assert not {n for n in await _table_names(store) if "rebuild" in n}


async def test_rebuild_of_10000_events_equals_the_incremental_one(pg_store: EventStore) -> None:
    """Over 10,000 random events, the rebuilt leaderboard equals the incrementally built one."""
    projections = await _projections(pg_store)
    matches = await _append_matches(pg_store, 10_000, per_append=250, seed=4)
    await projections.catch_up("leaderboard")
    async with pg_store.db.session(readonly=True) as session:
        incremental = await board(session)
    assert incremental == expected(matches)
    await projections.rebuild("leaderboard")
    async with pg_store.db.session(readonly=True) as session:
        assert await board(session) == incremental


async def test_readers_never_see_an_empty_table_during_a_rebuild(store: EventStore) -> None:
    """A reader polling the live table while a rebuild swaps it (and a live runner and a
    writer run) always finds every team, and the final read model is complete."""
    projections = await _projections(store)
    matches = await _append_matches(store, 2_000, per_append=100, seed=5)
    await projections.catch_up("leaderboard")
    seen: list[int] = []
    done = asyncio.Event()

    async def read() -> None:
        while not done.is_set():
            async with store.db.session(readonly=True) as session:
                seen.append(len(await board(session)))
            await asyncio.sleep(0)

    async def write_and_follow() -> None:
        rng = random.Random(6)
        for n in range(30):
            matches.append(match(rng, n))
            await store.append(f"late-{n}", [matches[-1]], 0)
            await projections.catch_up("leaderboard")

    async def rebuild() -> None:
        try:
            await projections.rebuild("leaderboard")
        finally:
            done.set()

    await asyncio.gather(read(), write_and_follow(), rebuild())
    await projections.catch_up("leaderboard")
    assert seen
    assert set(seen) == {len(TEAMS)}
    async with store.db.session(readonly=True) as session:
        assert await board(session) == expected(matches)


async def test_events_of_other_types_only_move_the_checkpoint(store: EventStore) -> None:
    """A rebuild over a log of other event types ends with an empty read model at its end."""
    projections = await _projections(store)
    appended = await store.append("x", [NewEvent("Other", {})], 0)
    assert await projections.rebuild("leaderboard") == appended.position
    async with store.db.session(readonly=True) as session:
        assert await board(session) == {}
