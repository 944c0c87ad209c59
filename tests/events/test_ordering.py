"""The global order on PostgreSQL: races on one stream, commits out of position order, and
many writers followed by subscribers while some commits are held back."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import defaultdict

import pytest
import sqlalchemy as sa

from tenfold.events import START, ConcurrencyError, EventStore, NewEvent, Position, RecordedEvent
from tenfold.events._store import EventStore as _Store

_NAIVE = sa.text("SELECT position FROM tenfold_events WHERE position > :after ORDER BY position")


def one(type_: str = "Scored", **data: object) -> list[NewEvent]:
    return [NewEvent(type_, dict(data))]


async def test_hundred_racing_appends_have_one_winner(pg_store: EventStore) -> None:
    """100 appends at one expected version: one commits, 99 conflict, versions have no gap."""
    store = pg_store
    await store.append("m", one(), 0)
    results = await asyncio.gather(
        *(store.append("m", one(i=i), 1) for i in range(100)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 99
    assert all(isinstance(e, ConcurrencyError) for e in errors)
    assert [e.version for e in await store.read_stream("m")] == [1, 2]
    # The next append sees the winner's version and goes through.
    await store.append("m", one(), 2)
    assert [e.version for e in await store.read_stream("m")] == [1, 2, 3]


async def test_commit_after_a_later_position_is_not_skipped(pg_store: EventStore) -> None:
    """Transaction A takes an earlier position but commits after B: a subscriber gets both."""
    store = pg_store
    seen: list[RecordedEvent] = []

    async def follow() -> None:
        async for event in store.subscribe():
            seen.append(event)
            if len(seen) == 2:
                return

    follower = asyncio.create_task(follow())
    async with store.db.session() as a:
        appended_a = await store.append("a", one(), 0, session=a)
        appended_b = await store.append("b", one(), 0)  # its own transaction, committed
        assert appended_a.position.seq < appended_b.position.seq
        # A reader by position alone would take B now and move past A's position.
        async with store.db.session() as reader:
            naive = (await reader.execute(_NAIVE, {"after": 0})).scalars().all()
        assert naive == [appended_b.position.seq]
        # Ours holds B back while A, which could precede it, is still running.
        assert await store.read_all() == []
        await asyncio.sleep(3 * store.poll_interval)
        assert seen == []
    await asyncio.wait_for(follower, 10)
    assert [(e.stream_id, e.position) for e in seen] == [
        ("a", appended_a.position),
        ("b", appended_b.position),
    ]


async def test_a_transaction_with_an_early_id_appending_late(pg_store: EventStore) -> None:
    """A transaction that wrote before B began but appends after B committed is read first,
    and nothing read before its commit is ever preceded by it."""
    store = pg_store
    async with store.db.session() as a:
        await a.execute(sa.text("CREATE TEMP TABLE early (x int)"))
        await a.execute(sa.text("INSERT INTO early VALUES (1)"))  # A has its id now
        b = await store.append("b", one(), 0)
        assert await store.read_all() == []  # B waits for A
        late = await store.append("a", one(), 0, session=a)
        assert late.position.seq > b.position.seq
    log = await store.read_all()
    assert [e.stream_id for e in log] == ["a", "b"]
    assert log[0].position < log[1].position


async def test_append_in_an_older_transaction_than_the_streams_last_event(
    pg_store: EventStore,
) -> None:
    """A transaction older than the one that wrote the stream's last event may not append
    to that stream: the stream's order would go backwards in the log."""
    store = pg_store
    await store.append("s", one(), 0)
    async with store.db.session() as old:
        await old.execute(sa.text("CREATE TEMP TABLE early (x int)"))
        await old.execute(sa.text("INSERT INTO early VALUES (1)"))  # its id is taken now
        await store.append("s", one(), 1)  # a newer transaction appends version 2
        with pytest.raises(ConcurrencyError) as refused:
            await store.append("s", one(), 2, session=old)
        await old.rollback()
    assert refused.value.actual == 2
    assert refused.value.context["reason"] == "older transaction"
    # Retried in a new transaction, it goes through.
    async with store.db.session() as new:
        await store.append("s", one(), 2, session=new)
    versions = [e.version for e in await store.read_all() if e.stream_id == "s"]
    assert versions == [1, 2, 3]


async def test_sixteen_writers_two_subscribers_every_event_once(pg_store: EventStore) -> None:
    """16 writers append 10,000 events to distinct streams, some holding their commit back,
    while 2 subscribers follow the log: each sees every event once, in log order."""
    store = pg_store
    # The second subscriber has its own store on its own pool: only polling wakes it.
    other = _Store(store.db, poll_interval=0.01)
    total, writers = 10_000, 16
    rng = random.Random(7)
    delays = [rng.random() < 0.05 for _ in range(total)]

    async def writer(w: int) -> None:
        for i in range(w, total, writers):
            stream = f"w{w}-s{i % 7}"
            version = (i // writers) // 7
            if delays[i]:
                async with store.db.session() as session:
                    await store.append(stream, one(i=i), version, session=session)
                    await asyncio.sleep(rng.random() * 0.02)  # others commit meanwhile
            else:
                await store.append(stream, one(i=i), version)

    async def subscriber(source: EventStore) -> list[RecordedEvent]:
        seen: list[RecordedEvent] = []
        async for event in source.subscribe(page_size=300):
            seen.append(event)
            if len(seen) == total:
                return seen
        return seen

    subscribers = [asyncio.create_task(subscriber(s)) for s in (store, other)]
    await asyncio.gather(*(writer(w) for w in range(writers)))
    results = await asyncio.wait_for(asyncio.gather(*subscribers), 120)
    for seen in results:
        assert len(seen) == total
        assert sorted(e.data["i"] for e in seen) == list(range(total))
        positions = [e.position for e in seen]
        assert all(p < q for p, q in itertools.pairwise(positions))
        versions: dict[str, list[int]] = defaultdict(list)
        for event in seen:
            versions[event.stream_id].append(event.version)
        assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    assert sum(delays) > 100  # the run did hold commits back
    # Nothing more arrives later: the subscriptions saw the whole log.
    last: Position = results[0][-1].position
    assert await store.read_all(last) == []
    assert len(await store.read_all(START, limit=total + 1)) == total


async def test_a_catch_up_with_nothing_to_apply_holds_no_reader_back(pg_store: EventStore) -> None:
    """Locking a checkpoint takes no transaction id (an advisory lock, not a row lock), so a
    catch-up that finds nothing holds back no reader of the log, and while it holds the
    lock an append made meanwhile is readable at once; a second locker waits for it."""
    from tenfold.events._checkpoint import load_checkpoint

    store = pg_store
    async with store.db.session() as first:
        await load_checkpoint(first, "projection:x")  # the first run makes the row
    async with store.db.session() as holder:
        await load_checkpoint(holder, "projection:x")
        xid = await holder.scalar(sa.text("SELECT pg_current_xact_id_if_assigned()::text"))
        assert xid is None
        appended = await store.append("s-1", [NewEvent("E")], 0)
        assert [e.position for e in await store.read_all()] == [appended.position]

        async def second() -> None:
            async with store.db.session() as other:
                await load_checkpoint(other, "projection:x")

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.2)  # it must still be waiting for the lock
        assert not waiting.done()
    await asyncio.wait_for(waiting, 10)


async def test_a_runner_behind_its_own_append_looks_again_soon(pg_store: EventStore) -> None:
    """An event this process appended but an older transaction holds back is applied soon
    after that transaction ends, not at the runner's next poll (an hour here)."""
    from tenfold.events import ProjectionRunner, Projections
    from tenfold.events._follow import create_tables
    from tests.events.leaderboard import Leaderboard, match

    class Passes(Projections):
        """Tells when the runner's task has finished a catch-up."""

        done = asyncio.Event()

        async def catch_up(self, name: str) -> Position:
            reached = await super().catch_up(name)
            if asyncio.current_task().get_name() == "tenfold-projections":
                self.done.set()
            return reached

    store = _Store(pg_store.db, poll_interval=3600)
    await create_tables(store.db, [Leaderboard()])
    projections = Passes(store, [Leaderboard()])
    runner = ProjectionRunner(projections)
    runner.begin()
    try:
        await asyncio.wait_for(projections.done.wait(), 10)  # its first pass
        async with store.db.session() as older:
            await older.execute(sa.text("SELECT pg_current_xact_id()"))  # an id: running
            projections.done.clear()
            appended = await store.append("m-1", [match(random.Random(2), 0)], 0)
            await asyncio.wait_for(projections.done.wait(), 10)  # a pass that found nothing
            assert await store.read_all() == []  # held back
        reached = await projections.wait_for("leaderboard", appended.position, timeout=30)
        assert reached >= appended.position
    finally:
        await runner.stop()
